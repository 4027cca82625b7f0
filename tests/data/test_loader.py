"""Tests of pvvae.data.loader: collation and per-rank, per-worker seeding."""

import pytest
import torch
from torch.utils.data import DataLoader

from pvvae.data.folders import VideoFolderDataset
from pvvae.data.loader import collate, loader_generator, seed_worker, worker_init_fn


def test_collate_stacks_videos_and_labels():
    items = [{"video": torch.full((3, 5, 8, 8), float(i)), "label": i, "path": f"{i}.mp4"}
             for i in range(3)]
    batch = collate(items)
    assert batch["video"].shape == (3, 3, 5, 8, 8) and batch["video"][2].eq(2).all()
    assert batch["label"].dtype == torch.int64 and batch["label"].tolist() == [0, 1, 2]
    assert batch["path"] == ["0.mp4", "1.mp4", "2.mp4"]
    with pytest.raises(ValueError):
        collate([])


def test_seed_worker_needs_a_worker():
    with pytest.raises(RuntimeError):
        seed_worker(0)


def test_loader_generator_differs_per_rank():
    a, b = loader_generator(0, 0), loader_generator(0, 1)
    assert torch.randint(0, 2**30, (4,), generator=a).tolist() != torch.randint(
        0, 2**30, (4,), generator=b).tolist()


def _crops(root, rank, seed=0, init=True):
    """Train crops of item 0 drawn four times by two workers (two draws each)."""
    ds = VideoFolderDataset(root, num_frames=5, size=24, train=True, seed=seed)
    loader = DataLoader(
        ds,
        batch_size=1,
        sampler=[0, 0, 0, 0],
        num_workers=2,
        generator=loader_generator(seed, rank),
        worker_init_fn=worker_init_fn(rank) if init else None,
        collate_fn=collate,
    )
    return [batch["video"][0] for batch in loader]


def test_worker_seeding_is_reproducible_and_distinct(video_tree):
    first = _crops(video_tree, rank=0)
    assert all(torch.equal(a, b) for a, b in zip(first, _crops(video_tree, rank=0)))
    # workers 0 and 1 serve batches 0 and 1: their streams differ
    assert not torch.equal(first[0], first[1])
    other_rank = _crops(video_tree, rank=1)
    assert any(not torch.equal(a, b) for a, b in zip(first, other_rank))


def test_workers_differ_even_without_worker_init_fn(video_tree):
    crops = _crops(video_tree, rank=0, init=False)
    assert not torch.equal(crops[0], crops[1])
    assert all(torch.equal(a, b) for a, b in zip(crops, _crops(video_tree, rank=0, init=False)))
