"""Frechet Video Distance (Unterthiner et al. 2018) and Kernel Video Distance on the
time-averaged 400-d logits of the Kinetics-400 I3D (:mod:`pvvae.eval.metrics.i3d`).

FVD variant. The default follows StyleGAN-V (Skorokhodov et al. 2022), the code Latte and
hence the paper (section 4.1: 2048 clips of 16 frames) use:

- features: I3D logits averaged over time, frames resized to 224x224 without crop;
- statistics in float64 with the **biased** covariance (divide by N);
- ``FVD = |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 sqrtm(S_r S_g))`` with ``scipy.linalg.sqrtm``
  and the real part of the result.

``unbiased_covariance=True`` gives the original TF FVD's covariance (divide by N - 1). The two
differ by O(1/N): negligible at 2048 clips, visible on tiny sets.

KVD: unbiased estimator of the squared MMD with the polynomial kernel
``k(x, y) = (x.y / d + 1)^3`` (d = 400):
``(sum K_xx - tr K_xx) / (m (m - 1)) + (sum K_yy - tr K_yy) / (n (n - 1)) - 2 sum K_xy / (m n)``,
computed on the full sets (no subsets), without any rescaling.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.linalg
import torch

from pvvae.eval.metrics.i3d import I3D, i3d_logits, load_i3d

Videos = torch.Tensor | Iterable[torch.Tensor]
SQRTM_FALLBACK_EPS = 1e-6


def _as_float64(features: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    return np.asarray(features, dtype=np.float64)


def feature_statistics(
    features: torch.Tensor | np.ndarray, unbiased_covariance: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set in float64.

    Args:
        features: (N, D) features.
        unbiased_covariance: divide by N - 1 (original TF FVD) instead of N (StyleGAN-V).

    Returns:
        mu (D,) and sigma (D, D), float64 numpy arrays.
    """
    x = _as_float64(features)
    mu = x.mean(axis=0)
    centered = x - mu
    divisor = x.shape[0] - 1 if unbiased_covariance else x.shape[0]
    return mu, centered.T @ centered / divisor


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Frechet distance between two Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))``, in float64, with
    ``scipy.linalg.sqrtm`` and the real part of its result (StyleGAN-V / pytorch-fid). If the
    product is too singular for a finite square root, ``1e-6 I`` is added to both covariances
    (pytorch-fid's fallback).

    Args:
        mu1, mu2: (D,) means.
        sigma1, sigma2: (D, D) covariances.

    Returns:
        The distance (>= 0 up to round-off).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * SQRTM_FALLBACK_EPS
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean.real))


def fvd_from_features(
    real: torch.Tensor | np.ndarray,
    fake: torch.Tensor | np.ndarray,
    unbiased_covariance: bool = False,
) -> float:
    """FVD between two sets of I3D features (see the module docstring for the variant).

    Args:
        real, fake: (N, D) and (M, D) features, e.g. from :func:`i3d_logits`.
        unbiased_covariance: False (default) = StyleGAN-V/Latte; True = original TF FVD.

    Returns:
        The Frechet distance of the two fitted Gaussians.
    """
    mu_r, sigma_r = feature_statistics(real, unbiased_covariance)
    mu_f, sigma_f = feature_statistics(fake, unbiased_covariance)
    return frechet_distance(mu_r, sigma_r, mu_f, sigma_f)


def kvd_from_features(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Unbiased squared MMD with the kernel ``(x.y / d + 1)^3`` (see the module docstring).

    Args:
        x: (M, D) features of one set, M >= 2.
        y: (N, D) features of the other set, N >= 2.

    Returns:
        The MMD^2 estimate in float64 (can be slightly negative for matching sets).
    """
    x, y = _as_float64(x), _as_float64(y)
    m, n, d = x.shape[0], y.shape[0], x.shape[1]
    if m < 2 or n < 2:
        raise ValueError("KVD needs at least 2 samples in each set")
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.sum() / (m * n))


def _features(
    real: Videos, fake: Videos, model: I3D | None, batch_size: int, device
) -> tuple[torch.Tensor, torch.Tensor]:
    if model is None:
        model = load_i3d(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return i3d_logits(real, model, batch_size), i3d_logits(fake, model, batch_size)


def compute_fvd(
    real: Videos,
    fake: Videos,
    model: I3D | None = None,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    unbiased_covariance: bool = False,
) -> float:
    """FVD between real and generated (or reconstructed) videos.

    Default variant: StyleGAN-V/Latte (biased covariance), as followed by the paper; pass
    ``unbiased_covariance=True`` for the original TF FVD. The protocol of the paper is 2048
    clips per set (16 frames for generation, 17 for reconstruction).

    Args:
        real, fake: (N, 3, T, H, W) float videos in [-1, 1] with T >= 9, or iterables of such
            batches (any H, W: frames are resized to 224x224).
        model: a loaded I3D to reuse; None loads it (see :func:`load_i3d`).
        batch_size: clips per I3D forward pass.
        device: device for a model loaded here (default: CUDA if available, else CPU).
        unbiased_covariance: covariance divisor N - 1 instead of N.

    Returns:
        The FVD.
    """
    real_features, fake_features = _features(real, fake, model, batch_size, device)
    return fvd_from_features(real_features, fake_features, unbiased_covariance)


def compute_kvd(
    real: Videos,
    fake: Videos,
    model: I3D | None = None,
    batch_size: int = 8,
    device: torch.device | str | None = None,
) -> float:
    """KVD (unbiased polynomial-kernel MMD^2 of I3D logits) between two video sets.

    Args:
        real, fake: as in :func:`compute_fvd`.
        model, batch_size, device: as in :func:`compute_fvd`.

    Returns:
        The KVD.
    """
    real_features, fake_features = _features(real, fake, model, batch_size, device)
    return kvd_from_features(real_features, fake_features)


def compute_fvd_kvd(
    real: Videos,
    fake: Videos,
    model: I3D | None = None,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    unbiased_covariance: bool = False,
) -> tuple[float, float]:
    """FVD and KVD from a single I3D pass over both sets (arguments as in :func:`compute_fvd`).

    Returns:
        (fvd, kvd).
    """
    real_features, fake_features = _features(real, fake, model, batch_size, device)
    return (
        fvd_from_features(real_features, fake_features, unbiased_covariance),
        kvd_from_features(real_features, fake_features),
    )


def fvd_noise_floor(
    features: torch.Tensor | np.ndarray,
    num_clips: int,
    resamples: int = 10,
    seed: int = 0,
    unbiased_covariance: bool = False,
) -> dict:
    """The FVD of real against real at ``num_clips`` clips a side: the floor under any gFVD
    measured with that many clips.

    Each resampling draws two disjoint sets of ``num_clips`` from the pool of real
    ``features`` (a seeded random split) and takes their :func:`fvd_from_features`.

    Args:
        features: (M, D) features of M >= 2 * num_clips real clips (e.g. I3D logits).
        num_clips: clips per side, as in the gFVD it is the floor of.
        resamples: number of random splits.
        seed: seed of the splits.
        unbiased_covariance: as in :func:`fvd_from_features`.

    Returns:
        ``{"fvd": mean, "std": std over splits (0 for one), "values": [...],
        "num_clips": num_clips, "resamples": resamples}``.
    """
    x = _as_float64(features)
    if num_clips < 2 or len(x) < 2 * num_clips or resamples < 1:
        raise ValueError(f"a noise floor at {num_clips} clips needs >= 2 of them and "
                         f">= {2 * num_clips} real features (got {len(x)}), resamples >= 1")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        order = rng.permutation(len(x))
        a, b = x[order[:num_clips]], x[order[num_clips : 2 * num_clips]]
        values.append(fvd_from_features(a, b, unbiased_covariance))
    return {"fvd": float(np.mean(values)), "std": float(np.std(values)), "values": values,
            "num_clips": num_clips, "resamples": resamples}
