"""PNG figures of the evaluation reports (matplotlib, Agg canvas, no pyplot state).

Figures are built as ``matplotlib.figure.Figure`` objects with an Agg canvas, so nothing
touches pyplot's global figure registry or the user's backend (rule: no global state).

- :func:`histogram_figure`: per-clip values with medians (paper Figure 5c, LTD at interval 1;
  also per-clip PSNR of reconstructions).
- :func:`curve_figure`: values over an x axis with optional bands (paper Figure 5d, normalised
  LTD over frame intervals; PSNR of predicted frames).
- :func:`flow_to_rgb`: optical flow as colours (paper Figure 4 beside the PCA; probing).
- :func:`image_grid_figure`: labelled rows of frames (paper Figure 4, PCA beside the input;
  paper Figure 6, observed / predicted / ground truth; reconstruction samples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` to a PNG file (parent folders created). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def histogram_figure(
    series: dict[str, Sequence[float]], xlabel: str, title: str, bins: int = 40
) -> Figure:
    """Overlaid histograms with a dashed median line per series.

    Args:
        series: label -> values (one value per clip).
        xlabel, title: axis label and title.
        bins: number of bins over the common range of all series.
    """
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    values = [np.asarray(v, dtype=np.float64) for v in series.values()]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    for index, (label, v) in enumerate(zip(series, values)):
        color = f"C{index}"
        median = float(np.median(v)) if v.size else float("nan")
        ax.hist(v, bins=edges, alpha=0.5, color=color, label=f"{label} (median {median:.4g})")
        ax.axvline(median, color=color, linestyle="--", linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clips")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def curve_figure(
    x: Sequence[float],
    curves: dict[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str,
    bands: dict[str, Sequence[float]] | None = None,
) -> Figure:
    """Line plot of several curves over a shared x axis, with optional +-band shading.

    Args:
        x: (K,) x values.
        curves: label -> (K,) y values.
        xlabel, ylabel, title: labels.
        bands: label -> (K,) half-widths drawn as a shaded band around that curve.
    """
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    xs = np.asarray(x, dtype=np.float64)
    for index, (label, y) in enumerate(curves.items()):
        ys = np.asarray(y, dtype=np.float64)
        ax.plot(xs, ys, marker="o", color=f"C{index}", label=label)
        if bands and label in bands:
            half = np.asarray(bands[label], dtype=np.float64)
            ax.fill_between(xs, ys - half, ys + half, color=f"C{index}", alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def to_image(frame: torch.Tensor) -> np.ndarray:
    """A (3, H, W) frame in [-1, 1] as an (H, W, 3) float image in [0, 1]."""
    return ((frame.detach().float().cpu().permute(1, 2, 0) + 1.0) / 2.0).clamp(0, 1).numpy()


def image_grid_figure(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]],
    column_titles: Sequence[str] | None = None,
    title: str | None = None,
    cell_inches: float = 1.6,
) -> Figure:
    """A grid of images: one labelled row per entry of ``rows``.

    Args:
        rows: (row label, images) pairs; images are (H, W, 3) floats in [0, 1], drawn with
            nearest-neighbour scaling (latent-resolution PCA maps stay blocky, as in Figure 4).
            Rows may be shorter than the widest row.
        column_titles: titles of the top row's columns.
        title: figure title.
        cell_inches: size of one cell.
    """
    n_rows = len(rows)
    n_cols = max((len(images) for _, images in rows), default=1)
    size = (cell_inches * n_cols + 1.2, cell_inches * n_rows + 0.6)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(np.clip(images[c], 0.0, 1.0), interpolation="nearest")
            else:
                ax.set_axis_off()
            if r == 0 and column_titles and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=8)
        axes[r][0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def flow_to_rgb(flow: torch.Tensor, max_norm: float | None = None) -> np.ndarray:
    """Colour-code (2, H, W) flow as (H, W, 3) floats in ``[0, 1]`` on the HSV wheel: hue =
    direction, saturation = magnitude relative to ``max_norm``, value = 1 (the convention of
    the Middlebury colour wheel without its hand-tuned hue ramp; paper Figure 4, probing).

    Args:
        flow: ``(dx, dy)`` in pixels.
        max_norm: magnitude of full saturation; the largest magnitude of ``flow`` when None.
    """
    dx, dy = flow[0].float(), flow[1].float()
    mag = torch.sqrt(dx**2 + dy**2)
    norm = max_norm if max_norm is not None else max(mag.max().item(), 1e-6)
    hue = (torch.atan2(dy, dx) / (2 * math.pi)) % 1.0  # (H, W) in [0, 1)
    sat = (mag / norm).clamp(0, 1)
    k = (torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1) + hue * 6.0) % 6.0  # (3, H, W)
    rgb = 1.0 - sat * (torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))  # HSV -> RGB with v = 1
    return rgb.permute(1, 2, 0).numpy()
