"""Latent-space diagnostics of a video VAE (paper section 4.3, Figures 4-6).

``pvvae eval latents VAE DATA`` runs one pass over the clips (posterior means of any VAE the
adapters load) and writes a report folder with:

1. **Latent statistics**: per-channel mean and standard deviation of the raw latents over all
   positions (clip, t, h, w) of the dataset, accumulated in float64 with Chan's parallel
   update (population std, divisor N). ``--write-config`` stores them in the PV-VAE config as
   ``latents_mean`` / ``latents_std`` (what ``vae.normalize`` uses for diffusion training).
2. **Latent Temporal Distance** (LTD, section 4.3 "Latent temporal coherence", "the average L2
   distance between latents across varying intervals"). For latents z (C, G, h, w) of a clip
   and an interval d in 1..G-1::

       LTD_d = mean over i in [0, G - d) and positions (y, x) of
               || z[:, i + d, y, x] - z[:, i, y, x] ||_2

   i.e. the L2 norm over channels of the difference of two latent "pixels" (the vectors a
   diffusion model sees per position), averaged over positions and frame pairs. The per-position
   norm makes the value independent of the resolution; the first latent frame (the frame-0
   group) is included, so that intervals reach G - 1 as in the paper. Figure 5c: histogram of
   the per-clip LTD_1 with its median. Figure 5d: the normalised curve
   ``mean_clips(LTD_d) / mean_clips(LTD_1)`` (starts at 1; a smoothly evolving latent
   trajectory rises monotonically). Absolute LTD depends on the latent scale and channel count:
   compare absolute values between VAEs of one layout, or use ``--normalized`` (latents scaled
   as the model's pipeline does, :meth:`VAEAdapter.normalize`), or the normalised curve.
3. **PCA** (section 4.3 "PCA analysis", Figure 4): per clip, PCA over the C-dim vectors of all
   its latent positions (t, h, w), projection on the top 3 components (sign fixed so that the
   largest loading is positive), each component min-max scaled over the whole clip (colours
   comparable across its frames) and shown as RGB beside the input frame that ends each latent
   group (frame 0, then 4j). For synthetic clips the ground-truth optical flow of those frames
   (flow from frame f to f + 1; the last frame shows the flow into it) is drawn below, colour
   wheel of :func:`pvvae.eval.plots.flow_to_rgb` (the paper shows RAFT flow; real clips get no
   flow row: no flow estimator is bundled).
4. **Prediction** (section 4.3 "Predictive reconstruction visualization", Figure 6), only for
   VAEs with :attr:`VAEAdapter.supports_prediction`: the encoder sees the first
   ``1 + t_factor * floor((G - 1) / 2)`` frames (the first half of the groups, 9 of 17), the
   VAE reconstructs the whole clip, and PSNR / SSIM of the predicted frames are compared with
   the copy-last-observed-frame baseline (the last observed ground-truth frame repeated).

Outputs: ``summary.json``, ``latent_stats.json``, ``ltd.json``, ``prediction.json``,
``ltd_hist.png``, ``ltd_curve.png``, ``pca.png``, ``prediction_grid.png``,
``prediction_psnr.png`` and ``report.md``.

This module runs the pass and writes the files; the maths is in :mod:`pvvae.eval.latent_math`,
the prediction test in :mod:`pvvae.eval.prediction`, the figures in
:mod:`pvvae.eval.latents_figures` and the report text in :mod:`pvvae.eval.latents_report`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pvvae.eval.clips import (
    EvalData,
    ground_truth_flow,
    iterate_clips,
    open_eval_data,
    report_folder,
    skip_summary,
    synthetic_objects,
    vae_folder_name,
)
from pvvae.eval.latent_math import ChannelStats, latent_temporal_distance
from pvvae.eval.latents_figures import ltd_figures, pca_figure, prediction_figures
from pvvae.eval.latents_report import report_text, write_latents_report
from pvvae.eval.prediction import add_prediction, prediction_split, prediction_summary
from pvvae.eval.report import write_json
from pvvae.eval.vae_adapter import VAEAdapter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatentsConfig:
    """Options of :func:`analyze_latents`.

    Attributes:
        resolution, num_frames: clip size (256, 17).
        num_clips: clips for statistics and LTD (the paper's LTD uses 1,000 videos).
        batch_size: clips per batch.
        seed: seed of the random video subset.
        pca_clips: clips shown in the PCA figure.
        pred_clips: clips of the prediction test (each needs one more encode + decode).
        grid_clips: clips shown in the prediction grid.
        normalized: LTD and PCA on ``adapter.normalize(z)`` instead of raw latents.
        workers: DataLoader workers.
    """

    resolution: int = 256
    num_frames: int = 17
    num_clips: int = 1000
    batch_size: int = 4
    seed: int = 0
    pca_clips: int = 4
    pred_clips: int = 64
    grid_clips: int = 2
    normalized: bool = False
    workers: int = 0


@dataclass
class _Accumulator:
    """What one pass over the clips collects."""

    stats: ChannelStats
    ltd: list[torch.Tensor] = field(default_factory=list)  # (B, G - 1) per batch
    pca: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    pred: dict[str, list] = field(default_factory=dict)
    motion: dict[str, list] = field(default_factory=dict)  # per-pair shape errors (synthetic)
    grid: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)


def _process_batch(
    adapter: VAEAdapter,
    x: torch.Tensor,
    indices: list[int],
    config: LatentsConfig,
    acc: _Accumulator,
    n_obs: int | None,
    objects=None,
) -> None:
    """Encode a batch and add it to statistics, LTD, PCA samples and the prediction test.

    ``objects``: for synthetic data, clip index -> its shapes
    (:func:`pvvae.data.synthetic.clip_objects`): the prediction test then also measures the
    shape position error of the prediction and of copy-last (:mod:`pvvae.eval.motion`)."""
    z = adapter.encode(x)  # (B, C, t, h, w) raw posterior mean
    acc.stats.update(z)
    view = adapter.normalize(z) if config.normalized else z
    acc.ltd.append(latent_temporal_distance(view).cpu())
    for j, index in enumerate(indices[: config.pca_clips - len(acc.pca)]):
        acc.pca.append((index, x[j].cpu(), view[j].cpu()))
    taken = len(acc.pred.get("psnr", []))
    if n_obs is None or taken >= config.pred_clips:
        return
    count = min(config.pred_clips - taken, len(indices))
    shapes = None if objects is None else [objects(i) for i in indices[:count]]
    out = add_prediction(adapter, x[:count], n_obs, acc.pred, acc.motion, shapes)
    for j in range(min(count, config.grid_clips - len(acc.grid))):
        acc.grid.append((indices[j], x[j].cpu(), out[j].cpu()))


def analyze_latents(
    adapter: VAEAdapter,
    data: EvalData,
    out_dir: str | Path,
    config: LatentsConfig,
    progress: bool = True,
) -> dict:
    """Run the latent diagnostics of the module docstring and write the report folder.

    Args:
        adapter: any VAE (prediction only where supported).
        data: clips (see :func:`pvvae.eval.clips.open_eval_data`).
        out_dir: report folder.
        config: options.
        progress: tqdm bar.

    Returns:
        The summary also written to ``summary.json``: ``vae``, ``data``, ``stats``, ``ltd``,
        ``pca``, ``prediction`` (None when not supported) and ``notes``.
    """
    out_dir = Path(out_dir)
    n_obs, skipped = prediction_split(adapter, config.num_frames, config.pred_clips)
    notes = [skipped] if skipped else []
    acc = _Accumulator(ChannelStats(adapter.latent_channels))
    bar = tqdm(total=len(data.indices), desc=adapter.label, unit="clip", disable=not progress)
    num_clips = 0
    for indices, x, _ in iterate_clips(data, data.indices, config.batch_size, config.workers):
        _process_batch(adapter, x.to(adapter.device), indices, config, acc, n_obs,
                       synthetic_objects(data))
        bar.update(len(indices))
        num_clips += len(indices)
    bar.close()
    summary = {
        "vae": adapter.describe(),
        "data": data.description,
        "num_clips": num_clips,  # unreadable files are skipped, not replaced
        **skip_summary(data),
        "config": asdict(config),
        "latent_space": "normalized (model pipeline scaling)" if config.normalized else "raw",
        "stats": _stats_summary(acc.stats),
        "ltd": _ltd_summary(acc.ltd),
        "prediction": prediction_summary(acc.pred, n_obs, config.num_frames, acc.motion),
        "notes": notes,
    }
    figures = ltd_figures(out_dir, {adapter.label: summary["ltd"]})
    flows = ground_truth_flow(data, [index for index, _, _ in acc.pca])
    pca_path, summary["pca"] = pca_figure(out_dir, adapter, acc.pca, flows)
    if pca_path is not None:
        figures["pca"] = pca_path
    if summary["prediction"] is not None:
        figures |= prediction_figures(out_dir, adapter, acc.grid, summary["prediction"])
    write_json(out_dir / "latent_stats.json", summary["stats"])
    write_json(out_dir / "ltd.json", summary["ltd"])
    write_json(out_dir / "prediction.json", summary["prediction"])
    write_json(out_dir / "summary.json", summary)
    (out_dir / "report.md").write_text(report_text(out_dir, summary, figures))
    return summary


def _stats_summary(stats: ChannelStats) -> dict:
    return {
        "latents_mean": stats.mean.tolist(),
        "latents_std": stats.std.tolist(),
        "num_positions": stats.count,
        "definition": "per channel over all (clip, t, h, w) positions of the raw posterior "
        "means; float64; population std",
    }


def _ltd_summary(batches: list[torch.Tensor]) -> dict:
    if not batches or batches[0].shape[1] == 0:
        return {"intervals": [], "note": "LTD needs clips of at least 2 latent frames"}
    ltd = torch.cat(batches).numpy()  # (N, G - 1)
    mean = ltd.mean(axis=0)
    return {
        "intervals": list(range(1, ltd.shape[1] + 1)),
        "mean": mean.tolist(),
        "std": ltd.std(axis=0).tolist(),
        "median": np.median(ltd, axis=0).tolist(),
        "normalized_mean": (mean / mean[0]).tolist() if mean[0] > 0 else None,
        "adjacent_per_clip": ltd[:, 0].tolist(),
        "adjacent_median": float(np.median(ltd[:, 0])),
        "definition": "LTD_d = mean over frame pairs (i, i + d) and positions of the channel L2 "
        "norm of z[:, i + d] - z[:, i]; normalized_mean = mean LTD_d / mean LTD_1",
    }


def default_out_dir(data: str, config: LatentsConfig) -> Path:
    """``runs/eval/latents-<data>-<frames>x<resolution>``: one folder (and comparison) per
    protocol; each VAE writes into its own sub-folder."""
    return report_folder("latents", data, config.num_frames, config.resolution)


def write_latent_stats(adapter: VAEAdapter, stats: dict, target: str | Path | None = None) -> Path:
    """Store ``latents_mean`` / ``latents_std`` in a PV-VAE config (``vae.set_latent_stats``).

    Args:
        adapter: a PV-VAE adapter.
        stats: ``{"latents_mean": [...], "latents_std": [...]}``.
        target: None updates the ``config.json`` of the folder the model was loaded from (the
            EMA folder of a checkpoint when present; weights untouched); a folder path writes a
            complete model there with ``save_pretrained`` (float32 weights).

    Returns:
        The folder written.

    Raises:
        ValueError: not a PV-VAE, or a preset without ``target``.
    """
    if adapter.kind != "pvvae":
        raise ValueError(f"--write-config needs a PV-VAE; {adapter.label} is {adapter.kind}")
    model = adapter.model
    model.set_latent_stats(stats["latents_mean"], stats["latents_std"])
    if target is not None:
        model.to(torch.float32).save_pretrained(target)
        return Path(target)
    if adapter.folder is None:
        raise ValueError(f"{adapter.source} has no folder: give --write-config DIR")
    model.save_config(adapter.folder)
    return Path(adapter.folder)


def _check_write_config(specs: list[str], target: str | Path | None) -> None:
    """Fail before the long pass when ``--write-config`` cannot be honoured."""
    from pvvae.inference.spec import PRESET, parse_vae_spec

    kinds = [parse_vae_spec(spec).kind for spec in specs]
    if any(kind not in ("pvvae", PRESET) for kind in kinds):
        raise ValueError("--write-config needs PV-VAE specs (pvvae:... / preset:...)")
    if target is not None and len(specs) > 1:
        raise ValueError("--write-config DIR takes a single VAE")
    if target is None and PRESET in kinds:
        raise ValueError("a preset has no folder: give --write-config DIR")


def run_latents(
    specs: list[str],
    data: str,
    out_dir: str | Path | None,
    config: LatentsConfig,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    write_config: bool = False,
    config_target: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """``pvvae eval latents``: analyse each VAE into ``out_dir/<vae>/`` and compare them.

    Args:
        specs: VAE specs (see :func:`pvvae.eval.adapters.load_vae`).
        data: see :func:`pvvae.eval.clips.open_eval_data`.
        out_dir: report folder (default :func:`default_out_dir`); VAEs analysed into it before
            appear in its comparison too.
        config: options.
        device, dtype: where and how the VAEs run.
        write_config: store each PV-VAE's statistics in its config (:func:`write_latent_stats`).
        config_target: with ``write_config``, a new model folder instead (single VAE).
        progress: tqdm bars.

    Returns:
        The report folder.
    """
    from pvvae.eval.adapters import load_vae

    if write_config:
        _check_write_config(specs, config_target)
    clips = open_eval_data(data, config.num_frames, config.resolution, config.num_clips,
                           config.seed)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(data, config)
    for spec in specs:
        adapter = load_vae(spec, device, dtype)
        folder = out_dir / vae_folder_name(adapter.label, adapter.source)
        summary = analyze_latents(adapter, clips, folder, config, progress)
        if write_config:
            written = write_latent_stats(adapter, summary["stats"], config_target)
            logger.info("latents_mean / latents_std written to %s", written)
        del adapter
    write_latents_report(out_dir)
    return out_dir
