"""Tests of pvvae.data.images: image folders as one-frame videos."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from pvvae.data.images import ImageFolderDataset, read_image
from pvvae.data.synthetic import synthetic_clip
from pvvae.data.video_io import from_model_range


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """cats/{0.png, 1.jpg, 2_broken.jpg}, dogs/{3.png (truncated), 4.png}."""
    root = tmp_path_factory.mktemp("images")
    for index, name in [(0, "cats/0.png"), (1, "cats/1.jpg"), (4, "dogs/4.png")]:
        frame = from_model_range(synthetic_clip(0, index, num_frames=1, height=40, width=60,
                                                annotations=False)["video"])[0]
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(frame.numpy()).save(root / name)
    (root / "cats" / "2_broken.jpg").write_bytes(np.random.default_rng(1).bytes(3000))
    (root / "dogs" / "3.png").write_bytes((root / "dogs" / "4.png").read_bytes()[:200])
    return root


def test_read_image_is_a_one_frame_uint8_video(image_tree):
    frames = read_image(image_tree / "cats" / "0.png")
    assert frames.shape == (1, 40, 60, 3) and frames.dtype == torch.uint8


def test_items_labels_and_eval_determinism(image_tree):
    ds = ImageFolderDataset(image_tree, size=32, train=False)
    assert ds.classes == ["cats", "dogs"] and len(ds) == 5
    item = ds[0]
    assert item["video"].shape == (3, 1, 32, 32) and item["label"] == 0
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert torch.equal(item["video"], ImageFolderDataset(image_tree, 32, train=False)[0]["video"])
    assert ds[4]["label"] == 1
    native = ImageFolderDataset(image_tree, size=None, train=False)[0]["video"]
    assert native.shape == (3, 1, 32, 48)


def test_random_crops_vary_and_are_seeded(image_tree):
    def draws(seed):
        ds = ImageFolderDataset(image_tree, size=24, train=True, seed=seed)
        return [ds[0]["video"] for _ in range(6)]

    first = draws(0)
    assert all(torch.equal(a, b) for a, b in zip(first, draws(0)))
    assert any(not torch.equal(a, first[0]) for a in first[1:])


def test_broken_and_truncated_images_are_skipped(image_tree, caplog):
    ds = ImageFolderDataset(image_tree, size=16, train=False)
    with caplog.at_level(logging.WARNING):
        assert ds[2]["path"].endswith("4.png")  # 2_broken.jpg and 3.png (truncated) skipped
    assert ds.skipped == 2
    assert sum("2_broken.jpg" in r.getMessage() for r in caplog.records) == 1


def test_empty_image_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=".png"):
        ImageFolderDataset(tmp_path)
