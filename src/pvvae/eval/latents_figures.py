"""The figures of ``pvvae eval latents`` (paper section 4.3): LTD histogram and curve
(Figure 5c/5d), PCA of the latent channels (Figure 4) and the prediction grid and PSNR curve
(Figure 6). Each function writes PNGs into a folder and returns their paths by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pvvae.eval.latent_math import group_end_frames, pca_rgb
from pvvae.eval.plots import (
    curve_figure,
    flow_to_rgb,
    histogram_figure,
    image_grid_figure,
    save_figure,
    to_image,
)
from pvvae.eval.vae_adapter import VAEAdapter


def ltd_figures(out_dir: Path, ltds: dict[str, dict]) -> dict[str, Path]:
    """LTD histogram (Figure 5c) and normalised LTD curve (Figure 5d), one series per VAE.

    Args:
        out_dir: where ``ltd_hist.png`` and ``ltd_curve.png`` go.
        ltds: VAE label -> the ``ltd`` summary of :func:`pvvae.eval.latents.analyze_latents`;
            VAEs of fewer than 2 latent frames (no intervals) are left out, shorter curves are
            padded with NaN to the longest.

    Returns:
        ``{"ltd_hist": path, "ltd_curve": path}``, the curve only where some VAE has one.
    """
    with_ltd = {label: ltd for label, ltd in ltds.items() if ltd["intervals"]}
    if not with_ltd:
        return {}
    hist = histogram_figure(
        {label: ltd["adjacent_per_clip"] for label, ltd in with_ltd.items()},
        "adjacent-frame LTD (d = 1)",
        "Short-term temporal smoothness (paper Fig. 5c)",
    )
    figures = {"ltd_hist": save_figure(hist, out_dir / "ltd_hist.png")}
    longest = max((ltd["intervals"] for ltd in with_ltd.values()), key=len)
    pad = lambda v: v + [float("nan")] * (len(longest) - len(v))  # noqa: E731
    curves = {label: pad(ltd["normalized_mean"]) for label, ltd in with_ltd.items()
              if ltd["normalized_mean"]}
    if curves:
        curve = curve_figure(
            longest,
            curves,
            "frame interval d (latent frames)",
            "LTD_d / LTD_1",
            "Long-term temporal dynamics (paper Fig. 5d)",
        )
        figures["ltd_curve"] = save_figure(curve, out_dir / "ltd_curve.png")
    return figures


def pca_figure(
    out_dir: Path,
    adapter: VAEAdapter,
    clips: list[tuple[int, torch.Tensor, torch.Tensor]],
    flows: dict[int, torch.Tensor],
) -> tuple[Path | None, dict]:
    """Figure 4: input frames above the RGB of the top-3 PCA components, for each clip.

    Args:
        out_dir: where ``pca.png`` goes.
        adapter: the VAE (label, temporal factor).
        clips: (index, pixels (3, T, H, W), latents (C, t, h, w)) of the clips shown.
        flows: clip index -> ground-truth flow (2, T-1, H, W), drawn below where present.

    Returns:
        The PNG's path (None without clips) and the ``pca`` summary: clips, explained-variance
        ratios, definition.
    """
    rows, ratios = [], []
    for index, x, z in clips:
        rgb, ratio = pca_rgb(z)  # (t, h, w, 3)
        ratios.append(ratio.tolist())
        frames = group_end_frames(z.shape[1], x.shape[1], adapter.temporal_compression)
        rows.append((f"clip {index}", [to_image(x[:, f]) for f in frames]))
        rows.append(("PCA top-3", [rgb[j].numpy() for j in range(rgb.shape[0])]))
        if index in flows:
            flow = flows[index]  # (2, T-1, H, W)
            norm = max(flow.norm(dim=0).max().item(), 1e-6)
            steps = [min(f, flow.shape[1] - 1) for f in frames]
            rows.append(("flow (truth)", [flow_to_rgb(flow[:, f], norm) for f in steps]))
    path = None
    if rows:
        width = max(len(images) for _, images in rows)
        titles = [f"latent {j}" for j in range(width)]
        fig = image_grid_figure(rows, titles, f"PCA of latent channels, {adapter.label}")
        path = save_figure(fig, out_dir / "pca.png")
    return path, {
        "clips": [index for index, _, _ in clips],
        "explained_variance_ratio": ratios,
        "definition": "per clip, PCA over all latent positions (t, h, w); top-3 components, "
        "min-max scaled per component over the clip, as RGB",
    }


def prediction_figures(
    out_dir: Path,
    adapter: VAEAdapter,
    grid: list[tuple[int, torch.Tensor, torch.Tensor]],
    pred: dict,
) -> dict[str, Path]:
    """Figure 6: ground truth above the VAE's output (observed reconstruction + prediction),
    and the per-frame PSNR of the prediction beside copy-last.

    Args:
        out_dir: where ``prediction_grid.png`` and ``prediction_psnr.png`` go.
        adapter: the VAE (label).
        grid: (index, truth (3, T, H, W), output (3, T, H, W)) of the clips shown.
        pred: the ``prediction`` summary (:func:`pvvae.eval.prediction.prediction_summary`).
    """
    n_obs, num_frames = pred["observed_frames"], pred["observed_frames"] + pred["predicted_frames"]
    chosen = np.linspace(0, num_frames - 1, min(8, num_frames)).round().astype(int).tolist()
    frames = sorted(set(chosen) | {n_obs - 1, n_obs})
    titles = [f"{'obs' if f < n_obs else 'pred'} {f}" for f in frames]
    rows = []
    for index, x, out in grid:
        rows.append((f"clip {index} truth", [to_image(x[:, f]) for f in frames]))
        rows.append(("output", [to_image(out[:, f]) for f in frames]))
    fig = image_grid_figure(
        rows, titles, f"{adapter.label}: observe {n_obs} frames, predict {num_frames - n_obs}"
    )
    curve = curve_figure(
        pred["frame_index"],
        {"prediction": pred["frame_psnr"], "copy last frame": pred["baseline_frame_psnr"]},
        "frame index (predicted part)",
        "PSNR (dB)",
        f"Predicted frames, {adapter.label}",
    )
    return {
        "prediction_grid": save_figure(fig, out_dir / "prediction_grid.png"),
        "prediction_psnr": save_figure(curve, out_dir / "prediction_psnr.png"),
    }
