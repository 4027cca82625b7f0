"""Training data for ``pvvae train``: datasets from the data config and resumable samplers.

Order and sharding. All ranks share one *global order* of samples: position p is sample
``p % N`` of epoch ``p // N`` of a permutation drawn from (seed, epoch). A step at
resolution s with per-rank batch size b consumes the next ``world_size * b`` positions, and
rank r takes every world_size-th of them (r, r + W, ...): ranks never overlap, the global
order does not depend on the world size, and a run restarts exactly from (step, position).

Resolutions. The step's resolution is drawn from (seed, step) alone, the same on every rank
(``data.batch_sizes`` / ``data.resolution_weights``), so every rank does the same work.

Item randomness (clip start, crop) is keyed by the global position (``(index, key)`` items
of :class:`pvvae.data.SkippingDataset`), so it does not depend on workers or restarts.
Unreadable files are skipped and counted by the datasets; an empty dataset is an error.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pvvae.config import ConfigError
from pvvae.data import SkippingDataset, collate, loader_generator, worker_init_fn
from pvvae.training.config import DataConfig
from pvvae.training.seeding import RESOLUTION, derive_seed


def build_dataset(
    cfg: DataConfig, seed: int, train: bool = True, size: int | None = None
) -> Dataset:
    """The dataset named by ``cfg.kind`` at square resolution ``size`` (default ``cfg.size``).

    Items are ``{"video": (3, T, S, S) in [-1, 1], "label": int, ...}``; images have T = 1.
    """
    size = size or cfg.size
    if cfg.kind == "synthetic":
        from pvvae.data.synthetic import SyntheticVideoDataset

        if cfg.num_clips <= 0:
            raise ConfigError(f"data.num_clips={cfg.num_clips}: the synthetic dataset is empty")
        return SyntheticVideoDataset(
            num_clips=cfg.num_clips,
            num_frames=cfg.num_frames,
            height=size,
            width=size,
            seed=seed,
            preset=cfg.synthetic_preset,
            camera_pan=cfg.camera_pan,
            annotations=False,
        )
    if cfg.root is None:
        raise ConfigError(f"data.kind={cfg.kind} needs data.root")
    if cfg.kind == "image_folder":
        from pvvae.data.images import ImageFolderDataset

        return ImageFolderDataset(cfg.root, size=size, train=train, seed=seed)
    from pvvae.data.folders import VideoFolderDataset, VideoManifestDataset

    cls = VideoFolderDataset if cfg.kind == "video_folder" else VideoManifestDataset
    return cls(cfg.root, cfg.num_frames, cfg.frame_stride, size, train=train, seed=seed)


class MultiResolutionDataset(Dataset):
    """One dataset seen at several square resolutions; items are indexed ``(i, key, size)``.

    File datasets share their files and skip marks across resolutions (shallow copies with
    another ``size``); synthetic data renders the same scenes at each size.

    Args:
        views: resolution -> dataset of the same items at that resolution.
    """

    def __init__(self, views: Mapping[int, Dataset]) -> None:
        self.views = dict(views)
        lengths = {len(v) for v in self.views.values()}
        if len(lengths) != 1:
            raise ValueError(f"resolution views differ in length: {lengths}")
        self.length = lengths.pop()
        if self.length == 0:
            raise ValueError("the dataset is empty")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, item: tuple[int, int, int]) -> dict[str, torch.Tensor | int]:
        """``{"video": (3, T, size, size), "label": int}`` of sample ``i`` (randomness: key)."""
        index, key, size = item
        view = self.views[size]
        out = view[(index, key)] if isinstance(view, SkippingDataset) else view[index]
        return {"video": out["video"], "label": int(out["label"])}

    def mark_skipped(self, paths: list[str]) -> None:
        """Mark ``paths`` unreadable in every file view (a resumed run's skip state)."""
        for view in self.views.values():
            if isinstance(view, SkippingDataset):
                view.mark_skipped(paths)

    @property
    def skipped_paths(self) -> list[Path]:
        """Unreadable files found so far (all resolutions, all workers of this process)."""
        found: set[Path] = set()
        for view in self.views.values():
            found.update(getattr(view, "skipped_paths", []))
        return sorted(found)


def build_training_dataset(cfg: DataConfig, seed: int) -> MultiResolutionDataset:
    """The training data at every resolution of ``cfg.resolution_batch_sizes()``."""
    sizes = sorted(cfg.resolution_batch_sizes())
    base = build_dataset(cfg, seed, train=True, size=sizes[0])
    if len(base) == 0:
        raise ValueError(f"the training dataset (data.kind={cfg.kind}, root={cfg.root}) is empty")
    views: dict[int, Dataset] = {sizes[0]: base}
    for size in sizes[1:]:
        if isinstance(base, SkippingDataset):
            view = copy.copy(base)  # shares files and skip marks; only the size differs
            view.size = size
            views[size] = view
        else:
            views[size] = build_dataset(cfg, seed, train=True, size=size)
    return MultiResolutionDataset(views)


class GlobalOrder:
    """The global sample order: position p -> dataset index (module docstring).

    Epoch e is ``randperm(N)`` from a generator seeded with (seed, e); the current epoch's
    permutation is cached.
    """

    def __init__(self, num_items: int, seed: int) -> None:
        if num_items <= 0:
            raise ValueError("the dataset is empty")
        self.num_items, self.seed = num_items, seed
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __getitem__(self, position: int) -> int:
        epoch, offset = divmod(position, self.num_items)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.num_items, generator=g)
        return int(self._perm[offset])


class ResumableSampler(Sampler[int]):
    """Endless random order over a dataset, sharded over ranks, restartable at any position.

    Yields the indices of global positions ``position + rank``, ``position + rank + W``, ...
    (see :class:`GlobalOrder`): with ``world_size`` W ranks no sample is seen twice per epoch
    and the order over all ranks is the same for any W. Saving the global position and
    restoring it continues the same sequence, which exact resume needs.
    """

    def __init__(
        self, num_items: int, seed: int, position: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.order = GlobalOrder(num_items, seed)
        self.num_items, self.seed, self.position = num_items, seed, position
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        p = self.position + self.rank
        while True:
            yield self.order[p]
            p += self.world_size


def resolution_at(step: int, seed: int, resolutions: list[int], weights: list[float]) -> int:
    """The resolution of ``step``: drawn from (seed, step) only, the same on every rank."""
    if len(resolutions) == 1:
        return resolutions[0]
    rng = np.random.default_rng(derive_seed(seed, RESOLUTION, step))
    p = np.asarray(weights, dtype=np.float64)
    return int(resolutions[rng.choice(len(resolutions), p=p / p.sum())])


class ResolutionBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """This rank's batches ``[(index, key, size), ...]`` from ``start_step`` on (endless).

    Args:
        num_items: dataset length.
        seed: run seed (global order and resolution schedule).
        batch_sizes: resolution -> per-rank batch size.
        weights: resolution -> probability weight (missing: 1).
        rank, world_size: this process in the job.
        start_step, start_position: where to start (0, 0 for a new run; a checkpoint's
            step and data position when resuming).
        plain: batches of dataset indices only (``[index, ...]``, for datasets of one size).
    """

    def __init__(
        self,
        num_items: int,
        seed: int,
        batch_sizes: Mapping[int, int],
        weights: Mapping[int, float] | None = None,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        start_position: int = 0,
        plain: bool = False,
    ) -> None:
        self.order, self.plain = GlobalOrder(num_items, seed), plain
        self.seed, self.batch_sizes = seed, dict(batch_sizes)
        self.resolutions = sorted(self.batch_sizes)
        self.weights = [float((weights or {}).get(r, 1.0)) for r in self.resolutions]
        self.rank, self.world_size = rank, world_size
        self.start_step, self.start_position = start_step, start_position

    def batch_at(self, step: int, position: int) -> list[tuple[int, int, int]]:
        """Rank ``rank``'s items of the step that starts at global ``position``."""
        size = resolution_at(step, self.seed, self.resolutions, self.weights)
        first = position + self.rank
        positions = [first + self.world_size * j for j in range(self.batch_sizes[size])]
        if self.plain:
            return [self.order[p] for p in positions]
        return [(self.order[p], p, size) for p in positions]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        step, position = self.start_step, self.start_position
        while True:
            batch = self.batch_at(step, position)
            yield batch
            position += self.world_size * len(batch)
            step += 1


def make_loader(
    dataset: MultiResolutionDataset,
    cfg: DataConfig,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    start_step: int = 0,
    start_position: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """An endless DataLoader of this rank's batches (``{"video": (B, 3, T, S, S), ...}``)."""
    sampler = ResolutionBatchSampler(
        len(dataset),
        seed,
        cfg.resolution_batch_sizes(),
        cfg.resolution_weights,
        rank,
        world_size,
        start_step,
        start_position,
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate,
        worker_init_fn=worker_init_fn(rank),
        generator=loader_generator(seed, rank),
        persistent_workers=cfg.num_workers > 0,
        pin_memory=pin_memory,
    )
