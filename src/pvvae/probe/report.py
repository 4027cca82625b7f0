"""Reports of the probing study: paper Table 3 in Markdown and the figures.

* :func:`table3_markdown`: one row per probed model (``w/o PR``, ``w/ PR``, ...), columns
  ``EPE ↓ | MSE ↓ | AUC(%) ↑`` as in paper Table 3, the relative gain over the first row in
  parentheses (the paper's ``(+12.5%)``), and one row of trivial baselines.
* flow is drawn with :func:`pvvae.eval.plots.flow_to_rgb` (HSV colour wheel).
* Figures: predicted vs true flow, predicted vs true next frame, tracks drawn on frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from pvvae.eval.plots import flow_to_rgb, image_grid_figure, save_figure, to_image

COLUMNS = (("flow", "epe", "EPE ↓", "{:.4f}"), ("next", "mse", "MSE ↓", "{:.4f}"),
           ("track", "auc", "AUC(%) ↑", "{:.2f}"))


def _cell(value: float | None, ref: float | None, fmt: str, lower_is_better: bool) -> str:
    """A table cell: the value and, when a reference is given, the relative gain over it."""
    if value is None:
        return "–"
    text = fmt.format(value)
    if ref is None or ref == 0 or value == ref:
        return text
    gain = (ref - value) / abs(ref) if lower_is_better else (value - ref) / abs(ref)
    return f"{text} ({gain:+.1%})"


def table3_markdown(
    rows: Mapping[str, Mapping[str, float]], baselines: Mapping[str, float] | None = None
) -> str:
    """Paper Table 3 layout.

    Args:
        rows: model name -> ``{"epe": ..., "mse": ..., "auc": ...}`` (missing tasks shown as –).
        baselines: the trivial baselines' values under the same keys (one extra row).

    Returns:
        A Markdown table; gains are relative to the first row (positive = better).
    """
    lines = ["| Method | " + " | ".join(c[2] for c in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    first = next(iter(rows.values()), {})
    for i, (name, metrics) in enumerate(rows.items()):
        cells = [_cell(metrics.get(key), first.get(key) if i else None, fmt, key != "auc")
                 for _, key, _, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if baselines:
        cells = [_cell(baselines.get(key), None, fmt, True) for _, key, _, fmt in COLUMNS]
        lines.append("| trivial baseline (zero flow / copy last / static points) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def flow_figure(pred: Tensor, true: Tensor, max_frames: int = 4) -> Figure:
    """True and predicted flow of one clip, (2, T-1, H, W) each, on the same colour scale."""
    frames = np.linspace(0, true.shape[1] - 1, min(max_frames, true.shape[1])).round().astype(int)
    norm = max(true.norm(dim=0).max().item(), 1e-6)
    rows = [(label, [flow_to_rgb(f[:, i], norm) for i in frames])
            for label, f in (("true flow", true), ("predicted", pred))]
    return image_grid_figure(rows, [f"frame {i}" for i in frames], "Optical flow probe")


def next_frame_figure(last: Tensor, pred: Tensor, true: Tensor, max_clips: int = 4) -> Figure:
    """Last input frame, predicted and true next frame, (B, 3, H, W) each in ``[-1, 1]``."""
    n = min(max_clips, len(true))
    rows = [(label, [to_image(x[i]) for i in range(n)])
            for label, x in (("last frame", last), ("predicted", pred), ("true next", true))]
    return image_grid_figure(rows, [f"clip {i}" for i in range(n)], "Next-frame probe")


def tracks_figure(
    video: Tensor, pred: Tensor, tracks: Tensor, visible: Tensor, max_frames: int = 4
) -> Figure:
    """Tracks drawn on frames of one clip: truth as circles (where visible), predictions as
    crosses, one colour per track.

    Args:
        video: (3, T, H, W) in ``[-1, 1]``; pred, tracks: (N, T, 2); visible: (N, T).
    """
    frames = np.linspace(0, video.shape[1] - 1, min(max_frames, video.shape[1]))
    frames = frames.round().astype(int)
    fig = Figure(figsize=(2.2 * len(frames), 2.4))
    axes = fig.subplots(1, len(frames), squeeze=False)[0]
    colors = [f"C{i % 10}" for i in range(len(tracks))]
    for ax, t in zip(axes, frames):
        ax.imshow(to_image(video[:, t]))
        for n, color in enumerate(colors):
            if visible[n, t]:
                ax.plot(*tracks[n, t].tolist(), "o", mfc="none", color=color, ms=6)
            ax.plot(*pred[n, t].tolist(), "x", color=color, ms=5)
        ax.set_title(f"frame {t}", fontsize=8)
        ax.axis("off")
    fig.suptitle("Point tracking probe (o truth, x prediction)", fontsize=9)
    return fig


def write_task_figure(task_name: str, pred: Tensor, data: dict[str, Tensor], path: Path,
                      video: Tensor | None = None) -> Path | None:
    """Save the figure of one task for the first evaluation clip(s); ``None`` if not drawable.

    Args:
        pred: the head's predictions for all evaluation clips (as the task's ``predict``).
        data: the stored evaluation tensors; video: (3, T, H, W) frames of clip 0 (tracking).
    """
    if task_name == "flow":
        return save_figure(flow_figure(pred[0], data["flow"][0]), path)
    if task_name == "next":
        return save_figure(next_frame_figure(data["last"], pred, data["next"]), path)
    if task_name == "track" and video is not None:
        fig = tracks_figure(video, pred[0], data["tracks"][0], data["visible"][0])
        return save_figure(fig, path)
    return None
