"""Tests of pvvae.data.folders on tiny mp4 trees written in a temporary folder."""

import logging

import pytest
import torch

from pvvae.data.folders import (
    VideoFolderDataset,
    VideoManifestDataset,
    read_manifest,
    scan_folder,
)
from pvvae.data.video_io import read_video, resize_and_crop, to_model_range
from tests.hostile_files import lying_header_avi

from .conftest import write_clip


def test_scan_folder_labels_from_sorted_subfolders(video_tree):
    paths, labels, classes = scan_folder(video_tree, (".MP4",))
    assert classes == ["a_jump", "b_walk"]
    assert [p.name for p in paths] == [
        "c0.mp4",
        "c1.mp4",
        "c2_broken.mp4",
        "c3.mp4",
        "c4_short.mp4",
    ]
    assert labels == [0, 0, 0, 1, 1]


def test_eval_items_are_the_first_frames_centre_cropped(video_tree):
    ds = VideoFolderDataset(video_tree, num_frames=9, size=32, train=False)
    item = ds[0]
    assert set(item) == {"video", "label", "path"}
    assert item["video"].shape == (3, 9, 32, 32) and item["video"].dtype == torch.float32
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert item["label"] == 0 and item["path"].endswith("c0.mp4")
    expected = to_model_range(resize_and_crop(read_video(item["path"], 0, 9), 32))
    assert torch.equal(item["video"], expected)
    again = VideoFolderDataset(video_tree, num_frames=9, size=32, train=False, seed=5)
    assert torch.equal(again[0]["video"], item["video"])  # evaluation ignores the seed
    assert ds[3]["label"] == 1


def test_frame_stride_and_native_size(video_tree):
    ds = VideoFolderDataset(video_tree, num_frames=5, frame_stride=2, size=None, train=False)
    video = ds[0]["video"]
    assert video.shape == (3, 5, 48, 64)  # 48x64 already multiples of 16
    assert torch.equal(video, to_model_range(read_video(ds.paths[0], 0, 5, stride=2)))


def test_short_video_repeats_its_last_frame(video_tree):
    ds = VideoFolderDataset(video_tree, num_frames=9, size=32, train=False)
    video = ds[4]["video"]  # c4_short.mp4 has 5 frames
    assert video.shape == (3, 9, 32, 32)
    for t in range(5, 9):
        assert torch.equal(video[:, t], video[:, 4])
    assert not torch.equal(video[:, 0], video[:, 4])


def test_train_clips_are_random_but_seeded(video_tree):
    def draws(seed):
        ds = VideoFolderDataset(video_tree, num_frames=9, size=32, train=True, seed=seed)
        return [ds[0]["video"] for _ in range(4)]

    first, same, other = draws(0), draws(0), draws(1)
    assert all(torch.equal(a, b) for a, b in zip(first, same))
    assert any(not torch.equal(a, first[0]) for a in first[1:])  # start/crop vary per draw
    assert any(not torch.equal(a, b) for a, b in zip(first, other))


def test_train_clip_lies_inside_the_video(video_tree):
    ds = VideoFolderDataset(video_tree, num_frames=9, size=48, train=True)
    frames = to_model_range(read_video(ds.paths[0]))  # (3, 24, 48, 64)
    for _ in range(5):
        clip = ds[0]["video"]  # a 48x48 window of 9 consecutive frames
        found = any(
            torch.equal(clip, frames[:, s : s + 9, :, x : x + 48])
            for s in range(24 - 9 + 1)
            for x in range(64 - 48 + 1)
        )
        assert found


def test_corrupt_file_is_skipped_counted_and_logged_once(video_tree, caplog):
    ds = VideoFolderDataset(video_tree, num_frames=9, size=32, train=False)
    with caplog.at_level(logging.WARNING, logger="pvvae.data.folders"):
        item = ds[2]  # c2_broken.mp4
        again = ds[2]
    assert item["path"].endswith("c3.mp4") and torch.equal(item["video"], again["video"])
    assert ds.skipped == 1 and [p.name for p in ds.skipped_paths] == ["c2_broken.mp4"]
    warnings = [r for r in caplog.records if "c2_broken.mp4" in r.getMessage()]
    assert len(warnings) == 1


def test_skips_are_counted_across_workers(video_tree):
    ds = VideoFolderDataset(video_tree, num_frames=5, size=16, train=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)
    paths = [batch["path"][0] for batch in loader]
    assert len(paths) == 5 and sum(p.endswith("c3.mp4") for p in paths) == 2
    assert ds.skipped == 1  # seen from the main process


def test_all_files_unreadable_is_a_clear_error(tmp_path):
    (tmp_path / "x").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / "x" / name).write_bytes(b"\x00" * 100)
    ds = VideoFolderDataset(tmp_path, size=16, train=False)
    with pytest.raises(RuntimeError, match="all 2 files"):
        ds[0]
    assert ds.skipped == 2


def test_empty_folder_names_folder_and_extensions(tmp_path):
    (tmp_path / "notes.txt").write_text("no videos here")
    with pytest.raises(FileNotFoundError) as info:
        VideoFolderDataset(tmp_path, extensions=(".mp4", ".avi"))
    assert str(tmp_path) in str(info.value) and ".avi" in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoFolderDataset(tmp_path / "missing")


def test_manifest_relative_absolute_labels_and_missing_files(video_tree, tmp_path):
    write_clip(tmp_path / "clips" / "local.mp4", 9)
    manifest = tmp_path / "train.csv"
    manifest.write_text(
        "path,label\n"
        "clips/local.mp4,walk\n"
        f"{video_tree / 'a_jump' / 'c1.mp4'},jump\n"
        "clips/missing.mp4,walk\n"
    )
    ds = VideoManifestDataset(manifest, num_frames=5, size=16, train=False)
    assert ds.classes == ["jump", "walk"] and ds.labels == [1, 0, 1]
    assert ds[0]["path"] == str(tmp_path / "clips" / "local.mp4")
    assert ds[1]["label"] == 0 and ds[1]["video"].shape == (3, 5, 16, 16)
    assert ds[2]["path"].endswith("local.mp4") and ds.skipped == 1  # wraps to index 0


def test_manifest_without_labels_and_malformed(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("path\na.mp4\nb.mp4\n")
    paths, labels, _ = read_manifest(plain)
    assert labels == [0, 0] and paths[1] == tmp_path / "b.mp4"
    numbered = tmp_path / "numbered.csv"
    numbered.write_text("path,label\na.mp4,3\nb.mp4,1\n")
    assert read_manifest(numbered)[1] == [3, 1]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.mp4,0\n")
    with pytest.raises(ValueError, match="'path' column"):
        read_manifest(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("path,label\n")
    with pytest.raises(ValueError, match="no files"):
        VideoManifestDataset(empty)


def test_keyed_items_are_pure_functions_of_seed_index_and_key(video_tree):
    ds = VideoFolderDataset(video_tree, num_frames=5, size=24, train=True, seed=3)
    a = ds[(0, 11)]["video"]
    _ = ds[0], ds[1]  # advancing the dataset's own stream does not matter
    fresh = VideoFolderDataset(video_tree, num_frames=5, size=24, train=True, seed=3)
    assert torch.equal(a, fresh[(0, 11)]["video"])
    assert any(not torch.equal(a, ds[(0, key)]["video"]) for key in range(12, 16))
    assert ds[(2, 0)]["path"].endswith("c3.mp4")  # skipping works for keyed items too
    loader = torch.utils.data.DataLoader(ds, batch_size=2, sampler=[(0, 11), (1, 4)])
    assert torch.equal(next(iter(loader))["video"][0], a)


def test_clips_are_drawn_within_the_decodable_frames(tmp_path):
    """A header claiming 40 frames for 17 decodable ones: every training draw stays readable
    (before: a draw past frame 17 marked the file unreadable for the whole run)."""
    lying_header_avi(tmp_path / "a" / "cut.avi")
    ds = VideoFolderDataset(tmp_path, num_frames=5, size=16, train=True)
    items = [ds[(0, key)] for key in range(30)]
    assert ds.skipped == 0 and all(item["path"].endswith("cut.avi") for item in items)
    starts = [ds.clip_start(ds.paths[0], ds.keyed_generator(key)) for key in range(30)]
    assert max(starts) == 17 - 5 and min(starts) == 0  # the whole decodable range, no more


def test_try_item_never_substitutes_another_file(video_tree):
    ds = VideoFolderDataset(video_tree, num_frames=5, size=16, train=False)
    assert ds.try_item(2) is None  # c2_broken.mp4
    assert ds.try_item(3)["path"].endswith("c3.mp4")
    assert [p.name for p in ds.skipped_paths] == ["c2_broken.mp4"]


def test_mark_skipped_restores_a_skip_state_without_retrying(video_tree, monkeypatch):
    ds = VideoFolderDataset(video_tree, num_frames=5, size=16, train=False)
    ds.mark_skipped([str(video_tree / "a_jump" / "c2_broken.mp4"), "/elsewhere/x.mp4"])
    monkeypatch.setattr(ds, "load", lambda *a: pytest.fail("a marked file was read"))
    assert ds.skipped == 1 and ds.try_item(2) is None
