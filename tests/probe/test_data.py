"""Probing data: .flo round trip, Sintel / TAP-Vid-DAVIS / video-folder loaders on small files
written in the released formats, and the synthetic clips with every target."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from pvvae.probe.data import (
    NextFrameClips,
    SintelClips,
    SyntheticProbeClips,
    TapVidDavisClips,
    read_flo,
    resize_points,
    write_flo,
)


def test_flo_layout_is_magic_width_height_then_interleaved_uv(tmp_path):
    flow = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)  # (H=2, W=3, 2)
    path = write_flo(tmp_path / "a.flo", flow)
    raw = path.read_bytes()
    assert np.frombuffer(raw, "<f4", 1)[0] == np.float32(202021.25)
    assert np.frombuffer(raw, "<i4", 2, offset=4).tolist() == [3, 2]  # width first
    assert np.frombuffer(raw, "<f4", 2, offset=12).tolist() == [0.0, 1.0]  # (u, v) of pixel 0
    np.testing.assert_array_equal(read_flo(path), flow)


def test_bad_flo_files_say_what_is_wrong(tmp_path):
    (tmp_path / "x.flo").write_bytes(b"\0" * 20)
    with pytest.raises(ValueError, match="magic"):
        read_flo(tmp_path / "x.flo")
    raw = write_flo(tmp_path / "y.flo", np.zeros((2, 2, 2))).read_bytes()
    (tmp_path / "y.flo").write_bytes(raw[:-4])
    with pytest.raises(ValueError, match="truncated"):
        read_flo(tmp_path / "y.flo")


def _write_sintel(root, scenes=(("alley_1", 5), ("cave_2", 3)), h=6, w=8):
    """training/{clean,final,flow}/<scene>/frame_0001.png|.flo, 1-based like the release."""
    rng = np.random.default_rng(0)
    for scene, n in scenes:
        for i in range(1, n + 1):
            for pass_name in ("clean", "final"):
                folder = root / "training" / pass_name / scene
                folder.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"frame_{i:04d}.png")
            if i < n:  # n frames have n - 1 flows
                flow = np.full((h, w, 2), [i, -i], dtype=np.float32)
                write_flo(root / "training" / "flow" / scene / f"frame_{i:04d}.flo", flow)


def test_sintel_clips(tmp_path):
    _write_sintel(tmp_path)
    ds = SintelClips(tmp_path, "final", num_frames=2)
    assert len(ds) == 3  # alley_1: clips at frames 1, 3 (5 frames); cave_2: frame 1
    item = ds[1]
    assert item["video"].shape == (3, 2, 6, 8) and item["flow"].shape == (2, 1, 6, 8)
    assert item["flow"][:, 0, 0, 0].tolist() == [3.0, -3.0]  # frame_0003.flo
    png = np.array(Image.open(tmp_path / "training/final/alley_1/frame_0003.png"))
    assert torch.allclose(item["video"][:, 0], torch.from_numpy(png).permute(2, 0, 1) / 127.5 - 1)
    resized = SintelClips(tmp_path / "training", "clean", num_frames=3, size=(3, 16))[0]
    assert resized["flow"].shape == (2, 2, 3, 16)
    assert torch.allclose(resized["flow"][:, 0, 1, 1], torch.tensor([2.0, -0.5]))  # x2, /2
    with pytest.raises(ValueError, match="no Sintel scene"):
        SintelClips(tmp_path, num_frames=9)
    with pytest.raises(FileNotFoundError, match="training/clean"):
        SintelClips(tmp_path / "training" / "flow")


def test_tapvid_davis_clips(tmp_path):
    t, h, w = 5, 8, 16
    points = np.zeros((2, t, 2), np.float32)
    points[0, :, 0] = (np.arange(t) + 0.5) / w  # x = pixel centres 0..4
    points[0, :, 1] = 4.5 / h
    occluded = np.zeros((2, t), bool)
    occluded[1, :2] = True
    data = {
        "bear": {"video": np.zeros((t, h, w, 3), np.uint8), "points": points, "occluded": occluded},
        "short": {"video": np.zeros((2, h, w, 3), np.uint8), "points": points[:, :2],
                  "occluded": occluded[:, :2]},
    }
    path = tmp_path / "tapvid_davis.pkl"
    path.write_bytes(pickle.dumps(data))
    ds = TapVidDavisClips(path, num_frames=4, size=None)
    assert len(ds) == 1  # "short" has 2 < 4 frames
    item = ds[0]
    assert item["tracks"].shape == (2, 4, 2) and item["video"].shape == (3, 4, h, w)
    assert item["tracks"][0, :, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert item["tracks"][0, 0, 1].item() == pytest.approx(4.0)
    assert item["visible"][1].tolist() == [False, False, True, True]
    big = TapVidDavisClips(path, num_frames=4, size=(16, 32))[0]
    assert torch.allclose(big["tracks"], resize_points(item["tracks"], (h, w), (16, 32)))
    assert big["tracks"][0, 1, 0].item() == pytest.approx(2.5)  # (1 + 0.5) * 2 - 0.5
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps({"bear": {"video": data["bear"]["video"]}}))
    with pytest.raises(ValueError, match="lacks"):
        TapVidDavisClips(tmp_path / "bad.pkl")


def test_next_frame_clips_from_a_video_folder(tmp_path):
    from pvvae.data.synthetic import synthetic_clip
    from pvvae.data.video_io import write_video

    for name, frames in (("a/long.mp4", 6), ("a/short.mp4", 3)):
        clip = synthetic_clip(0, frames, num_frames=frames, height=32, width=32, annotations=False)
        write_video(tmp_path / name, clip["video"], fps=8)
    (tmp_path / "a" / "broken.mp4").write_bytes(b"garbage")
    ds = NextFrameClips(tmp_path, num_frames=4, size=32)
    assert len(ds) == 1  # the short and the broken video are skipped
    item = ds[0]
    assert item["video"].shape == (3, 4, 32, 32) and item["next"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="no video"):
        NextFrameClips(tmp_path, num_frames=8, size=32)


def test_synthetic_probe_clips_cut_the_generator_output():
    from pvvae.data.synthetic import preset_config, synthetic_clip

    item = SyntheticProbeClips(2, num_frames=5, size=32, seed=3, num_tracks=4)[1]
    cfg = preset_config("proving_ground", num_frames=6, height=32, width=32, num_tracks=4)
    full = synthetic_clip(3, 1, cfg)  # the preset the library's VAEs and Lattes train on
    assert torch.equal(item["video"], full["video"][:, :5])
    assert torch.equal(item["next"], full["video"][:, 5])
    assert item["flow"].shape == (2, 4, 32, 32) and item["tracks"].shape == (4, 5, 2)
    assert item["visible"].shape == (4, 5)


def test_synthetic_probe_spec_names_the_preset():
    from pvvae.data.synthetic import synthetic_clip
    from pvvae.probe.run import canonical_data_spec, open_probe_data

    assert open_probe_data("synthetic", 5, 32, 2, 3).preset == "proving_ground"
    # a study's store key names the clips: the default is spelled out
    assert canonical_data_spec("synthetic") == canonical_data_spec("synthetic:proving_ground")
    assert canonical_data_spec("synthetic:textured") == "synthetic:textured"
    textured = open_probe_data("synthetic:textured", 5, 32, 2, 3)
    full = synthetic_clip(3, 1, num_frames=6, height=32, width=32)  # generator defaults
    assert torch.equal(textured[1]["video"], full["video"][:, :5])
    with pytest.raises(ValueError, match="unknown synthetic preset 'plain'; valid"):
        open_probe_data("synthetic:plain", 5, 32, 2, 3)
