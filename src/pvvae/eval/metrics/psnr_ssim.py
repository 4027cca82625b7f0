"""PSNR and SSIM of reconstructed videos, per frame, averaged over frames and videos.

Convention of the common video-VAE evaluation code (Open-Sora-Plan ``opensora/eval``,
``common_metrics_on_video_quality``), used for the reconstruction table of the paper (Table 2):

- pixels are mapped from the library's [-1, 1] to [0, 1] (and clamped there);
- every frame is scored on its own, then frame scores are averaged per video, and the
  reported number is the mean over all frames of all videos;
- PSNR: ``mse = mean_{C,H,W} (a - b)^2``, ``psnr = 20 log10(1 / sqrt(mse))``, and 100 when
  ``mse < 1e-10``;
- SSIM (Wang et al. 2004): per channel, float64, Gaussian window 11x11 with sigma 1.5, valid
  region only (5 px cropped on each side), ``C1 = 0.01^2``, ``C2 = 0.03^2`` (data range 1),
  mean of the SSIM map, then mean over the 3 channels. This equals scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1)``.

Regression values of the reference code for all-zeros vs all-ones videos ([0, 1] range):
PSNR 0 and SSIM ``C1 / (1 + C1) = 9.999e-05``.
"""

from __future__ import annotations

import torch
from einops import rearrange

PSNR_MAX = 100.0  # value used by the reference code for (near-)identical frames
PSNR_MSE_FLOOR = 1e-10
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Map pixels from the library's [-1, 1] convention to [0, 1], clamping overshoot.

    Args:
        x: tensor of any shape with values nominally in [-1, 1].

    Returns:
        Tensor of the same shape in [0, 1].
    """
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def psnr_frames(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR of each frame, for frames in [0, 1].

    Args:
        a, b: (B, C, H, W) frames in [0, 1].

    Returns:
        (B,) float64 PSNR in dB: ``20 log10(1 / sqrt(mse))``, or 100 where ``mse < 1e-10``.
    """
    _check_same_shape(a, b, ndim=4)
    mse = (a.double() - b.double()).pow(2).mean(dim=(1, 2, 3))  # (B,)
    psnr = 20.0 * torch.log10(1.0 / torch.sqrt(mse))
    return torch.where(mse < PSNR_MSE_FLOOR, torch.full_like(mse, PSNR_MAX), psnr)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1D Gaussian window ``exp(-x^2 / (2 sigma^2))`` for x in [-size//2, size//2].

    Returns:
        (size,) float64 tensor summing to 1 (same taps as ``cv2.getGaussianKernel(11, 1.5)``).
    """
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    w = torch.exp(-(x**2) / (2.0 * sigma**2))
    return w / w.sum()


def _correlate_valid(x: torch.Tensor, window: torch.Tensor, dim: int) -> torch.Tensor:
    """Valid 1D correlation of ``x`` with ``window`` along ``dim``, as a sum of shifted slices
    (float64 convolutions are slow on CPU; this is exact and fast)."""
    length = x.shape[dim] - window.numel() + 1
    out = torch.zeros_like(x.narrow(dim, 0, length))
    for offset, weight in enumerate(window.tolist()):
        out.add_(x.narrow(dim, offset, length), alpha=weight)
    return out


def _filter_valid(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 2D filtering of every channel with ``window``, valid region only.

    Args:
        x: (..., H, W) float64.
        window: (K,) float64.

    Returns:
        (..., H - K + 1, W - K + 1).
    """
    x = _correlate_valid(x, window, dim=-2)  # (..., H - K + 1, W)
    return _correlate_valid(x, window, dim=-1)  # (..., H - K + 1, W - K + 1)


def ssim_frames(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of each frame, for frames in [0, 1] (Wang et al. 2004, Gaussian-window form).

    Args:
        a, b: (B, C, H, W) frames in [0, 1], H and W at least 11.

    Returns:
        (B,) float64 SSIM: per-channel mean of the valid-region SSIM map, averaged over channels.
    """
    _check_same_shape(a, b, ndim=4)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW} px a side, got {a.shape}")
    a, b = a.double(), b.double()
    moments = torch.stack([a, b, a * a, b * b, a * b])  # (5, B, C, H, W)
    mu_a, mu_b, aa, bb, ab = _filter_valid(moments, gaussian_window().to(a.device))
    var_a, var_b, cov_ab = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    numerator = (2.0 * mu_a * mu_b + SSIM_C1) * (2.0 * cov_ab + SSIM_C2)
    denominator = (mu_a**2 + mu_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2)
    ssim_map = numerator / denominator  # (B, C, H - 10, W - 10)
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)  # (B,)


def _per_video(frame_metric, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Apply a per-frame metric to videos in [-1, 1] and average it over frames.

    Args:
        frame_metric: function (B, C, H, W) x2 in [0, 1] -> (B,).
        x, y: (N, C, T, H, W) videos in [-1, 1].

    Returns:
        (N,) float64 mean over the T frames of each video.
    """
    _check_same_shape(x, y, ndim=5)
    n = x.shape[0]
    frames_x = rearrange(to_unit_range(x), "n c t h w -> (n t) c h w")
    frames_y = rearrange(to_unit_range(y), "n c t h w -> (n t) c h w")
    scores = frame_metric(frames_x, frames_y)  # (N * T,)
    return rearrange(scores, "(n t) -> n t", n=n).mean(dim=1)  # (N,)


def video_psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-video PSNR: the mean of the per-frame PSNR (see module docstring).

    Args:
        x, y: (N, 3, T, H, W) videos in [-1, 1] (reconstruction and reference).

    Returns:
        (N,) float64 mean PSNR over the T frames of each video, in dB.
    """
    return _per_video(psnr_frames, x, y)


def video_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-video SSIM: the mean of the per-frame SSIM (see module docstring).

    Args:
        x, y: (N, 3, T, H, W) videos in [-1, 1], H and W at least 11.

    Returns:
        (N,) float64 mean SSIM over the T frames of each video.
    """
    return _per_video(ssim_frames, x, y)


def compute_psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR over a batch of videos: the mean over all frames of all videos.

    Args:
        x, y: (N, 3, T, H, W) videos in [-1, 1].

    Returns:
        Mean per-frame PSNR in dB (equal to the mean of :func:`video_psnr`, since every video
        has T frames).
    """
    return video_psnr(x, y).mean().item()


def compute_ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """SSIM over a batch of videos: the mean over all frames of all videos.

    Args:
        x, y: (N, 3, T, H, W) videos in [-1, 1].

    Returns:
        Mean per-frame SSIM.
    """
    return video_ssim(x, y).mean().item()


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, ndim: int) -> None:
    if a.shape != b.shape or a.ndim != ndim:
        raise ValueError(f"expected two {ndim}-D tensors of one shape, got {a.shape}, {b.shape}")
