"""Object-motion coherence (``pvvae.eval.coherence``) ranks controlled corruptions
(``pvvae.eval.corrupt``) of proving-ground clips by their motion: real clips move smoothly and
keep their shapes, shuffled and jittered ones accelerate, frozen ones stand still, blur does
little; and the real-real FVD floor (``fvd_noise_floor``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pvvae.data.synthetic import SyntheticVideoDataset
from pvvae.eval.coherence import clip_coherence, object_masks, video_coherence
from pvvae.eval.corrupt import blur, corruptions, jitter, repeat_first, reverse_time, shuffle_time
from pvvae.eval.metrics.fvd import fvd_from_features, fvd_noise_floor
from tests.eval.metrics.test_fvd import _PooledColour

BACKGROUND = (-0.4, -0.5, -0.6)  # dull
RED = (0.9, -0.7, -0.7)  # bright, saturated


@pytest.fixture(scope="module")
def real():
    data = SyntheticVideoDataset(8, 17, 64, 64, seed=50_000, annotations=False)
    return torch.stack([data[i]["video"] for i in range(len(data))])


@pytest.fixture(scope="module")
def scores(real):
    sets = {"real": real, **corruptions(real, 0)}
    return {k: video_coherence(v) for k, v in sets.items()}


def _disc_clip(centres, radius=6.0, size=64, colour=RED):
    """A red disc on a flat dull background at each (x, y) of ``centres`` (None: no disc).
    -> (3, T, size, size) in [-1, 1]."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    frames = torch.tensor(BACKGROUND).view(3, 1, 1, 1).repeat(1, len(centres), size, size)
    for t, c in enumerate(centres):
        if c is not None:
            inside = (xs - c[0]) ** 2 + (ys - c[1]) ** 2 <= radius**2
            frames[:, t, inside] = torch.tensor(colour)[:, None]
    return frames


def test_real_clips_move_smoothly_and_keep_their_shapes(real, scores):
    s = scores["real"]
    assert s["clips"] == 8 and s["speed"] > 1.0  # they move
    assert s["acceleration"] < 0.8 and s["persistence"] > 0.9
    assert 0.05 < s["foreground"] < 0.5 and 1.0 <= s["objects"] <= 3.5


def test_objects_follow_the_true_shapes(real):
    data = SyntheticVideoDataset(8, 17, 64, 64, seed=50_000, annotations=False)
    found = [len(object_masks(x)) for x in real]
    true = [len(data.objects(i)["colours"]) for i in range(len(data))]
    assert sum(f == t for f, t in zip(found, true)) >= 5, (found, true)


def test_shuffle_and_jitter_accelerate(scores):
    real = scores["real"]["acceleration"]
    assert scores["jitter"]["acceleration"] > max(4 * real, 2.0)
    assert scores["shuffle"]["acceleration"] > max(2 * scores["jitter"]["acceleration"], 5.0)
    for name in ("jitter", "shuffle"):  # the content is unchanged: mass and colours stay
        assert scores[name]["persistence"] > 0.9
        assert scores[name]["bounce"] < scores["real"]["bounce"]


def test_frozen_clip_stands_still_and_reversal_is_time_symmetric(scores):
    assert scores["static"]["speed"] == 0.0 and scores["static"]["acceleration"] == 0.0
    assert scores["static"]["persistence"] == 1.0 and math.isnan(scores["static"]["bounce"])
    for k in ("speed", "acceleration", "persistence", "objects"):
        assert scores["reverse"][k] == pytest.approx(scores["real"][k])


def test_blur_changes_acceleration_little(scores):
    real, jittered = scores["real"]["acceleration"], scores["jitter"]["acceleration"]
    for name in ("blur_1.5", "blur_3"):
        assert abs(scores[name]["acceleration"] - real) < 0.15 * (jittered - real)
        assert scores[name]["speed"] == pytest.approx(scores["real"]["speed"], rel=0.1)
    assert scores["blur_4"]["foreground"] < scores["blur_1.5"]["foreground"]


def test_constant_velocity_disc_is_measured_exactly():
    s = clip_coherence(_disc_clip([(10 + 3 * t, 20 + 4 * t) for t in range(9)]))
    assert s["speed"] == pytest.approx(5.0, abs=1e-4) and s["acceleration"] == pytest.approx(0)
    assert s["objects"] == 1 and s["persistence"] == 1.0 and math.isnan(s["bounce"])


def test_a_bounce_off_the_wall_is_plausible_a_jump_in_the_open_is_not():
    bounce = [(40 + 4 * t, 30) if t <= 4 else (56 - 4 * (t - 4), 30) for t in range(9)]
    s = clip_coherence(_disc_clip(bounce))  # touches the right border (x = 56 + 6) at t = 4
    assert s["bounce"] == 1.0
    jump = [(20 + 2 * t, 30) if t != 4 else (20 + 2 * t, 40) for t in range(9)]
    assert clip_coherence(_disc_clip(jump))["bounce"] == 0.0


def test_flicker_lowers_persistence():
    flicker = [(20 + 2 * t, 30) if t % 2 == 0 else None for t in range(9)]
    assert clip_coherence(_disc_clip(flicker))["persistence"] == pytest.approx(5 / 9)
    shrink = clip_coherence(torch.cat([_disc_clip([(30, 30)] * 5, radius=8.0),
                                       _disc_clip([(30, 30)] * 4, radius=3.0)], dim=1))
    assert shrink["persistence"] == pytest.approx(5 / 9)


def test_no_foreground_gives_no_objects():
    s = clip_coherence(_disc_clip([None] * 5))
    assert s["objects"] == 0 and s["foreground"] == 0 and math.isnan(s["acceleration"])


def test_corruptions_are_deterministic_and_keep_the_content(real):
    x = real[:2]
    a, b = corruptions(x, 3), corruptions(x, 3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["shuffle"], corruptions(x, 4)["shuffle"])
    g = torch.Generator().manual_seed(0)
    shuffled = shuffle_time(x, g)  # the same frames in another order
    assert torch.equal(shuffled.sort(dim=2).values, x.sort(dim=2).values)
    assert not torch.equal(shuffled, x)
    assert torch.equal(reverse_time(reverse_time(x)), x)
    assert torch.equal(repeat_first(x)[:, :, -1], x[:, :, 0])
    shifted = jitter(x, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and not torch.equal(shifted, x)
    centre = (slice(None), slice(None), slice(None), slice(2, -2), slice(2, -2))
    errors = [(shifted[centre] - x.roll((dy, dx), dims=(3, 4))[centre]).abs().amax(dim=(1, 3, 4))
              for dy in range(-2, 3) for dx in range(-2, 3)]
    assert torch.stack(errors).amin(dim=0).max() < 1e-6  # every frame: one shift of <= 2 px
    assert blur(x, 1.5).shape == x.shape and blur(x, 1.5).abs().max() <= 1


def test_noise_floor_on_small_feature_sets():
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((40, 6))
    floor = fvd_noise_floor(pool, 20, resamples=5, seed=1)
    assert math.isfinite(floor["fvd"]) and floor["fvd"] >= 0 and floor["std"] >= 0
    assert len(floor["values"]) == 5 and floor == fvd_noise_floor(pool, 20, resamples=5, seed=1)
    shifted = fvd_from_features(pool[:20], pool[20:] + 2.0)  # a real difference is above it
    assert shifted > floor["fvd"] + 3 * floor["std"]
    with pytest.raises(ValueError, match="noise floor"):
        fvd_noise_floor(pool, 21)


def test_noise_floor_through_the_feature_path():
    """Real clips -> ``video_features`` (the study's first 16 frames) -> floor, with a cheap
    stand-in for the I3D (same call signature)."""
    from pvvae.gen.evaluate import real_clip_batches, video_features

    batches = real_clip_batches("synthetic", 8, num_frames=16, size=32, seed=50_000,
                                batch_size=4)
    features, _ = video_features(batches, _PooledColour(), None, 16)
    floor = fvd_noise_floor(features, 4, resamples=3)
    assert features.shape == (8, 16) and math.isfinite(floor["fvd"]) and floor["fvd"] >= 0


def test_gen_eval_reports_the_floor_and_the_coherence(real, tmp_path):
    """``compute_generation_metrics`` with a stand-in I3D: the floor over twice the real
    clips, the coherence of both sets, and the motion table of ``gen_metrics.md``."""
    from pvvae.gen.evaluate import compute_generation_metrics
    from pvvae.gen.metrics_table import read_results, write_results

    fake = shuffle_time(real[:4], torch.Generator().manual_seed(0))
    m = compute_generation_metrics([fake[:2], fake[2:]], [real[:4], real[4:]], _PooledColour(),
                                   floor_resamples=3, method="shuffled")
    assert m.num_fake == m.num_real == 4 and m.fvd_floor >= 0 and m.fvd_floor_std >= 0
    assert m.coherence["clips"] == 4 and m.real_coherence["clips"] == 8
    assert m.coherence["acceleration"] > 5 * m.real_coherence["acceleration"]
    json_path, md_path = write_results([m], tmp_path)
    assert f"{m.fvd_floor:.2f} ± {m.fvd_floor_std:.2f}" in md_path.read_text()
    assert read_results([json_path])[0].coherence == m.coherence
    with pytest.raises(ValueError, match="noise floor"):  # the floor needs 2x the real clips
        compute_generation_metrics([fake], [real[:6]], _PooledColour(), floor_resamples=2)


def test_run_evaluation_draws_twice_the_real_clips_for_the_floor(real, tmp_path, monkeypatch):
    from pvvae.data.video_io import write_video
    from pvvae.gen.evaluate import run_evaluation

    for i in range(3):
        write_video(tmp_path / "fake" / f"sample_{i:05d}.mp4", real[i])
    monkeypatch.setattr("pvvae.eval.metrics.i3d.load_i3d", lambda device: _PooledColour())
    m = run_evaluation(tmp_path / "out", real="synthetic", fake_dir=tmp_path / "fake", num=3,
                       device="cpu", noise_floor=2)
    assert (m.num_fake, m.num_real, m.real_coherence["clips"]) == (3, 3, 6)
    assert m.fvd_floor >= 0 and m.coherence["clips"] == 3 and m.coherence["objects"] >= 1
    assert "real-real floor" in (tmp_path / "out" / "gen_metrics.md").read_text()


def test_acceleration_profile_finds_jumps_at_latent_group_ends():
    """A disc moving at constant speed has no acceleration anywhere; one that stands still
    within each 4-frame latent group and jumps between groups (frames 1-4, 5-8, ...) peaks at
    the frames that end a group; ``boundary_ratio`` is the ratio of the two medians."""
    from pvvae.eval.coherence import acceleration_profile, boundary_ratio

    smooth = _disc_clip([(10 + 2 * t, 30) for t in range(17)])
    steps = _disc_clip([(10 + 8 * ((t + 3) // 4), 30) for t in range(17)])
    flat = acceleration_profile(smooth[None])
    assert flat.isnan()[[0, -1]].all() and flat[1:-1].abs().max() < 1e-6
    jumps = acceleration_profile(steps[None])
    assert (jumps[[4, 8, 12]] > 7).all() and jumps[[2, 6, 10, 14]].max() < 1e-6
    assert boundary_ratio(jumps) == math.inf  # still elsewhere, jumps at the ends
    assert math.isnan(boundary_ratio(flat))  # no motion to compare


def test_acceleration_profile_tracks_the_reference_colours():
    """With ``reference``, a reconstruction is tracked with the real clip's object colours:
    a disc whose colour drifts away from the real one is not found at all."""
    from pvvae.eval.coherence import acceleration_profile

    real = _disc_clip([(10 + 2 * t, 30) for t in range(17)])
    drifted = _disc_clip([(10 + 2 * t, 30) for t in range(17)], colour=(-0.7, 0.9, -0.7))
    assert acceleration_profile(drifted[None])[1:-1].abs().max() < 1e-6  # own colours: fine
    assert acceleration_profile(drifted[None], real[None])[1:-1].isnan().all()  # not found
