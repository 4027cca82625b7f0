"""Training data: sharded resumable order, shared resolution schedule, real folders with
corrupt files skipped and counted, and clear errors for empty datasets."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pvvae.config import ConfigError
from pvvae.data.synthetic import synthetic_clip
from pvvae.data.video_io import write_video
from pvvae.training.data import (
    GlobalOrder,
    ResolutionBatchSampler,
    ResumableSampler,
    build_training_dataset,
    resolution_at,
)
from pvvae.training.trainer import train

from .conftest import micro_config, read_log


def _take(it, n):
    return list(itertools.islice(iter(it), n))


def test_ranks_split_the_global_order_without_overlap():
    single = _take(ResumableSampler(10, seed=3), 20)
    ranks = [_take(ResumableSampler(10, seed=3, rank=r, world_size=2), 10) for r in range(2)]
    assert single[0::2] == ranks[0] and single[1::2] == ranks[1]
    assert sorted(single[:10]) == list(range(10))  # an epoch is a permutation
    assert single[:10] != single[10:]  # epochs reshuffle
    resumed = _take(ResumableSampler(10, seed=3, position=6), 14)
    assert resumed == single[6:]
    with pytest.raises(ValueError, match="empty"):
        GlobalOrder(0, seed=0)


def test_resolution_batches_are_shared_sharded_and_resumable():
    sizes, weights = {32: 4, 64: 1}, {32: 1.0, 64: 1.0}
    ranks = [_take(ResolutionBatchSampler(100, 0, sizes, weights, r, 2), 12) for r in range(2)]
    single = _take(ResolutionBatchSampler(100, 0, {32: 8, 64: 2}, weights), 12)
    for step, (b0, b1, b) in enumerate(zip(*ranks, single)):
        res = {item[2] for item in b0 + b1}
        assert len(res) == 1 and res.pop() == resolution_at(step, 0, [32, 64], [1.0, 1.0])
        assert len(b0) == len(b1) == sizes[b0[0][2]]  # per-rank batch size of the resolution
        assert {i[1] for i in b0}.isdisjoint({i[1] for i in b1})  # different samples per rank
        assert sorted(b0 + b1, key=lambda i: i[1]) == b  # same global order as W = 1
    assert {b[0][2] for b in single} == {32, 64}
    # restart at step 5 from its global position
    position = sum(len(b) for b in single[:5])
    again = _take(ResolutionBatchSampler(100, 0, {32: 8, 64: 2}, weights, 0, 1, 5, position), 7)
    assert again == single[5:]


def _write_videos(root: Path, good: int, corrupt: int) -> None:
    for i in range(good):
        clip = synthetic_clip(1, i, num_frames=12, height=40, width=48, annotations=False)
        write_video(root / f"class{i % 2}" / f"clip{i}.mp4", clip["video"], fps=8)
    rng = np.random.default_rng(0)
    for i in range(corrupt):
        (root / "class0" / f"broken{i}.mp4").write_bytes(rng.bytes(3000))


def test_corrupt_videos_are_skipped_and_counted_in_training(tmp_path):
    root = tmp_path / "videos"
    _write_videos(root, good=3, corrupt=2)
    cfg = micro_config(
        tmp_path,
        "name=folder",
        "data.kind=video_folder",
        f"data.root={root}",
        "train.steps=4",
        "data.num_workers=1",
    )
    log = read_log(train(cfg))
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert log[-1]["data/skipped_files"] == 2  # 8 samples from 5 files: every file was tried
    assert all(np.isfinite(r["loss/total"]) for r in log)


def test_manifest_with_a_missing_file(tmp_path):
    root = tmp_path / "videos"
    _write_videos(root, good=2, corrupt=0)
    manifest = tmp_path / "train.csv"
    manifest.write_text(
        "path,label\nvideos/class0/clip0.mp4,0\nvideos/gone.mp4,1\nvideos/class1/clip1.mp4,1\n"
    )
    cfg = micro_config(
        tmp_path,
        "name=manifest",
        "data.kind=video_manifest",
        f"data.root={manifest}",
        "train.steps=2",
    )
    log = read_log(train(cfg))
    assert log[-1]["data/skipped_files"] == 1


def test_image_stage_on_an_image_folder_with_a_corrupt_file(tmp_path):
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(4):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)).save(
            root / f"c{i % 2}" / f"{i}.png"
        )
    (root / "c0" / "bad.png").write_bytes(b"not a png")
    cfg = micro_config(
        tmp_path,
        "name=images",
        "train.stage=image",
        "data.kind=image_folder",
        f"data.root={root}",
        "data.batch_sizes={32: 3, 48: 2}",
        "train.steps=6",
    )
    log = read_log(train(cfg))
    assert {r["data/resolution"] for r in log} == {32, 48}
    assert log[-1]["data/skipped_files"] == 1
    assert all(r["step/k"] == 0 for r in log)


def test_empty_datasets_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no files with extensions"):
        build_training_dataset(
            micro_config(
                tmp_path, "data.kind=video_folder", f"data.root={tmp_path / 'empty'}"
            ).data,
            seed=0,
        )
    with pytest.raises(ConfigError, match="empty"):
        build_training_dataset(micro_config(tmp_path, "data.num_clips=0").data, seed=0)
