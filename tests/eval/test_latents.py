"""Latent diagnostics: LTD, channel statistics, PCA, prediction split and the report folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pvvae.eval.adapters import PVVAEAdapter, load_vae
from pvvae.eval.clips import ground_truth_flow, open_eval_data
from pvvae.eval.latent_math import (
    ChannelStats,
    group_end_frames,
    latent_temporal_distance,
    pca_project,
    pca_rgb,
)
from pvvae.eval.latents import LatentsConfig, analyze_latents, write_latent_stats
from pvvae.eval.motion import observed_frames
from pvvae.eval.vae_adapter import VAEAdapter
from tests.conftest import make_micro_vae, random_video


def test_ltd_of_equal_latent_frames_is_exactly_zero():
    frame = torch.randn(2, 6, 1, 3, 4)
    ltd = latent_temporal_distance(frame.expand(-1, -1, 5, -1, -1))
    assert ltd.shape == (2, 4) and torch.equal(ltd, torch.zeros(2, 4, dtype=torch.float64))


def test_ltd_matches_the_definition_loop():
    """LTD_d = mean over pairs (i, i + d) and positions of the channel L2 norm."""
    z = torch.randn(2, 3, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    ltd = latent_temporal_distance(z)
    for b in range(2):
        for d in range(1, 4):
            norms = [
                float(torch.linalg.vector_norm(z[b, :, i + d, y, x] - z[b, :, i, y, x]))
                for i in range(4 - d)
                for y in range(2)
                for x in range(2)
            ]
            assert ltd[b, d - 1].item() == pytest.approx(np.mean(norms), rel=1e-6)


def test_ltd_of_a_linear_latent_trajectory_grows_linearly():
    """z_i = a + i v gives LTD_d = d |v|: the normalised curve is 1, 2, 3."""
    v = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1, 1)
    z = torch.arange(4.0).view(1, 1, 4, 1, 1) * v  # (1, 2, 4, 1, 1)
    torch.testing.assert_close(
        latent_temporal_distance(z)[0], torch.tensor([5.0, 10.0, 15.0], dtype=torch.float64)
    )


def test_static_clip_has_zero_ltd_for_pv_vae():
    """PV-VAE pads time by repeating the first frame and its layers are causal, so a static
    clip encodes to identical latent frames (the first included), up to float rounding."""
    adapter = PVVAEAdapter(make_micro_vae(), source="micro")
    frame = random_video(1, 1, 32, 32)
    z = adapter.encode(frame.expand(-1, -1, 17, -1, -1))
    ltd = latent_temporal_distance(z)
    assert ltd.shape == (1, 4)
    assert ltd.max() < 1e-5 * z.norm(dim=1).mean()
    # while a moving clip does not
    assert latent_temporal_distance(adapter.encode(random_video(1, 17, 32, 32))).min() > 1e-3


def test_channel_stats_match_a_direct_computation():
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(b, 3, 2, 4, 4, generator=gen) * 5 + 100 for b in (1, 3, 2)]
    stats = ChannelStats(3)
    for z in batches:
        stats.update(z)
    flat = torch.cat([z.transpose(0, 1).reshape(3, -1) for z in batches], dim=1).double()
    torch.testing.assert_close(stats.mean, flat.mean(dim=1))
    torch.testing.assert_close(stats.std, flat.std(dim=1, unbiased=False))
    assert stats.count == flat.shape[1]


def test_pca_projection_recovers_the_principal_axes():
    """Points along known orthogonal axes with decreasing spread: variance ratios and the
    projection on the first axis are recovered."""
    gen = torch.Generator().manual_seed(0)
    axes = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))[0]
    coeffs = torch.randn(2000, 5, generator=gen, dtype=torch.float64) * torch.tensor(
        [10.0, 5.0, 2.0, 0.1, 0.1], dtype=torch.float64
    )
    x = coeffs @ axes.T
    projection, ratio = pca_project(x, 3)
    expected = torch.linalg.eigvalsh(torch.cov(x.T, correction=0)).flip(0)
    torch.testing.assert_close(ratio, expected[:3] / expected.sum())
    first = (x - x.mean(0)) @ axes[:, 0]
    assert abs(torch.corrcoef(torch.stack([projection[:, 0], first]))[0, 1]) > 0.999


def test_pca_rgb_shape_and_range():
    z = torch.randn(8, 3, 4, 5)
    rgb, ratio = pca_rgb(z)
    assert rgb.shape == (3, 4, 5, 3) and ratio.shape == (3,)
    assert rgb.min() >= 0 and rgb.max() <= 1
    # every component spans the full [0, 1] range over the clip (min-max per component)
    flat = rgb.reshape(-1, 3)
    torch.testing.assert_close(flat.min(0).values, torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(flat.max(0).values, torch.ones(3, dtype=torch.float64))
    # fewer than 3 channels: missing components are constant 0.5
    rgb2, _ = pca_rgb(torch.randn(2, 2, 3, 3))
    assert torch.all(rgb2[..., 2] == 0.5)


def test_prediction_split_and_group_frames():
    assert observed_frames(17, 4) == 9  # observe groups 0-2, predict groups 3-4
    assert observed_frames(9, 4) == 5
    assert observed_frames(5, 4) == 1
    assert observed_frames(17, 8) == 9
    assert group_end_frames(5, 17, 4) == [0, 4, 8, 12, 16]
    assert group_end_frames(3, 7, 4) == [0, 4, 6]


def _micro_adapter(**kwargs) -> PVVAEAdapter:
    return PVVAEAdapter(make_micro_vae(), source="micro", **kwargs)


class _NoPrediction(VAEAdapter):
    """The micro PV-VAE seen as a VAE without prediction (like the diffusers VAEs)."""

    kind = "other"

    def __init__(self) -> None:
        vae = make_micro_vae()
        super().__init__(
            vae,
            name="Other",
            source="other",
            temporal_compression=4,
            spatial_compression=16,
            latent_channels=8,
        )


def test_analyze_latents_writes_the_report(tmp_path):
    data = open_eval_data("synthetic", 9, 32, 3)
    config = LatentsConfig(
        resolution=32,
        num_frames=9,
        num_clips=3,
        batch_size=2,
        pca_clips=2,
        pred_clips=3,
        grid_clips=1,
    )
    summary = analyze_latents(_micro_adapter(), data, tmp_path, config, progress=False)
    for name in (
        "summary.json",
        "latent_stats.json",
        "ltd.json",
        "prediction.json",
        "report.md",
        "ltd_hist.png",
        "ltd_curve.png",
        "pca.png",
        "prediction_grid.png",
        "prediction_psnr.png",
    ):
        assert (tmp_path / name).is_file(), name
    assert len(summary["stats"]["latents_mean"]) == 8
    assert summary["ltd"]["intervals"] == [1, 2]
    assert summary["ltd"]["normalized_mean"][0] == pytest.approx(1.0)
    assert len(summary["ltd"]["adjacent_per_clip"]) == 3
    pred = summary["prediction"]
    assert (pred["observed_frames"], pred["predicted_frames"], pred["num_clips"]) == (5, 4, 3)
    assert len(pred["frame_psnr"]) == 4
    # the copy-last baseline is recomputed here from the clips themselves
    from pvvae.eval.metrics.psnr_ssim import video_psnr

    clips = torch.stack([data.dataset[i]["video"] for i in range(3)])
    copy = clips[:, :, 4:5].expand(-1, -1, 4, -1, -1)
    assert pred["baseline_psnr"] == pytest.approx(video_psnr(copy, clips[:, :, 5:]).mean().item())
    from pvvae.eval.motion import blurred_copy_last_psnr, copy_last, object_errors, slice_objects

    assert pred["blur_baseline_psnr"] == pytest.approx(blurred_copy_last_psnr(clips, 5)["psnr"])
    assert pred["blur_baseline_psnr"] >= pred["baseline_psnr"]
    shapes = slice_objects([data.dataset.objects(i) for i in range(3)], 5)
    still = object_errors(copy_last(clips, 5), shapes)
    assert pred["copy_last_object_position"] == pytest.approx(still["position"], rel=1e-5)
    assert pred["pred_object_position"] is not None
    report = (tmp_path / "report.md").read_text()
    assert "![pca](pca.png)" in report and "copy last observed frame" in report
    # latent statistics over all (clip, t, h, w) positions, checked against a direct pass
    z = _micro_adapter().encode(clips)
    expected = z.transpose(0, 1).reshape(8, -1).double()
    np.testing.assert_allclose(
        summary["stats"]["latents_std"], expected.std(dim=1, unbiased=False).numpy(), rtol=1e-5
    )


def test_synthetic_clips_get_their_ground_truth_flow_for_figure_4():
    from pvvae.data.synthetic import preset_config, synthetic_clip
    data = open_eval_data("synthetic:3", 5, 32, 2)
    flows = ground_truth_flow(data, [1])
    config = preset_config("proving_ground", num_frames=5, height=32, width=32)  # the default
    want = synthetic_clip(3, 1, config)["flow"]
    assert list(flows) == [1] and torch.equal(flows[1], want)


def test_analyze_latents_skips_prediction_without_support(tmp_path):
    data = open_eval_data("synthetic", 9, 32, 2)
    config = LatentsConfig(resolution=32, num_frames=9, num_clips=2, pca_clips=1)
    summary = analyze_latents(_NoPrediction(), data, tmp_path, config, progress=False)
    assert summary["prediction"] is None
    assert "no predictive decoder" in summary["notes"][0]
    assert not (tmp_path / "prediction_grid.png").exists()
    assert "Skipped" in (tmp_path / "report.md").read_text()


def test_write_config_round_trip(tmp_path):
    """--write-config stores the stats in config.json; a reloaded model normalises with them."""
    make_micro_vae().save_pretrained(tmp_path / "model")
    adapter = load_vae(f"pvvae:{tmp_path / 'model'}")
    stats = {"latents_mean": [0.5] * 8, "latents_std": [2.0] * 8}
    assert write_latent_stats(adapter, stats) == tmp_path / "model"
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["latents_mean"] == [0.5] * 8 and config["latents_std"] == [2.0] * 8
    reloaded = load_vae(f"pvvae:{tmp_path / 'model'}")
    z = torch.ones(1, 8, 1, 1, 1)
    torch.testing.assert_close(reloaded.normalize(z), torch.full_like(z, 0.25))
    # a copy of the model in another folder
    write_latent_stats(adapter, stats, tmp_path / "copy")
    assert json.loads((tmp_path / "copy" / "config.json").read_text())["latents_std"] == [2.0] * 8
    with pytest.raises(ValueError, match="needs a PV-VAE"):
        write_latent_stats(_NoPrediction(), stats)
