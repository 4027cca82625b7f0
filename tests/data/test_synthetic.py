"""Tests of pvvae.data.synthetic: determinism, shapes, flow and track ground truth."""

import time

import pytest
import torch
import torch.nn.functional as F

from pvvae.data.synthetic import (
    SHAPE_KINDS,
    SYNTHETIC_PRESETS,
    SyntheticConfig,
    SyntheticVideoDataset,
    preset_config,
    synthetic_clip,
)

PROVING = preset_config("proving_ground")


def _sample(frames: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear sample (C, H, W) at pixel positions xy (..., 2) -> (C, ...)."""
    c, h, w = frames.shape
    grid = torch.stack([xy[..., 0] / (w - 1), xy[..., 1] / (h - 1)], dim=-1) * 2 - 1
    out = F.grid_sample(frames[None], grid.reshape(1, 1, -1, 2), align_corners=True)
    return out.reshape(c, *xy.shape[:-1])


def test_item_keys_shapes_dtypes_and_range():
    item = synthetic_clip(0, 0, num_frames=9, height=32, width=48, num_tracks=10)
    assert set(item) == {"video", "label", "flow", "tracks", "visible"}
    assert item["video"].shape == (3, 9, 32, 48) and item["video"].dtype == torch.float32
    assert item["flow"].shape == (2, 8, 32, 48) and item["flow"].dtype == torch.float32
    assert item["tracks"].shape == (10, 9, 2) and item["tracks"].dtype == torch.float32
    assert item["visible"].shape == (10, 9) and item["visible"].dtype == torch.bool
    assert isinstance(item["label"], int) and 0 <= item["label"] < len(SHAPE_KINDS)
    video = item["video"]
    assert video.min() >= -1 and video.max() <= 1 and video.std() > 0.1
    assert item["visible"][:, 0].all()  # sampled on visible surfaces at frame 0


def test_annotations_off_and_image_case():
    item = synthetic_clip(3, 1, annotations=False)
    assert set(item) == {"video", "label"}
    assert torch.equal(item["video"], synthetic_clip(3, 1)["video"])  # same content
    image = synthetic_clip(3, 1, num_frames=1)
    assert image["video"].shape == (3, 1, 64, 64) and image["flow"].shape == (2, 0, 64, 64)


def test_deterministic_per_seed_and_index():
    a, b = synthetic_clip(5, 7), synthetic_clip(5, 7)
    for key in ("video", "flow", "tracks", "visible"):
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["video"], synthetic_clip(5, 8)["video"])
    assert not torch.equal(a["video"], synthetic_clip(6, 7)["video"])


def test_same_scene_at_any_resolution():
    small, large = synthetic_clip(2, 4, noise_std=0.0), synthetic_clip(
        2, 4, height=128, width=128, noise_std=0.0
    )
    assert small["label"] == large["label"]
    down = F.avg_pool2d(large["video"].transpose(0, 1), 2).transpose(0, 1)  # (3, T, 64, 64)
    assert (down - small["video"]).abs().mean() < 0.05


@pytest.mark.parametrize("preset", sorted(SYNTHETIC_PRESETS))
@pytest.mark.parametrize("camera_pan", [True, False])
def test_flow_warps_frame_to_next(camera_pan, preset):
    """Frame i at x equals frame i+1 at x + flow_i(x) on non-occluded pixels.

    A pixel counts as occluded when its target leaves the frame or lands on a surface with a
    different motion (flow_{i+1} there differs from flow_i here): flows are piecewise constant.
    """
    for index in range(4):
        item = synthetic_clip(
            1, index, preset_config(preset), camera_pan=camera_pan, acceleration=index == 3
        )
        video, flow = item["video"], item["flow"]
        _, t, h, w = video.shape
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        for i in range(t - 2):
            target = torch.stack([xs + flow[0, i], ys + flow[1, i]], dim=-1)  # (H, W, 2)
            warped = _sample(video[:, i + 1], target)  # (3, H, W)
            error = (warped - video[:, i]).abs().amax(dim=0)
            near_x = target[..., 0].round().long().clamp(0, w - 1)
            near_y = target[..., 1].round().long().clamp(0, h - 1)
            same = (flow[:, i + 1, near_y, near_x] - flow[:, i]).abs().amax(dim=0) < 0.5
            inside = (target[..., 0] >= 0) & (target[..., 0] <= w - 1)
            inside &= (target[..., 1] >= 0) & (target[..., 1] <= h - 1)
            good = (error[inside & same] < 0.1).float().mean()
            assert good > 0.9, (index, i, good)


def test_flow_fails_when_shifted():
    """The warp check above can fail: a wrong flow does not reproduce the next frame."""
    item = synthetic_clip(1, 0)
    video, flow = item["video"], item["flow"] + 3.0
    h, w = video.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    target = torch.stack([xs + flow[0, 0], ys + flow[1, 0]], dim=-1)
    error = (_sample(video[:, 1], target) - video[:, 0]).abs().amax(dim=0)
    assert (error < 0.1).float().mean() < 0.9


def test_tracks_keep_their_colour_and_agree_with_flow():
    checked = 0
    for index in range(6):
        item = synthetic_clip(2, index)
        video, tracks, visible = item["video"], item["tracks"], item["visible"]
        colours = torch.stack([_sample(video[:, t], tracks[:, t]) for t in range(video.shape[1])])
        drift = (colours - colours[:1]).abs().amax(dim=1)  # (T, N)
        assert (drift.T[visible] < 0.15).float().mean() > 0.9
        checked += int(visible.sum())
        start = tracks[:, 0].round().long()  # frame-0 points lie on pixel centres
        flow_at = item["flow"][:, 0, start[:, 1], start[:, 0]].T  # (N, 2)
        torch.testing.assert_close(flow_at, tracks[:, 1] - tracks[:, 0], atol=1e-4, rtol=0)
    assert checked > 6 * 16 * 17 * 0.5


def test_tracks_cover_shapes_and_background_and_move():
    item = synthetic_clip(0, 3, camera_pan=False)
    tracks = item["tracks"]
    moved = (tracks[:, -1] - tracks[:, 0]).norm(dim=-1)
    assert (moved > 1.0).sum() >= 1  # shape points move
    assert (moved == 0).sum() >= 8  # background points stay put without pan


def test_camera_pan_moves_background():
    for index in range(3):
        panned = synthetic_clip(4, index, camera_pan=True)["flow"]
        static = synthetic_clip(4, index, camera_pan=False)["flow"]
        assert (panned.norm(dim=0) > 0.1).float().mean() > 0.99  # every surface moves
        still = static.norm(dim=0) == 0
        assert still.float().mean() > 0.4  # the uncovered background does not move
        assert (static.norm(dim=0) > 0).any()  # but the shapes do


def test_config_validation_and_overrides():
    with pytest.raises(ValueError):
        SyntheticConfig(num_shapes=(3, 1))
    with pytest.raises(TypeError):
        synthetic_clip(0, 0, not_a_field=1)
    none = synthetic_clip(0, 0, num_shapes=(0, 0), camera_pan=False, noise_std=0.0)
    assert torch.equal(none["flow"], torch.zeros_like(none["flow"]))
    assert torch.equal(none["video"][:, 0], none["video"][:, -1])


def test_dataset_len_items_and_loader():
    ds = SyntheticVideoDataset(5, num_frames=5, height=32, width=32, seed=3)
    assert len(ds) == 5 and ds.num_classes == len(SHAPE_KINDS)
    assert torch.equal(ds[2]["video"], synthetic_clip(3, 2, ds.config)["video"])
    with pytest.raises(IndexError):
        ds[5]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["video"].shape == (2, 3, 5, 32, 32) and batch["label"].shape == (2,)


def test_generation_is_fast():
    synthetic_clip(0, 0)
    start = time.perf_counter()
    for index in range(20):
        synthetic_clip(0, index)
    per_clip = (time.perf_counter() - start) / 20
    assert per_clip < 0.04, f"{per_clip * 1e3:.1f} ms per 17x64x64 clip"


def test_proving_ground_preset_is_smooth_flat_and_deterministic():
    """No texture, stripes or noise: the background varies slowly and each shape is flat."""
    a, b = synthetic_clip(3, 5, PROVING), synthetic_clip(3, 5, PROVING)
    for key in ("video", "flow", "tracks", "visible"):
        assert torch.equal(a[key], b[key]), key
    textured = synthetic_clip(3, 5)
    assert a["label"] == textured["label"]  # same scene, other rendering
    clean = synthetic_clip(3, 5, PROVING, num_shapes=(0, 0))["video"]  # background only
    assert clean.diff(dim=-1).abs().max() < 0.1  # low-frequency gradient, no pixel noise
    noisy = synthetic_clip(3, 5, num_shapes=(0, 0))["video"]
    assert noisy.diff(dim=-1).abs().max() > 0.1  # the textured preset is not
    one = synthetic_clip(3, 5, PROVING, camera_pan=False, num_shapes=(1, 1))
    on_shape = one["flow"].norm(dim=0)[0] > 0  # frame 0: only the shape moves without pan
    colours = one["video"][:, 0][:, on_shape]  # (3, P) pixels of the shape
    assert on_shape.sum() > 20
    flat = (colours - colours.median(dim=1, keepdim=True).values).abs().amax(dim=0) < 0.01
    assert flat.float().mean() > 0.7  # one flat colour but on the anti-aliased edge pixels


def test_preset_fields_and_errors():
    assert PROVING.texture is False and PROVING.stripes is False and PROVING.noise_std == 0
    assert PROVING.radius_range[0] >= 0.15  # shapes large against a 16 x 16 latent cell
    assert preset_config("proving_ground", camera_pan=False).camera_pan is False
    assert SyntheticVideoDataset(2).config == PROVING  # the library's default content
    assert SyntheticVideoDataset(2, preset="textured").config == SyntheticConfig()
    ds = SyntheticVideoDataset(2, num_shapes=[2, 2], speed_range=[0.0, 0.0])
    assert ds.config.num_shapes == (2, 2) and ds.config.speed_range == (0.0, 0.0)
    with pytest.raises(ValueError, match="proving_ground"):
        preset_config("nope")
    with pytest.raises(ValueError, match="speed_range"):
        SyntheticConfig(speed_range=(0.05, 0.01))
    with pytest.raises(ValueError, match="radius_range"):
        SyntheticConfig(radius_range=(-0.1, 0.2))
