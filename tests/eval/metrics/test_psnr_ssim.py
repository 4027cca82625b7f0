"""PSNR / SSIM against scikit-image on real frames, and the reference regression values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d, uniform_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pvvae.eval.metrics.psnr_ssim import (
    compute_psnr,
    compute_ssim,
    gaussian_window,
    psnr_frames,
    ssim_frames,
    video_psnr,
    video_ssim,
)

from .conftest import frames_to_video


def _noisy(frames: np.ndarray, std: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = frames.astype(np.float64) + rng.normal(0.0, std, frames.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _blurred(frames: np.ndarray, size: int) -> np.ndarray:
    blurred = uniform_filter(frames.astype(np.float64), size=(1, size, size, 1))
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def _skimage_scores(ref: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame PSNR and SSIM of scikit-image, frames (T, H, W, 3) uint8 scaled to [0, 1]."""
    a, b = ref.astype(np.float64) / 255.0, dist.astype(np.float64) / 255.0
    psnr = [peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(a, b)]
    ssim = [
        structural_similarity(
            x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=1.0, channel_axis=-1,
        )
        for x, y in zip(a, b)
    ]
    return np.array(psnr), np.array(ssim)


def _real_pairs(clip_frames):
    bunny = clip_frames("bigbuckbunny.mp4", 3, start=40)[:, 200:456, 400:656]  # 256x256 crop
    bikes = clip_frames("bikes.mp4", 3, start=100)
    carphone = clip_frames("carphone_pristine.mp4", 4, start=10)
    carphone_codec = clip_frames("carphone_distorted.mp4", 4, start=10)  # real codec damage
    return {
        "bunny_noise": (bunny, _noisy(bunny, 12.0, seed=0)),
        "bunny_blur": (bunny, _blurred(bunny, 5)),
        "bikes_noise": (bikes, _noisy(bikes, 15.0, seed=1)),
        "carphone_codec": (carphone, carphone_codec),
    }


def test_matches_skimage_on_real_frames(clip_frames):
    for name, (ref, dist) in _real_pairs(clip_frames).items():
        sk_psnr, sk_ssim = _skimage_scores(ref, dist)
        x, y = frames_to_video(dist), frames_to_video(ref)  # (1, 3, T, H, W) in [-1, 1]
        frames_x = (x[0].permute(1, 0, 2, 3) + 1) / 2  # (T, 3, H, W) in [0, 1]
        frames_y = (y[0].permute(1, 0, 2, 3) + 1) / 2
        np.testing.assert_allclose(psnr_frames(frames_x, frames_y).numpy(), sk_psnr, atol=1e-4)
        np.testing.assert_allclose(ssim_frames(frames_x, frames_y).numpy(), sk_ssim, atol=1e-4)
        assert video_psnr(x, y).item() == pytest.approx(sk_psnr.mean(), abs=1e-4), name
        assert video_ssim(x, y).item() == pytest.approx(sk_ssim.mean(), abs=1e-4), name
        assert 0.1 < sk_ssim.mean() < 0.99, f"{name}: distortion should be visible to SSIM"


def test_video_average_is_mean_over_all_frames(clip_frames):
    ref = clip_frames("carphone_pristine.mp4", 6)
    dist = clip_frames("carphone_distorted.mp4", 6)
    x = torch.cat([frames_to_video(dist[:3]), frames_to_video(dist[3:])])  # (2, 3, 3, H, W)
    y = torch.cat([frames_to_video(ref[:3]), frames_to_video(ref[3:])])
    sk_psnr, sk_ssim = _skimage_scores(ref, dist)
    np.testing.assert_allclose(video_psnr(x, y).numpy(), sk_psnr.reshape(2, 3).mean(1), atol=1e-4)
    np.testing.assert_allclose(video_ssim(x, y).numpy(), sk_ssim.reshape(2, 3).mean(1), atol=1e-4)
    assert compute_psnr(x, y) == pytest.approx(sk_psnr.mean(), abs=1e-4)
    assert compute_ssim(x, y) == pytest.approx(sk_ssim.mean(), abs=1e-4)


def test_regression_values_zeros_vs_ones():
    """``common_metrics_on_video_quality``: all-zeros vs all-ones gives PSNR 0, SSIM 9.999e-05."""
    zeros = -torch.ones(2, 3, 4, 32, 32)  # [0, 1]-zeros in the library's [-1, 1] convention
    ones = torch.ones(2, 3, 4, 32, 32)
    assert compute_psnr(zeros, ones) == pytest.approx(0.0, abs=1e-12)
    assert compute_ssim(zeros, ones) == pytest.approx(9.999e-05, abs=1e-8)


def test_identical_frames_give_psnr_100_and_ssim_1():
    x = torch.rand(1, 3, 2, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.all(video_psnr(x, x) == 100.0)
    assert video_ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)


def test_inputs_are_clamped_to_pixel_range():
    x = torch.zeros(1, 3, 1, 16, 16)
    assert compute_psnr(x * 0 + 3.0, x + 1.0) == 100.0  # 3.0 overshoots and clamps to 1.0


def test_gaussian_window_taps():
    w = gaussian_window()
    assert w.shape == (11,) and w.sum().item() == pytest.approx(1.0)
    delta = np.zeros(11)
    delta[5] = 1.0
    # the truncated kernel scikit-image applies (scipy's gaussian_filter, truncate=3.5)
    expected = gaussian_filter1d(delta, sigma=1.5, truncate=3.5)
    np.testing.assert_allclose(w.numpy(), expected, atol=1e-12)


def test_rejects_small_or_mismatched_inputs():
    with pytest.raises(ValueError):
        ssim_frames(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError):
        video_psnr(torch.zeros(1, 3, 2, 16, 16), torch.zeros(1, 3, 3, 16, 16))
