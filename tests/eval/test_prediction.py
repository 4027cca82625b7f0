"""The prediction test (paper Figure 6): one scorer for the demo and ``pvvae eval latents``."""

from __future__ import annotations

import pytest
import torch

from pvvae.data.synthetic import SyntheticVideoDataset
from pvvae.eval.adapters import PVVAEAdapter
from pvvae.eval.metrics.psnr_ssim import video_psnr
from pvvae.eval.motion import blurred_copy_last_psnr, copy_last, object_errors, slice_objects
from pvvae.eval.prediction import prediction_test
from pvvae.eval.vae_adapter import PredictionNotSupported, VAEAdapter
from tests.conftest import make_micro_vae


def _clips(n: int = 5, frames: int = 9) -> tuple[torch.Tensor, list[dict]]:
    data = SyntheticVideoDataset(n, num_frames=frames, height=32, width=32, seed=3)
    return torch.stack([data[i]["video"] for i in range(n)]), [data.objects(i) for i in range(n)]


def test_prediction_test_scores_the_prediction_and_both_copy_last_baselines():
    """Batched over uneven batches (5 clips by 2), the pooled scores equal a direct pass."""
    vae = make_micro_vae()
    x, objects = _clips()
    summary, out = prediction_test(PVVAEAdapter(vae, source="micro"), x, objects, batch=2)
    n_obs = summary["observed_frames"]
    assert out.shape == x.shape and (n_obs, summary["num_clips"]) == (5, 5)
    with torch.no_grad():
        direct = vae.predict(x[:, :, :n_obs], x.shape[2] - n_obs).clamp(-1, 1)
    truth = x[:, :, n_obs:]
    assert summary["psnr"] == pytest.approx(video_psnr(direct[:, :, n_obs:], truth).mean().item(),
                                            rel=1e-5)
    still = copy_last(x, n_obs)
    assert summary["baseline_psnr"] == pytest.approx(video_psnr(still, truth).mean().item())
    assert summary["blur_baseline_psnr"] == pytest.approx(blurred_copy_last_psnr(x, n_obs)["psnr"])
    shapes = slice_objects(objects, n_obs)
    assert summary["copy_last_object_position"] == pytest.approx(
        object_errors(still, shapes)["position"], rel=1e-5)
    assert summary["pred_object_position"] == pytest.approx(
        object_errors(out[:, :, n_obs:], shapes)["position"], rel=1e-5)


def test_prediction_test_without_shapes_or_prediction():
    x, _ = _clips(2)
    summary, _ = prediction_test(PVVAEAdapter(make_micro_vae(), source="micro"), x)
    assert "pred_object_position" not in summary and summary["num_clips"] == 2
    plain = VAEAdapter(make_micro_vae(), name="Other", source="other", temporal_compression=4,
                       spatial_compression=16, latent_channels=8)
    with pytest.raises(PredictionNotSupported, match="no predictive decoder"):
        prediction_test(plain, x)
