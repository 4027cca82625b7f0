"""Latent-space diagnostics of a video VAE (seed section 4.3, Figures 4-6).

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
   group) is included, so that intervals reach G - 1 as in the seed. Figure 5c: histogram of
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
   wheel of :func:`pvvae.eval.plots.flow_to_rgb` (the seed shows RAFT flow; real clips get no
   flow row: no flow estimator is bundled).
4. **Prediction** (section 4.3 "Predictive reconstruction visualization", Figure 6), only for
   VAEs with :attr:`VAEAdapter.supports_prediction`: the encoder sees the first
   ``1 + t_factor * floor((G - 1) / 2)`` frames (the first half of the groups, 9 of 17), the
   VAE reconstructs the whole clip, and PSNR / SSIM of the predicted frames are compared with
   the copy-last-observed-frame baseline (the last observed ground-truth frame repeated).

Outputs: ``summary.json``, ``latent_stats.json``, ``ltd.json``, ``prediction.json``,
``ltd_hist.png``, ``ltd_curve.png``, ``pca.png``, ``prediction_grid.png``,
``prediction_psnr.png`` and ``report.md``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from tqdm import tqdm

from pvvae.eval.adapters import VAEAdapter
from pvvae.eval.motion import (
    best_blur,
    clip_object_errors,
    copy_last,
    copy_last_psnr_by_sigma,
    observed_frames,
    slice_objects,
)
from pvvae.eval.plots import (
    curve_figure,
    flow_to_rgb,
    histogram_figure,
    image_grid_figure,
    save_figure,
    to_image,
)
from pvvae.eval.recon import (
    EvalData,
    iterate_clips,
    open_eval_data,
    skip_summary,
    vae_folder_name,
)
from pvvae.eval.report import (
    fmt,
    image_link,
    markdown_table,
    read_json,
    slugify,
    write_json,
)

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- math
class ChannelStats:
    """Running per-channel mean and population std of latents, in float64.

    Chan et al.'s parallel update merges the (count, mean, M2) of each batch, which stays
    accurate where ``E[z^2] - E[z]^2`` would cancel.

    Args:
        channels: C.
    """

    def __init__(self, channels: int) -> None:
        self.count = 0
        self.mean_ = torch.zeros(channels, dtype=torch.float64)
        self.m2 = torch.zeros(channels, dtype=torch.float64)

    def update(self, z: torch.Tensor) -> None:
        """Add latents (B, C, t, h, w): every (b, t, h, w) position is one sample per channel."""
        values = rearrange(z.detach().double().cpu(), "b c t h w -> c (b t h w)")
        n = values.shape[1]
        mean = values.mean(dim=1)
        m2 = (values - mean[:, None]).pow(2).sum(dim=1)
        total = self.count + n
        delta = mean - self.mean_
        self.mean_ = self.mean_ + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.pow(2) * (self.count * n / total)
        self.count = total

    @property
    def mean(self) -> torch.Tensor:
        """(C,) float64 mean."""
        return self.mean_.clone()

    @property
    def std(self) -> torch.Tensor:
        """(C,) float64 population standard deviation (divisor N)."""
        if self.count == 0:
            raise ValueError("no latents were added")
        return (self.m2 / self.count).sqrt()


def latent_temporal_distance(z: torch.Tensor) -> torch.Tensor:
    """Latent Temporal Distance of each clip at every interval (definition in the module doc).

    Args:
        z: (B, C, G, h, w) latents.

    Returns:
        (B, G - 1) float64: column d - 1 holds LTD_d, for d = 1..G-1.
    """
    z = z.detach().double()
    columns = []
    for d in range(1, z.shape[2]):
        diff = z[:, :, d:] - z[:, :, :-d]  # (B, C, G - d, h, w)
        columns.append(diff.norm(dim=1).mean(dim=(1, 2, 3)))  # channel L2 -> (B,)
    if not columns:
        return z.new_zeros(z.shape[0], 0)
    return torch.stack(columns, dim=1)  # (B, G - 1)


def pca_project(vectors: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Project vectors on their top-k principal components.

    Args:
        vectors: (N, C) samples.
        k: components kept; columns beyond C are zero.

    Returns:
        (N, k) float64 projections of the centred vectors, and (k,) explained-variance ratios.
        Each component's sign makes its largest-magnitude loading positive (deterministic).
    """
    x = vectors.double()
    x = x - x.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)  # vh: (min(N, C), C)
    components = vh[:k]
    largest = components.abs().argmax(dim=1)
    signs = components.gather(1, largest[:, None]).sign()
    components = components * torch.where(signs == 0, 1.0, signs)
    projection = x @ components.T  # (N, k')
    variance = s.pow(2)
    ratio = variance[:k] / variance.sum().clamp_min(1e-300)
    missing = k - projection.shape[1]
    if missing > 0:
        projection = torch.cat([projection, projection.new_zeros(len(x), missing)], dim=1)
        ratio = torch.cat([ratio, ratio.new_zeros(missing)])
    return projection, ratio


def pca_rgb(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-3 PCA components of one clip's latents as RGB images (seed Figure 4).

    Args:
        z: (C, t, h, w) latents of one clip.

    Returns:
        (t, h, w, 3) float64 in [0, 1] (each component min-max scaled over the clip; a constant
        component maps to 0.5), and the (3,) explained-variance ratios.
    """
    c, t, h, w = z.shape
    projection, ratio = pca_project(rearrange(z, "c t h w -> (t h w) c"))  # (t*h*w, 3)
    lo, hi = projection.min(dim=0).values, projection.max(dim=0).values
    span = hi - lo
    rgb = torch.where(span > 0, (projection - lo) / span.clamp_min(1e-300), 0.5)
    return rearrange(rgb, "(t h w) k -> t h w k", t=t, h=h, w=w), ratio


def group_end_frames(num_latent: int, num_frames: int, temporal_compression: int) -> list[int]:
    """The input frame ending each latent group: 0, then ``t_factor * j`` (capped at T - 1)."""
    return [min(temporal_compression * j, num_frames - 1) for j in range(num_latent)]


# ---------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class LatentsConfig:
    """Options of :func:`analyze_latents`.

    Attributes:
        resolution, num_frames: clip size (256, 17).
        num_clips: clips for statistics and LTD (the seed's LTD uses 1,000 videos).
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
    pca_flow: dict[int, torch.Tensor] = field(default_factory=dict)  # clip -> (2, T-1, H, W)
    pred: dict[str, list] = field(default_factory=dict)
    motion: dict[str, list] = field(default_factory=dict)  # per-pair shape errors (synthetic)
    grid: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- pass
def _prediction_scores(
    adapter: VAEAdapter, x: torch.Tensor, n_obs: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Predict frames n_obs.. of x (B, 3, T, H, W) and score them against copy-last-frame.

    Returns:
        per-clip tensors ``psnr, ssim, baseline_psnr, baseline_ssim, observed_psnr`` (B,),
        per-frame ``frame_psnr, baseline_frame_psnr`` (B, T - n_obs), the blurred copy-last
        PSNR per sigma ``blur_by_sigma`` (B, 1 + S; :mod:`pvvae.eval.motion`), and the
        output clip.
    """
    from pvvae.eval.metrics.psnr_ssim import psnr_frames, to_unit_range, video_psnr, video_ssim

    future = x.shape[2] - n_obs
    out = adapter.predict(x[:, :, :n_obs], future)  # (B, 3, T, H, W)
    truth = x[:, :, n_obs:]
    pred = out[:, :, n_obs:]
    copy = copy_last(x, n_obs)
    blur = copy_last_psnr_by_sigma(x, n_obs)  # (B, 1 + S)

    def per_frame(a: torch.Tensor) -> torch.Tensor:
        frames = lambda v: rearrange(to_unit_range(v), "b c t h w -> (b t) c h w")  # noqa: E731
        return rearrange(psnr_frames(frames(a), frames(truth)), "(b t) -> b t", t=future)

    scores = {
        "psnr": video_psnr(pred, truth),
        "ssim": video_ssim(pred, truth),
        "baseline_psnr": video_psnr(copy, truth),
        "baseline_ssim": video_ssim(copy, truth),
        "observed_psnr": video_psnr(out[:, :, :n_obs], x[:, :, :n_obs]),
        "frame_psnr": per_frame(pred),
        "baseline_frame_psnr": per_frame(copy),
        "blur_by_sigma": blur,
    }
    return {k: v.cpu() for k, v in scores.items()}, out


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
    scores, out = _prediction_scores(adapter, x[:count], n_obs)
    for key, value in scores.items():
        acc.pred.setdefault(key, []).extend(value)
    if objects is not None:
        shapes = slice_objects([objects(i) for i in indices[:count]], n_obs)
        for key, frames in (("pred", out[:count, :, n_obs:]),
                            ("copy_last", copy_last(x[:count], n_obs))):
            parts = [clip_object_errors(f, o) for f, o in zip(frames, shapes)]
            for name in ("position", "iou", "missed"):
                acc.motion.setdefault(f"{key}_object_{name}", []).extend(p[name] for p in parts)
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
        data: clips (see :func:`pvvae.eval.recon.open_eval_data`).
        out_dir: report folder.
        config: options.
        progress: tqdm bar.

    Returns:
        The summary also written to ``summary.json``: ``vae``, ``data``, ``stats``, ``ltd``,
        ``pca``, ``prediction`` (None when not supported) and ``notes``.
    """
    out_dir = Path(out_dir)
    n_obs = None
    notes = []
    if not adapter.supports_prediction:
        notes.append(f"prediction skipped: {adapter.label} has no predictive decoder")
    elif config.num_frames <= 1 or config.pred_clips <= 0:
        notes.append("prediction skipped: needs clips of more than one frame and --pred-clips > 0")
    else:
        n_obs = observed_frames(adapter.valid_num_frames(config.num_frames),
                                adapter.temporal_compression)
        n_obs = min(n_obs, config.num_frames - 1)
    acc = _Accumulator(ChannelStats(adapter.latent_channels))
    bar = tqdm(total=len(data.indices), desc=adapter.label, unit="clip", disable=not progress)
    num_clips = 0
    for indices, x, _ in iterate_clips(data, data.indices, config.batch_size, config.workers):
        _process_batch(adapter, x.to(adapter.device), indices, config, acc, n_obs,
                       _shape_source(data))
        bar.update(len(indices))
        num_clips += len(indices)
    bar.close()
    acc.pca_flow = _ground_truth_flow(data, [index for index, _, _ in acc.pca])
    summary = {
        "vae": adapter.describe(),
        "data": data.description,
        "num_clips": num_clips,  # unreadable files are skipped, not replaced
        **skip_summary(data),
        "config": asdict(config),
        "latent_space": "normalized (model pipeline scaling)" if config.normalized else "raw",
        "stats": _stats_summary(acc.stats),
        "ltd": _ltd_summary(acc.ltd),
        "prediction": _prediction_summary(acc.pred, n_obs, config.num_frames, acc.motion),
        "notes": notes,
    }
    figures = _write_figures(out_dir, adapter, acc, summary)
    summary["pca"] = figures.pop("pca_summary")
    write_json(out_dir / "latent_stats.json", summary["stats"])
    write_json(out_dir / "ltd.json", summary["ltd"])
    write_json(out_dir / "prediction.json", summary["prediction"])
    write_json(out_dir / "summary.json", summary)
    (out_dir / "report.md").write_text(_report_text(out_dir, summary, figures))
    return summary


# ---------------------------------------------------------------------------------------- summaries
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


def _prediction_summary(
    pred: dict[str, list], n_obs: int | None, num_frames: int, motion: dict[str, list]
) -> dict | None:
    if n_obs is None or not pred:
        return None
    pred = dict(pred)
    blur = best_blur(torch.stack(pred.pop("blur_by_sigma")))
    mean = {k: float(torch.stack(v).double().mean()) for k, v in pred.items() if "frame" not in k}
    frame = {k: torch.stack(v).mean(dim=0).tolist() for k, v in pred.items() if "frame" in k}
    pairs = {k: torch.cat(v).double() for k, v in motion.items()}
    shapes = {k: float(v.mean()) if len(v) else None for k, v in pairs.items()}
    return {
        "blur_baseline_psnr": blur["psnr"],
        "blur_baseline_sigma": blur["sigma"],
        **shapes,
        "observed_frames": n_obs,
        "predicted_frames": num_frames - n_obs,
        "num_clips": len(pred["psnr"]),
        **mean,
        "frame_index": list(range(n_obs, num_frames)),
        **frame,
        "definition": "PSNR/SSIM of the predicted frames (per frame, mean over frames and "
        "clips); baseline: the last observed ground-truth frame repeated; blur baseline: the "
        "same, Gaussian-blurred, best sigma; *_object_*: shape position error (px), IoU and "
        "missed fraction (synthetic data only, pvvae.eval.motion)",
    }


# ---------------------------------------------------------------------------------------- figures
def _write_figures(out_dir: Path, adapter: VAEAdapter, acc: _Accumulator, summary: dict) -> dict:
    """Write the PNGs; returns name -> path (and the PCA summary under "pca_summary")."""
    figures: dict = {}
    ltd = summary["ltd"]
    if ltd["intervals"]:
        figures["ltd_hist"] = save_figure(
            histogram_figure(
                {adapter.label: ltd["adjacent_per_clip"]},
                "adjacent-frame LTD (d = 1)",
                "Short-term temporal smoothness (seed Fig. 5c)",
            ),
            out_dir / "ltd_hist.png",
        )
        if ltd["normalized_mean"] is not None:
            figures["ltd_curve"] = save_figure(
                curve_figure(
                    ltd["intervals"],
                    {adapter.label: ltd["normalized_mean"]},
                    "frame interval d (latent frames)",
                    "LTD_d / LTD_1",
                    "Long-term temporal dynamics (seed Fig. 5d)",
                ),
                out_dir / "ltd_curve.png",
            )
    figures["pca_summary"] = _pca_figure(out_dir, adapter, acc, figures)
    pred = summary["prediction"]
    if pred is not None:
        figures["prediction_grid"] = _prediction_grid(out_dir, adapter, acc.grid, pred)
        figures["prediction_psnr"] = save_figure(
            curve_figure(
                pred["frame_index"],
                {"prediction": pred["frame_psnr"], "copy last frame": pred["baseline_frame_psnr"]},
                "frame index (predicted part)",
                "PSNR (dB)",
                f"Predicted frames, {adapter.label}",
            ),
            out_dir / "prediction_psnr.png",
        )
    return figures


def _shape_source(data: EvalData):
    """clip index -> its shapes for synthetic data (``SyntheticVideoDataset.objects``), or
    None for real data."""
    from pvvae.data.synthetic import SyntheticVideoDataset

    dataset = data.dataset
    return dataset.objects if isinstance(dataset, SyntheticVideoDataset) else None


def _ground_truth_flow(data: EvalData, indices: list[int]) -> dict[int, torch.Tensor]:
    """Ground-truth flow (2, T-1, H, W) of synthetic clips ``indices`` (empty for real data)."""
    from dataclasses import replace

    from pvvae.data.synthetic import SyntheticVideoDataset, synthetic_clip

    dataset = data.dataset
    if not isinstance(dataset, SyntheticVideoDataset) or dataset.config.num_frames < 2:
        return {}
    config = replace(dataset.config, annotations=True)
    return {i: synthetic_clip(dataset.seed, i, config)["flow"] for i in indices}


def _pca_figure(out_dir: Path, adapter: VAEAdapter, acc: _Accumulator, figures: dict) -> dict:
    """Figure 4: input frames above the RGB of the top-3 PCA components, for each clip."""
    rows, ratios = [], []
    for index, x, z in acc.pca:
        rgb, ratio = pca_rgb(z)  # (t, h, w, 3)
        ratios.append(ratio.tolist())
        frames = group_end_frames(z.shape[1], x.shape[1], adapter.temporal_compression)
        rows.append((f"clip {index}", [to_image(x[:, f]) for f in frames]))
        rows.append(("PCA top-3", [rgb[j].numpy() for j in range(rgb.shape[0])]))
        if index in acc.pca_flow:
            flow = acc.pca_flow[index]  # (2, T-1, H, W)
            norm = max(flow.norm(dim=0).max().item(), 1e-6)
            steps = [min(f, flow.shape[1] - 1) for f in frames]
            rows.append(("flow (truth)", [flow_to_rgb(flow[:, f], norm) for f in steps]))
    if rows:
        width = max(len(images) for _, images in rows)
        titles = [f"latent {j}" for j in range(width)]
        fig = image_grid_figure(rows, titles, f"PCA of latent channels, {adapter.label}")
        figures["pca"] = save_figure(fig, out_dir / "pca.png")
    return {
        "clips": [index for index, _, _ in acc.pca],
        "explained_variance_ratio": ratios,
        "definition": "per clip, PCA over all latent positions (t, h, w); top-3 components, "
        "min-max scaled per component over the clip, as RGB",
    }


def _prediction_grid(
    out_dir: Path, adapter: VAEAdapter, grid: list, pred: dict
) -> Path:
    """Figure 6: ground truth above the VAE's output (observed reconstruction + prediction)."""
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
    return save_figure(fig, out_dir / "prediction_grid.png")


# ---------------------------------------------------------------------------------------- report
def _report_text(out_dir: Path, summary: dict, figures: dict) -> str:
    vae, stats, ltd = summary["vae"], summary["stats"], summary["ltd"]
    lines = [
        f"# Latent diagnostics: {vae['label']}",
        "",
        f"- VAE: `{vae['source']}` ({vae['name']}, {vae['latent_layout']}, "
        f"{vae['parameters'] / 1e6:.1f}M parameters, {vae['dtype']} on {vae['device']})",
        f"- data: {summary['data']}; {summary['num_clips']} clips of "
        f"{summary['config']['num_frames']}×{summary['config']['resolution']}"
        f"×{summary['config']['resolution']}",
        f"- latents: posterior mean; LTD and PCA on {summary['latent_space']} latents",
        *[f"- note: {note}" for note in summary["notes"]],
        "",
        "## Latent statistics (raw latents)",
        "",
        _stats_table(stats),
        "",
        "Full per-channel values: `latent_stats.json` (`latents_mean`, `latents_std`).",
        "",
        "## Latent Temporal Distance (seed section 4.3, Fig. 5c/5d)",
        "",
        f"Definition: {ltd.get('definition', ltd.get('note'))}.",
        "",
    ]
    if ltd["intervals"]:
        rows = [
            [d, fmt(m, ".4g"), fmt(md, ".4g"), fmt(s, ".4g"), fmt(n, ".3f") if n else "n/a"]
            for d, m, md, s, n in zip(
                ltd["intervals"], ltd["mean"], ltd["median"], ltd["std"],
                ltd["normalized_mean"] or [None] * len(ltd["mean"]),
            )
        ]
        lines += [markdown_table(["d", "mean", "median", "std", "mean / mean(d=1)"], rows), ""]
    lines += [_image(figures, key, out_dir) + "\n" for key in ("ltd_hist", "ltd_curve")
              if key in figures]
    lines += ["", "## PCA of latent channels (seed Fig. 4)", ""]
    ratios = summary["pca"]["explained_variance_ratio"]
    if ratios:
        share = np.mean([sum(r) for r in ratios])
        lines += [f"Top-3 components explain {100 * share:.1f}% of the latent variance "
                  "(mean over the clips shown).", "", _image(figures, "pca", out_dir)]
    lines += ["", "## Prediction (seed Fig. 6)", "", *_prediction_lines(summary, figures, out_dir)]
    return "\n".join(lines) + "\n"


def _stats_table(stats: dict) -> str:
    mean, std = np.asarray(stats["latents_mean"]), np.asarray(stats["latents_std"])
    rows = [
        [name, fmt(v.min(), ".4g"), fmt(float(np.median(v)), ".4g"), fmt(v.max(), ".4g")]
        for name, v in (("mean", mean), ("std", std))
    ]
    return markdown_table(["over channels", "min", "median", "max"], rows)


def _prediction_lines(summary: dict, figures: dict, out_dir: Path) -> list[str]:
    pred = summary["prediction"]
    if pred is None:
        return ["Skipped: " + "; ".join(summary["notes"]) if summary["notes"] else "Skipped."]
    rows = [
        ["prediction", fmt(pred["psnr"]), fmt(pred["ssim"], ".3f")],
        ["copy last observed frame", fmt(pred["baseline_psnr"]), fmt(pred["baseline_ssim"], ".3f")],
        [f"the same, Gaussian-blurred (best sigma {pred['blur_baseline_sigma']:g} px)",
         fmt(pred["blur_baseline_psnr"]), ""],
    ]
    if pred.get("pred_object_position") is not None:
        rows[0].append(fmt(pred["pred_object_position"]))
        rows[1].append(fmt(pred["copy_last_object_position"]))
        rows[2].append("")
    return [
        f"Observe {pred['observed_frames']} frames, predict {pred['predicted_frames']} "
        f"({pred['num_clips']} clips); reconstruction PSNR of the observed part "
        f"{pred['observed_psnr']:.2f} dB.",
        "",
        markdown_table(["predicted frames", "PSNR↑", "SSIM↑",
                        *(["shape position error (px)↓"] if len(rows[0]) > 3 else [])], rows),
        "",
        _image(figures, "prediction_grid", out_dir),
        "",
        _image(figures, "prediction_psnr", out_dir),
    ]


def _image(figures: dict, key: str, out_dir: Path) -> str:
    return image_link(figures[key], out_dir, key) if key in figures else ""


def default_out_dir(data: str, config: LatentsConfig) -> Path:
    """``runs/eval/latents-<data>-<frames>x<resolution>``: one folder (and comparison) per
    protocol; each VAE writes into its own sub-folder."""
    name = slugify(Path(data.rstrip("/")).name or data)
    return Path("runs") / "eval" / f"latents-{name}-{config.num_frames}x{config.resolution}"


# ---------------------------------------------------------------------------------------- compare
def write_latents_report(out_dir: str | Path) -> Path:
    """Compare every VAE analysed into ``out_dir/*/`` (seed Fig. 5c/5d overlay several models).

    Writes ``comparison.json``, overlaid ``ltd_hist.png`` / ``ltd_curve.png`` and ``report.md``
    with one row per VAE and its PCA and prediction figures.

    Returns:
        The path of report.md.
    """
    out_dir = Path(out_dir)
    runs = [(p.parent, read_json(p)) for p in sorted(out_dir.glob("*/summary.json"))]
    if not runs:
        raise FileNotFoundError(f"no */summary.json under {out_dir}")
    rows = [_comparison_row(folder, summary) for folder, summary in runs]
    write_json(out_dir / "comparison.json", rows)
    figures = _comparison_figures(out_dir, runs)
    (out_dir / "report.md").write_text(_comparison_text(out_dir, runs, rows, figures))
    return out_dir / "report.md"


def _comparison_figures(out_dir: Path, runs: list[tuple[Path, dict]]) -> dict[str, Path]:
    """Overlaid LTD histogram and normalised LTD curve of all VAEs with >= 2 latent frames."""
    with_ltd = {s["vae"]["label"]: s["ltd"] for _, s in runs if s["ltd"]["intervals"]}
    if not with_ltd:
        return {}
    hist = histogram_figure(
        {label: ltd["adjacent_per_clip"] for label, ltd in with_ltd.items()},
        "adjacent-frame LTD (d = 1)",
        "Short-term temporal smoothness (seed Fig. 5c)",
    )
    longest = max((ltd["intervals"] for ltd in with_ltd.values()), key=len)
    pad = lambda v: v + [float("nan")] * (len(longest) - len(v))  # noqa: E731
    curve = curve_figure(
        longest,
        {label: pad(ltd["normalized_mean"]) for label, ltd in with_ltd.items()
         if ltd["normalized_mean"]},
        "frame interval d (latent frames)",
        "LTD_d / LTD_1",
        "Long-term temporal dynamics (seed Fig. 5d)",
    )
    return {
        "ltd_hist": save_figure(hist, out_dir / "ltd_hist.png"),
        "ltd_curve": save_figure(curve, out_dir / "ltd_curve.png"),
    }


def _comparison_row(folder: Path, summary: dict) -> dict:
    """The numbers of one VAE that the comparison table shows."""
    ltd, pred, pca = summary["ltd"], summary["prediction"], summary["pca"]
    ratios = pca["explained_variance_ratio"]
    return {
        "label": summary["vae"]["label"],
        "folder": folder.name,
        "latent_layout": summary["vae"]["latent_layout"],
        "latent_space": summary["latent_space"],
        "num_clips": summary["num_clips"],
        "ltd1_median": ltd.get("adjacent_median"),
        "ltd_last_over_ltd1": (ltd["normalized_mean"] or [None])[-1] if ltd["intervals"] else None,
        "pca_top3_share": float(np.mean([sum(r) for r in ratios])) if ratios else None,
        "pred_psnr": pred["psnr"] if pred else None,
        "copy_last_psnr": pred["baseline_psnr"] if pred else None,
    }


def _comparison_text(out_dir: Path, runs: list, rows: list[dict], figures: dict) -> str:
    cfg = runs[0][1]["config"]
    table = markdown_table(
        ["Method", "Latent", "latents", "clips", "LTD₁ median", "LTD_max / LTD₁",
         "PCA top-3", "pred PSNR", "copy-last PSNR"],
        [[r["label"], r["latent_layout"], r["latent_space"], r["num_clips"],
          fmt(r["ltd1_median"], ".4g"), fmt(r["ltd_last_over_ltd1"], ".3f"),
          fmt(r["pca_top3_share"], ".1%"), fmt(r["pred_psnr"]), fmt(r["copy_last_psnr"])]
         for r in rows],
    )
    lines = [
        "# Latent diagnostics (seed section 4.3)",
        "",
        f"Clips: {cfg['num_frames']}×{cfg['resolution']}×{cfg['resolution']} of "
        f"{runs[0][1]['data']}. Posterior-mean latents. LTD_d: mean over frame pairs (i, i + d) "
        "and positions of the channel L2 norm of z[:, i + d] - z[:, i]; absolute LTD depends on "
        "each VAE's latent scale and channels (compare the normalised curve across layouts).",
        "",
        table,
        "",
        *[_image(figures, key, out_dir) + "\n" for key in ("ltd_hist", "ltd_curve")
          if key in figures],
    ]
    for folder, summary in runs:
        lines += [f"## {summary['vae']['label']}", "",
                  f"Details: [{folder.name}/report.md]({folder.name}/report.md)", ""]
        lines += [image_link(folder / name, out_dir, name) + "\n"
                  for name in ("pca.png", "prediction_grid.png") if (folder / name).is_file()]
    return "\n".join(lines) + "\n"


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
    from pvvae.eval.adapters import parse_spec

    kinds = [parse_spec(spec)[1] for spec in specs]
    if any(kind not in ("pvvae", "pvvae-preset") for kind in kinds):
        raise ValueError("--write-config needs PV-VAE specs (pvvae:... / pvvae-preset:...)")
    if target is not None and len(specs) > 1:
        raise ValueError("--write-config DIR takes a single VAE")
    if target is None and "pvvae-preset" in kinds:
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
        data: see :func:`pvvae.eval.recon.open_eval_data`.
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
