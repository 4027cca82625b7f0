"""DataLoader helpers: deterministic per-rank, per-worker seeding and batch collation.

Usage (one process per rank)::

    loader = DataLoader(
        dataset, batch_size=8, shuffle=True, num_workers=4,
        generator=loader_generator(seed, rank),   # shuffling order and worker base seeds
        worker_init_fn=worker_init_fn(rank),      # reseeds the dataset copy in each worker
        collate_fn=collate,
    )

With both, a run is reproducible for a given (seed, rank, num_workers) and no two workers or
ranks share a random stream.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from pvvae.data.folders import SkippingDataset


def loader_generator(seed: int, rank: int = 0) -> torch.Generator:
    """Generator for ``DataLoader(generator=...)``: distinct per (seed, rank).

    The DataLoader draws the shuffling order and each epoch's worker base seed from it.
    """
    state = np.random.SeedSequence([seed, rank]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) | int(state[1]) << 32)


def seed_worker(worker_id: int, rank: int = 0) -> None:
    """``worker_init_fn`` body: seed this worker from (loader base seed, rank, worker id).

    Seeds the worker process's ``torch``, ``numpy`` and ``random`` RNGs (for third-party code
    that uses them; this package does not) and calls ``dataset.reseed(seed)`` when the dataset
    has one, so each worker draws its own training crops.

    Args:
        worker_id: passed by the DataLoader.
        rank: distributed rank of this process.
    Raises:
        RuntimeError: called outside a DataLoader worker.
    """
    info = get_worker_info()
    if info is None:
        raise RuntimeError("seed_worker must run inside a DataLoader worker (worker_init_fn)")
    state = np.random.SeedSequence([info.seed, rank, worker_id]).generate_state(2)
    seed = int(state[0]) | int(state[1]) << 32
    torch.manual_seed(seed)
    np.random.seed(int(state[0]))  # worker processes only: forked workers share numpy's state
    random.seed(seed)
    reseed = getattr(info.dataset, "reseed", None)
    if callable(reseed):
        reseed(seed)


def worker_init_fn(rank: int = 0) -> Callable[[int], None]:
    """``seed_worker`` bound to ``rank``, ready for ``DataLoader(worker_init_fn=...)``."""
    return functools.partial(seed_worker, rank=rank)


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch item dicts: tensors are stacked, numbers become a (B,) tensor, the rest lists.

    Args:
        items: dicts with the same keys, e.g. ``{"video": (3, T, H, W), "label": int,
            "path": str}``.
    Returns:
        e.g. ``{"video": (B, 3, T, H, W), "label": (B,) int64, "path": list[str]}``.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)  # (B, ...)
        elif isinstance(values[0], (bool, int, float)):
            batch[key] = torch.tensor(values)  # (B,) int64 / float32 / bool
        else:
            batch[key] = list(values)
    return batch


class ReadableItems(Dataset):
    """Items ``(index, item or None, path)`` of chosen ``indices`` of ``dataset``.

    For evaluation and caching, where a clip must be counted once: an unreadable file of a
    :class:`pvvae.data.SkippingDataset` gives ``None`` (via ``try_item``) instead of being
    replaced by the next readable file. Other datasets are indexed as they are.

    Args:
        dataset: items ``{"video": (3, T, H, W), "label": int, ...}``.
        indices: dataset indices, in the order to read them.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, dict[str, Any] | None, str]:
        index = self.indices[i]
        if isinstance(self.dataset, SkippingDataset):
            return index, self.dataset.try_item(index), str(self.dataset.paths[index])
        item = self.dataset[index]
        return index, item, str(item.get("path", f"#{index}"))


def collate_readable(
    entries: Sequence[tuple[int, dict[str, Any] | None, str]],
) -> tuple[list[int], dict[str, Any] | None, list[str], list[tuple[int, str]]]:
    """``collate_fn`` of :class:`ReadableItems`: the readable items batched, the rest listed.

    Returns:
        ``(indices, batch, paths, skipped)``: the readable items' indices, their
        :func:`collate` batch (None when none is readable) and paths, and ``(index, path)`` of
        each unreadable file.
    """
    readable = [(index, item, path) for index, item, path in entries if item is not None]
    skipped = [(index, path) for index, item, path in entries if item is None]
    batch = collate([item for _, item, _ in readable]) if readable else None
    return [e[0] for e in readable], batch, [e[2] for e in readable], skipped
