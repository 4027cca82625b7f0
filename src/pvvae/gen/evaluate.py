"""Generation metrics of paper Table 1: gFVD and KVD (I3D), IS (C3D) of generated videos.

``pvvae gen eval``. Protocol (paper section 4.1; StyleGAN-V as used by Latte, see
:mod:`pvvae.eval.metrics.fvd`): N generated clips (2048 in the paper) against N real
clips, 16 frames each; FVD and KVD on the time-averaged Kinetics-400 I3D logits (StyleGAN-V
FVD variant: biased covariance, ``scipy.linalg.sqrtm``); IS with the UCF101 C3D over 10
splits when its weights are given (``--c3d-weights``; they ship in no package).

Frames. The t4 VAEs decode ``1 + 4k`` frames (17 for 5 latent frames); the metric clips are
the **first** ``num_frames`` (16) frames of each generated video, and the first 16 frames of
each real video (``train=False`` datasets: first frames, centre crop), both at the generated
resolution unless ``size`` says otherwise (the I3D resizes every frame to 224x224 anyway).

Real clips: ``num_real`` (default N) distinct clips drawn uniformly without replacement from
the real dataset with a seeded generator (all of them, in order, when it has exactly that
many). Generated clips: sampled on the fly from a Latte checkpoint (labels uniformly random
for class-conditional models, as Latte does) or read from a folder of mp4s (``pvvae gen
sample`` output).

KVD is reported as computed (the unbiased polynomial-kernel MMD^2,
:func:`pvvae.eval.metrics.fvd.kvd_from_features`; no rescaling). The rows, their tables and
files are in :mod:`pvvae.gen.metrics_table`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from pvvae.gen.metrics_table import (  # noqa: F401 (the tables: re-exported for pvvae.cli.gen)
    GenerationMetrics,
    motion_markdown,
    table1_markdown,
    write_results,
)

logger = logging.getLogger(__name__)

NUM_FRAMES = 16  # StyleGAN-V / Latte / the paper: 16-frame clips for FVD, KVD and IS


def first_frames(videos: Tensor, num_frames: int) -> Tensor:
    """(B, 3, T, H, W) -> (B, 3, num_frames, H, W), the first frames (error if T is short)."""
    if videos.shape[2] < num_frames:
        raise ValueError(f"clips have {videos.shape[2]} frames, the metrics need {num_frames}")
    return videos[:, :, :num_frames]


def real_clip_batches(
    data: str,
    num: int,
    *,
    num_frames: int = NUM_FRAMES,
    size: int = 256,
    frame_stride: int = 1,
    synthetic_clips: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
) -> Iterator[Tensor]:
    """Yield batches (B, 3, num_frames, size, size) of ``num`` real clips (module docstring).

    Args:
        data: ``synthetic``, a video folder or a CSV manifest (see
            :func:`pvvae.gen.cache.build_video_dataset`).
        num: number of clips.
        num_frames, size, frame_stride: clip layout.
        synthetic_clips: length of the synthetic dataset (default ``num``).
        seed: synthetic scene seed and the seed of the clip draw.
        batch_size: clips per batch.
    """
    from pvvae.gen.cache import build_video_dataset

    dataset = build_video_dataset(
        data, num_frames, size, frame_stride, num_clips=synthetic_clips or num, seed=seed
    )
    if len(dataset) < num:
        raise ValueError(f"{data} has {len(dataset)} clips, fewer than the {num} requested")
    g = torch.Generator().manual_seed(seed)
    order = range(num) if len(dataset) == num else torch.randperm(len(dataset), generator=g)[:num]
    order = [int(i) for i in order]
    for start in range(0, num, batch_size):
        yield torch.stack([dataset[i]["video"] for i in order[start : start + batch_size]])


def video_folder_batches(
    folder: str | Path, num_frames: int, batch_size: int = 8
) -> Iterator[Tensor]:
    """Yield (B, 3, num_frames, H, W) batches of the mp4s of ``folder`` in name order."""
    from pvvae.data.video_io import read_video, to_model_range

    paths = _mp4_files(folder)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        clips = [to_model_range(read_video(p, 0, num_frames)) for p in chunk]  # (3, T, H, W)
        yield first_frames(torch.stack(clips), num_frames)


def video_features(
    batches: Iterable[Tensor], i3d, c3d=None, num_frames: int = NUM_FRAMES
) -> tuple[Tensor, Tensor | None]:
    """I3D logits (and C3D probabilities) of video batches, in one pass over them.

    Args:
        batches: (B, 3, T >= num_frames, H, W) videos in [-1, 1].
        i3d: a loaded I3D (:func:`pvvae.eval.metrics.i3d.load_i3d`).
        c3d: a loaded C3D, or ``None``.
        num_frames: frames kept per clip (the first ones).

    Returns:
        ``(logits (N, 400) float64, probs (N, 101) float64 or None)``.
    """
    from pvvae.eval.metrics.i3d import i3d_logits
    from pvvae.eval.metrics.inception import c3d_probs

    logits, probs = [], []
    for batch in batches:
        batch = first_frames(batch, num_frames)
        logits.append(i3d_logits(batch, i3d, batch_size=len(batch)))
        if c3d is not None:
            probs.append(c3d_probs(batch, c3d, batch_size=len(batch)))
    if not logits:
        raise ValueError("no videos given")
    return torch.cat(logits), (torch.cat(probs) if c3d is not None else None)


def compute_generation_metrics(
    fake: Iterable[Tensor],
    real: Iterable[Tensor],
    i3d,
    *,
    c3d=None,
    num_frames: int = NUM_FRAMES,
    is_splits: int = 10,
    method: str = "",
    latent_config: str = "",
    dataset: str = "",
    floor_resamples: int = 0,
    domain_net=None,
    fake_labels: Tensor | None = None,
) -> GenerationMetrics:
    """gFVD, KVD (and IS with a C3D) of generated against real video batches, the coherence
    of both sets and, with ``floor_resamples``, the real-real FVD floor; with a
    ``domain_net`` (:func:`pvvae.eval.domain.build_domain_network`) also the domain FVD (and
    its floor) and, given ``fake_labels``, the class accuracy of the samples.

    Args:
        fake, real: iterables of (B, 3, T, H, W) videos in [-1, 1].
        i3d: the I3D; c3d: the UCF101 C3D or ``None`` (IS not computed, noted in ``notes``).
        num_frames: frames per clip (16).
        is_splits: IS splits (10 in the protocol; at most the number of samples).
        method, latent_config, dataset: labels of the table row.
        floor_resamples: splits of the real-real floor (0: none). Then ``real`` holds at least
            twice as many clips as ``fake``: gFVD and KVD use the first ``len(fake)`` of them,
            the floor splits all of them into disjoint pairs of sets of ``len(fake)``.
        domain_net: the domain network, or None (no domain FVD, no class accuracy).
        fake_labels: (N,) classes the generated clips were sampled for, or None.
    """
    from pvvae.eval.coherence import summarise
    from pvvae.eval.metrics.fvd import fvd_from_features, fvd_noise_floor, kvd_from_features
    from pvvae.eval.metrics.inception import inception_score_from_probs

    fake_motion, real_motion, fake_domain, real_domain = [], [], [], []
    fake_logits, fake_probs = video_features(
        tap_metrics(fake, num_frames, fake_motion, domain_net, fake_domain), i3d, c3d, num_frames)
    pool, _ = video_features(tap_metrics(real, num_frames, real_motion, domain_net, real_domain),
                             i3d, None, num_frames)
    n = len(fake_logits)
    floor = fvd_noise_floor(pool, n, floor_resamples) if floor_resamples else {}
    real_logits = pool[:n] if floor_resamples else pool
    domain = _domain_metrics(fake_domain, real_domain, n, floor_resamples, fake_labels)
    is_mean = is_std = None
    notes = "IS not computed: pass --c3d-weights (UCF101 C3D)" if c3d is None else ""
    if fake_probs is not None:
        is_mean, is_std = inception_score_from_probs(fake_probs, min(is_splits, len(fake_probs)))
    return GenerationMetrics(
        method=method,
        latent_config=latent_config,
        dataset=dataset,
        fvd=fvd_from_features(real_logits, fake_logits),
        kvd=kvd_from_features(real_logits, fake_logits),
        is_mean=is_mean,
        is_std=is_std,
        num_fake=len(fake_logits),
        num_real=len(real_logits),
        num_frames=num_frames,
        notes=notes,
        fvd_floor=floor.get("fvd"),
        fvd_floor_std=floor.get("std"),
        coherence=summarise(fake_motion),
        real_coherence=summarise(real_motion),
        **domain,
    )


def tap_metrics(batches: Iterable[Tensor], num_frames: int, motion: list, domain_net=None,
                domain: list | None = None) -> Iterator[Tensor]:
    """The batches, unchanged; on the way the coherence of each (first frames, as the I3D
    sees them) is appended to ``motion`` and, with a ``domain_net``, its domain outputs to
    ``domain``."""
    from pvvae.eval.coherence import per_clip_coherence

    for batch in batches:
        first = batch[:, :, :num_frames]
        motion.append(per_clip_coherence(first))
        if domain_net is not None:
            from pvvae.eval.domain import domain_outputs

            domain.append(domain_outputs(first, domain_net, len(first)))
        yield batch


def _domain_metrics(fake: list[dict], real: list[dict], n: int, floor_resamples: int,
                    labels: Tensor | None) -> dict:
    """The domain fields of :class:`GenerationMetrics` from the tapped domain outputs
    (empty without a domain network)."""
    if not fake:
        return {}
    from pvvae.eval.domain import accuracy_from_logits
    from pvvae.eval.metrics.fvd import fvd_from_features, fvd_noise_floor

    fake_features = torch.cat([d["features"] for d in fake])
    pool = torch.cat([d["features"] for d in real])
    floor = fvd_noise_floor(pool, n, floor_resamples) if floor_resamples else {}
    logits = torch.cat([d["logits"] for d in fake])
    return {"domain_fvd": fvd_from_features(pool[:n], fake_features),
            "domain_fvd_floor": floor.get("fvd"), "domain_fvd_floor_std": floor.get("std"),
            "class_accuracy": None if labels is None else accuracy_from_logits(logits,
                                                                               labels[:n])}


def run_evaluation(
    out: str | Path,
    *,
    real: str,
    checkpoint: str | Path | None = None,
    fake_dir: str | Path | None = None,
    num: int = 2048,
    vae_spec: str | None = None,
    num_frames: int = NUM_FRAMES,
    size: int | None = None,
    synthetic_clips: int | None = None,
    guidance_scale: float = 1.0,
    num_steps: int = 100,
    sampler: str = "euler",
    batch_size: int = 8,
    seed: int = 0,
    device: str = "auto",
    use_ema: bool = True,
    c3d_weights: str | None = None,
    method: str = "",
    dataset: str = "",
    progress: bool = True,
    noise_floor: int = 0,
    domain: bool = False,
    domain_cache: str | Path | None = None,
) -> GenerationMetrics:
    """``pvvae gen eval``: metrics of ``num`` generated clips against ``num`` real ones.

    Generated clips come from ``checkpoint`` (sampled here with ``sampler``/``num_steps``/
    ``guidance_scale``, uniformly random labels) or from the mp4s of ``fake_dir`` (the first
    ``num`` in name order). Writes ``gen_metrics.json`` and ``gen_metrics.md`` into ``out``.

    Args:
        out: output folder.
        real: real data (``synthetic``, video folder or CSV manifest).
        size: real clip side (default: the generated clips' side).
        synthetic_clips: size of the synthetic real dataset (default ``num``).
        c3d_weights: UCF101 C3D weights for IS (None: IS skipped with a note).
        method, dataset: row and column labels of the table (defaults: checkpoint / data).
        noise_floor: splits of the real-real FVD floor (0: none); it draws ``2 num`` real
            clips (see :func:`compute_generation_metrics`).
        domain: also the domain FVD (with its floor under ``noise_floor``) and the class
            accuracy of the samples (:mod:`pvvae.eval.domain`; proving-ground data); the
            domain network is built once into ``domain_cache`` (default
            :data:`pvvae.eval.domain.DEFAULT_CACHE`) and reused.
        Others: see :func:`pvvae.gen.sample.run_sampling`.
    """
    from pvvae.eval.metrics.i3d import load_i3d
    from pvvae.gen.sample import resolve_device

    if (checkpoint is None) == (fake_dir is None):
        raise ValueError("give either a Latte checkpoint or --fake DIR (not both)")
    dev = resolve_device(device)
    c3d = _load_c3d(c3d_weights, dev)  # first: a wrong path fails before any sampling
    domain_net = _domain_net(domain, domain_cache, dev)
    fake, labels, latent_config, side = _fake_batches(
        checkpoint, fake_dir, num, vae_spec=vae_spec, guidance_scale=guidance_scale,
        num_steps=num_steps, sampler=sampler, batch_size=batch_size, seed=seed, device=dev,
        use_ema=use_ema, progress=progress, num_frames=num_frames,
    )
    real_batches = real_clip_batches(
        real, num * (2 if noise_floor else 1), num_frames=num_frames, size=size or side,
        synthetic_clips=synthetic_clips, seed=seed, batch_size=batch_size,
    )
    metrics = compute_generation_metrics(
        _take(fake, num), real_batches, load_i3d(dev), c3d=c3d, num_frames=num_frames,
        method=method or Path(str(checkpoint or fake_dir)).name, latent_config=latent_config,
        dataset=dataset or Path(real).stem, floor_resamples=noise_floor,
        domain_net=domain_net, fake_labels=labels,
    )
    if metrics.num_fake < num:
        raise ValueError(f"only {metrics.num_fake} generated clips found, {num} requested")
    write_results([metrics], out)
    return metrics


def _take(batches: Iterable[Tensor], num: int) -> Iterator[Tensor]:
    """The first ``num`` clips of a stream of batches."""
    left = num
    for batch in batches:
        if left <= 0:
            return
        yield batch[:left]
        left -= len(batch[:left])


def _load_c3d(path: str | None, device: torch.device):
    """The C3D for IS, or None with a clear log line when no weights were given."""
    if path is None:
        from pvvae.eval.metrics.inception import WEIGHTS_HELP

        logger.warning("IS skipped: no --c3d-weights given. %s", WEIGHTS_HELP)
        return None
    from pvvae.eval.metrics.inception import load_c3d

    return load_c3d(path, device)


def _domain_net(domain: bool, cache: str | Path | None, device: torch.device):
    """The domain network when asked for (built or loaded from ``cache``), else None."""
    if not domain:
        return None
    from pvvae.eval.domain import DEFAULT_CACHE, build_domain_network

    return build_domain_network(cache or DEFAULT_CACHE).to(device)


def _fake_batches(checkpoint, fake_dir, num: int, *, vae_spec, device, seed, batch_size,
                  use_ema, progress, num_frames, **sampler_kwargs):
    """(batches of generated videos, their labels (N,) or None, latent config name, frame
    side). A folder's labels come from its ``samples.json`` (``pvvae gen sample``) when every
    sample has one, in name order."""
    if fake_dir is not None:
        from pvvae.data.video_io import video_info

        paths = _mp4_files(fake_dir)
        info = video_info(paths[0])
        return (video_folder_batches(fake_dir, num_frames, batch_size),
                _folder_labels(fake_dir, paths), "", info.height)
    from pvvae.gen.sample import generate

    gen = generate(checkpoint, num, vae_spec=vae_spec, seed=seed, device=device, use_ema=use_ema,
                   batch_size=batch_size, progress=progress, **sampler_kwargs)
    return (videos for videos, _ in gen.batches), gen.labels, gen.vae.latent_layout, gen.side


def _mp4_files(folder: str | Path) -> list[Path]:
    """The mp4s of ``folder`` in name order; raises when there is none."""
    paths = sorted(Path(folder).glob("*.mp4"))
    if not paths:
        raise FileNotFoundError(f"no .mp4 file in {folder}")
    return paths


def _folder_labels(folder: str | Path, paths: Sequence[Path]) -> Tensor | None:
    """The labels of ``paths`` in ``folder/samples.json``, or None where any is missing."""
    index = Path(folder) / "samples.json"
    if not index.is_file():
        return None
    by_file = {s["file"]: s.get("label") for s in json.loads(index.read_text())["samples"]}
    labels = [by_file.get(p.name) for p in paths]
    return None if None in labels else torch.tensor(labels)
