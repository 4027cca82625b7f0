"""Training data for ``pvvae train``: datasets from the data config, and a resumable sampler."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pvvae.config import ConfigError
from pvvae.training.config import DataConfig


def build_dataset(cfg: DataConfig, seed: int, train: bool = True) -> Dataset:
    """The dataset named by ``cfg.kind``. Synthetic clips need no files."""
    if cfg.kind == "synthetic":
        from pvvae.data.synthetic import SyntheticVideoDataset

        return SyntheticVideoDataset(
            num_clips=cfg.num_clips,
            num_frames=cfg.num_frames,
            height=cfg.size,
            width=cfg.size,
            seed=seed,
            camera_pan=cfg.camera_pan,
            annotations=False,
        )
    raise ConfigError(f"data.kind={cfg.kind!r} is not supported by this trainer yet")


class ResumableSampler(Sampler[int]):
    """Endless random order over a dataset, restartable at any sample position.

    Epoch e visits ``randperm(N)`` drawn from a generator seeded with (seed, e); position p
    is sample p % N of epoch p // N. Saving ``position`` and restoring it continues the same
    sequence, which exact resume needs.
    """

    def __init__(self, num_items: int, seed: int, position: int = 0) -> None:
        if num_items == 0:
            raise ValueError("the dataset is empty")
        self.num_items, self.seed, self.position = num_items, seed, position

    def _perm(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_items, generator=g)

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self.position, self.num_items)
        while True:
            perm = self._perm(epoch)
            for i in range(offset, self.num_items):
                yield int(perm[i])
            epoch, offset = epoch + 1, 0


def make_loader(dataset: Dataset, cfg: DataConfig, seed: int, position: int = 0) -> DataLoader:
    """An endless DataLoader starting at sample ``position``."""
    sampler = ResumableSampler(len(dataset), seed, position)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=True,
        persistent_workers=cfg.num_workers > 0,
    )
