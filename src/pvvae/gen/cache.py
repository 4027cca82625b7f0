"""Latent cache for generation: encode a video dataset once with a trained VAE.

``pvvae gen cache VAE_CKPT DATA OUT`` writes ``OUT/manifest.json`` and shards
``OUT/shard-00000.safetensors``, ... Each shard holds, for up to ``shard_size`` clips:

* ``mean`` (n, C, t, h, w): the posterior mean, normalised with the VAE's own statistics,
  ``vae.normalize(mu) = (mu - latents_mean) / latents_std`` (style rule 6);
* ``std`` (n, C, t, h, w): the posterior standard deviation in the same normalised units,
  ``sigma / latents_std`` (absent with ``store_std=False``);
* ``label`` (n,) int64 and ``index`` (n,) int64 (the clip's index in the source dataset).

Why mean *and* std. Latent diffusion pipelines either cache the posterior mean (deterministic,
half the disk) or a sample (frozen noise). Storing the normalised mean and std lets the
trainer draw a fresh ``z ~ q(z|x)`` at every visit (``z = mean + std * n``, as Latte/LDM do with
``latent_dist.sample()``) or use the mean (``data.sample_posterior: false``), for the cost of
twice the disk; ``--mean-only`` keeps just the mean. Latents are stored as float16 by default
(normalised latents are O(1), far inside float16's range; ``--dtype float32`` keeps full
precision).

Clips come from the ``pvvae.data`` datasets in evaluation mode (``train=False``: the first
frames of each video, centre crop), so the cache is deterministic. ``DATA`` is ``synthetic``
(:class:`~pvvae.data.SyntheticVideoDataset`, labels = its shape classes), a folder of videos
in the UCF101 layout (:class:`~pvvae.data.VideoFolderDataset`, labels = sub-folders) or a CSV
manifest (:class:`~pvvae.data.VideoManifestDataset`).

Resumable: shard ``i`` always covers clips ``[i * S, (i + 1) * S)``, is written to a hidden
temporary file and renamed into place, so a shard file that exists is complete; a rerun with
the same settings skips them. The manifest records the settings and is checked on resume.

Unreadable source files are left out, never replaced by another clip (which would
enter the cache twice): a shard holds only its readable clips (``index`` names each one's
source index) and lists its skipped files in its metadata; the finished manifest gives
``num_items`` (rows cached), ``num_source_items`` and ``skipped_files``.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from pvvae.eval.report import write_json

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "pvvae-latent-cache"
VERSION = 1


# ----------------------------------------------------------------------------------------------
# Inputs: the VAE and the video dataset
# ----------------------------------------------------------------------------------------------


def build_video_dataset(
    data: str,
    num_frames: int = 17,
    size: int = 256,
    frame_stride: int = 1,
    num_clips: int = 64,
    seed: int = 0,
) -> Dataset:
    """Evaluation-mode clips ``{"video": (3, num_frames, size, size) in [-1, 1], "label": int}``.

    Args:
        data: ``synthetic``, a folder of videos (class per sub-folder) or a ``.csv`` manifest.
        num_frames: frames per clip (17 in the paper, section 4.1).
        size: square side after short-side resize and centre crop (256 in the paper).
        frame_stride: step between frames in the source videos.
        num_clips, seed: length and scene seed of the synthetic dataset (ignored otherwise).

    Returns:
        A dataset with a ``classes`` attribute (class names, ``classes[label]``).
    """
    if data == "synthetic":
        from pvvae.data.synthetic import SyntheticVideoDataset

        return SyntheticVideoDataset(
            num_clips, num_frames, size, size, seed=seed, annotations=False
        )
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"DATA {data}: no such folder or CSV file (or say 'synthetic')")
    from pvvae.data.folders import VideoFolderDataset, VideoManifestDataset

    cls = VideoManifestDataset if path.is_file() else VideoFolderDataset
    return cls(path, num_frames, frame_stride, size, train=False, seed=seed)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheSpec:
    """What a cache holds; a resumed run must match the manifest's spec exactly.

    Attributes:
        vae: the VAE argument (path or ``preset:NAME``), recorded for the user.
        data: the DATA argument (``synthetic``, folder or CSV).
        num_frames, size, frame_stride: clip layout (see :func:`build_video_dataset`).
        num_clips, seed: synthetic dataset length and seed.
        shard_size: clips per shard.
        dtype: storage dtype of ``mean`` and ``std``.
        store_std: also store the posterior std (see the module docstring).
    """

    vae: str
    data: str
    num_frames: int = 17
    size: int = 256
    frame_stride: int = 1
    num_clips: int = 64
    seed: int = 0
    shard_size: int = 256
    dtype: Literal["float16", "float32"] = "float16"
    store_std: bool = True

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.num_frames < 1 or self.size < 1:
            raise ValueError("shard_size, num_frames and size must be positive")
        if self.dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, got {self.dtype!r}")


def latent_shape(vae, num_frames: int, size: int) -> tuple[int, int, int, int]:
    """(C, t, h, w) of the latents of a (3, num_frames, size, size) clip."""
    ct, cs = vae.temporal_compression, vae.spatial_compression
    if size % cs:
        raise ValueError(f"size {size} is not a multiple of the VAE's spatial stride {cs}")
    t = 1 + -(-(num_frames - 1) // ct)  # the VAE pads to 1 + ct * k frames
    return (vae.latent_channels, t, size // cs, size // cs)


def vae_fingerprint(vae) -> dict[str, Any]:
    """JSON-able description of the VAE (its config, compressions): checked on resume."""
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    return {
        "config": json.loads(json.dumps(config, default=list)),
        "temporal_compression": vae.temporal_compression,
        "spatial_compression": vae.spatial_compression,
    }


def normalized_posterior(vae, x: Tensor) -> tuple[Tensor, Tensor]:
    """Posterior of ``x`` in the VAE's normalised latent units.

    Args:
        vae: a VAE of :func:`pvvae.inference.spec.load_vae`.
        x: (B, 3, T, H, W) pixels in [-1, 1].

    Returns:
        ``(mean, std)``, each (B, C, t, h, w): ``(mu - latents_mean) / latents_std`` and
        ``sigma / latents_std``.
    """
    posterior = vae.encode(x).latent_dist
    mean = vae.normalize(posterior.mode())  # (B, C, t, h, w)
    scale = torch.tensor(vae.latent_stat_values()[1], device=x.device, dtype=posterior.std.dtype)
    std = posterior.std / scale.view(1, -1, 1, 1, 1)  # (B, C, t, h, w)
    return mean, std


def shard_name(i: int) -> str:
    """File name of shard ``i``."""
    return f"shard-{i:05d}.safetensors"


def _manifest(spec: CacheSpec, vae, dataset: Dataset) -> dict[str, Any]:
    n = len(dataset)
    classes = [str(c) for c in getattr(dataset, "classes", [])]
    return {
        "format": FORMAT,
        "version": VERSION,
        "spec": asdict(spec),
        "vae_fingerprint": vae_fingerprint(vae),
        "num_source_items": n,
        "num_items": n,  # rows cached: set when complete (unreadable files are left out)
        "num_shards": -(-n // spec.shard_size),
        "latent_shape": list(latent_shape(vae, spec.num_frames, spec.size)),
        "classes": classes,
        "num_classes": len(classes),
        "normalized_with_vae_stats": _has_latent_stats(vae),
        "complete": False,
    }


def _has_latent_stats(vae) -> bool:
    """Whether ``vae.normalize`` changes latents (statistics other than 0 and 1)."""
    mean, std = vae.latent_stat_values()
    return any(float(m) != 0.0 for m in mean) or any(float(s) != 1.0 for s in std)


def _check_resumable(out: Path, manifest: dict[str, Any]) -> None:
    """Refuse to mix shards of different settings in one folder."""
    file = out / MANIFEST
    if not file.is_file():
        return
    old = json.loads(file.read_text())
    old.setdefault("num_source_items", old.get("num_items"))  # caches written by older versions
    for key in ("spec", "vae_fingerprint", "num_source_items", "latent_shape"):
        if old.get(key) != manifest[key]:
            raise ValueError(
                f"{out} holds a latent cache with other settings ({key} differs: "
                f"{old.get(key)} vs {manifest[key]}); use another OUT folder or delete it"
            )


@torch.no_grad()
def _encode_shard(
    vae, dataset: Dataset, indices: range, spec: CacheSpec, batch_size: int, num_workers: int
) -> tuple[dict[str, Tensor], list[str]]:
    """Tensors of one shard (see the module docstring) and the unreadable files left out."""
    from pvvae.data import ReadableItems, collate_readable

    device = next(vae.parameters()).device
    dtype = getattr(torch, spec.dtype)
    loader = DataLoader(
        ReadableItems(dataset, indices),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_readable,
    )
    shape = latent_shape(vae, spec.num_frames, spec.size)
    means, stds = [torch.empty(0, *shape, dtype=dtype)], [torch.empty(0, *shape, dtype=dtype)]
    labels, rows, skipped = [torch.empty(0, dtype=torch.int64)], [], []
    for index, batch, _, missing in loader:
        skipped += [path for _, path in missing]
        if batch is None:
            continue
        mean, std = normalized_posterior(vae, batch["video"].to(device))
        means.append(mean.to("cpu", dtype))
        stds.append(std.to("cpu", dtype))
        labels.append(torch.as_tensor(batch["label"], dtype=torch.int64))
        rows += index
    tensors = {
        "mean": torch.cat(means).contiguous(),  # (n, C, t, h, w)
        "label": torch.cat(labels),  # (n,)
        "index": torch.tensor(rows, dtype=torch.int64),  # (n,) source index of each row
    }
    if spec.store_std:
        tensors["std"] = torch.cat(stds).contiguous()  # (n, C, t, h, w)
    return tensors, skipped


def cache_latents(
    vae,
    dataset: Dataset,
    out: str | Path,
    spec: CacheSpec,
    *,
    batch_size: int = 4,
    num_workers: int = 0,
    progress: bool = True,
) -> Path:
    """Encode ``dataset`` into a latent cache at ``out`` (resumable; see the module docstring).

    Args:
        vae: a VAE of :func:`pvvae.inference.spec.load_vae` in eval mode (its device is used).
        dataset: items ``{"video": (3, T, H, W) in [-1, 1], "label": int}``, e.g. from
            :func:`build_video_dataset`.
        out: the cache folder (created).
        spec: the settings, recorded in the manifest.
        batch_size: clips per encoder call.
        num_workers: DataLoader workers decoding videos.
        progress: show a tqdm bar over shards.

    Returns:
        ``out``; its manifest has ``"complete": true`` and the per-channel statistics of the
        cached means (``stats``), which should be near 0 and 1 for a well-normalised VAE.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(spec, vae, dataset)
    _check_resumable(out, manifest)
    if not manifest["normalized_with_vae_stats"]:
        logger.warning("the VAE has no latent statistics: latents are cached unnormalised")
    write_json(out / MANIFEST, manifest)
    n, s = manifest["num_source_items"], spec.shard_size
    shards = range(manifest["num_shards"])
    todo = [i for i in shards if not (out / shard_name(i)).is_file()]
    if len(todo) < len(shards):
        logger.info("resuming: %d of %d shards done", len(shards) - len(todo), len(shards))
    for i in tqdm(todo, desc="cache shards", disable=not progress):
        rows = range(i * s, min(n, (i + 1) * s))
        tensors, skipped = _encode_shard(vae, dataset, rows, spec, batch_size, num_workers)
        tmp = out / f".{shard_name(i)}.tmp-{os.getpid()}"
        save_file(tensors, tmp, metadata={"format": FORMAT, "skipped": json.dumps(skipped)})
        os.replace(tmp, out / shard_name(i))  # atomic: an existing shard file is complete
    rows, skipped = _shard_rows_and_skips(out, manifest["num_shards"])
    if sum(rows) == 0:
        raise ValueError(f"no readable clip in {spec.data}: all {n} files are unreadable")
    if skipped:
        logger.warning("%d unreadable file(s) left out: %s", len(skipped), ", ".join(skipped))
    manifest.update(complete=True, num_items=sum(rows), skipped_files=skipped)
    manifest["stats"] = channel_stats(out, manifest)
    write_json(out / MANIFEST, manifest)
    return out


def _shard_rows_and_skips(out: Path, num_shards: int) -> tuple[list[int], list[str]]:
    """Rows of each shard and the unreadable files all shards left out."""
    rows, skipped = [], []
    for i in range(num_shards):
        with safe_open(out / shard_name(i), framework="pt") as f:
            rows.append(f.get_slice("index").get_shape()[0])
            skipped += json.loads((f.metadata() or {}).get("skipped", "[]"))
    return rows, skipped


def channel_stats(out: Path, manifest: dict[str, Any]) -> dict[str, list[float]]:
    """Per-channel mean and population std of all cached (normalised) posterior means, by
    the one latent-statistics implementation (:class:`pvvae.eval.ChannelStats`: float64,
    Chan's parallel update, no ``E[z^2] - E[z]^2`` cancellation)."""
    from pvvae.eval import ChannelStats

    stats = ChannelStats(manifest["latent_shape"][0])
    for i in range(manifest["num_shards"]):
        with safe_open(out / shard_name(i), framework="pt") as f:
            mean = f.get_tensor("mean")  # (n, C, t, h, w)
        if len(mean):  # a shard of unreadable files only holds no row
            stats.update(mean)
    return {"mean": stats.mean.tolist(), "std": stats.std.tolist()}


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of a complete cache (clear errors for a missing or unfinished one)."""
    file = Path(root) / MANIFEST
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: create the cache with `pvvae gen cache`")
    manifest = json.loads(file.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{file} is not a pvvae latent cache manifest")
    if not manifest.get("complete"):
        raise ValueError(f"{root} is unfinished: rerun the same `pvvae gen cache` to resume it")
    return manifest


class LatentDataset(Dataset):
    """The clips of a latent cache written by :func:`cache_latents`.

    Item ``i``: ``{"latent": (C, t, h, w) float32 normalised posterior mean, "std": (C, t, h, w)
    float32 (when stored), "label": int, "index": int}``. Rows are read lazily from the
    memory-mapped shards, so the cache may exceed RAM; open shard handles are per instance
    (and re-opened in each DataLoader worker).

    Args:
        root: the cache folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.shard_size = int(self.manifest["spec"]["shard_size"])
        self.num_items = int(self.manifest["num_items"])
        self.latent_shape = tuple(self.manifest["latent_shape"])  # (C, t, h, w)
        self.classes = list(self.manifest["classes"])
        self.num_classes = int(self.manifest["num_classes"])
        self.has_std = bool(self.manifest["spec"]["store_std"])
        self._handles: dict[int, Any] = {}
        rows, _ = _shard_rows_and_skips(self.root, int(self.manifest["num_shards"]))
        self._starts = [sum(rows[:i]) for i in range(len(rows) + 1)]  # first row of each shard

    def __len__(self) -> int:
        return self.num_items

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handles": {}}  # handles do not survive pickling

    def _shard(self, i: int):
        if i not in self._handles:
            self._handles[i] = safe_open(self.root / shard_name(i), framework="pt")
        return self._handles[i]

    def __getitem__(self, index: int) -> dict[str, Tensor | int]:
        if not 0 <= index < self.num_items:
            raise IndexError(f"index {index} out of range for {self.num_items} cached clips")
        shard = bisect.bisect_right(self._starts, index) - 1  # shards may hold fewer rows
        row = index - self._starts[shard]
        f = self._shard(shard)
        item: dict[str, Tensor | int] = {
            "latent": f.get_slice("mean")[row : row + 1][0].float(),  # (C, t, h, w)
            "label": int(f.get_slice("label")[row : row + 1][0]),
            "index": int(f.get_slice("index")[row : row + 1][0]),
        }
        if self.has_std:
            item["std"] = f.get_slice("std")[row : row + 1][0].float()  # (C, t, h, w)
        return item

    def iter_shards(self) -> Iterator[dict[str, Tensor]]:
        """Whole shards in order (``mean``, ``label``, ``index``[, ``std``]) for bulk reads."""
        for i in range(int(self.manifest["num_shards"])):
            f = self._shard(i)
            yield {k: f.get_tensor(k) for k in f.keys()}
