"""FVD / KVD: Frechet formula against closed forms, KVD against a brute-force double loop,
and the end-to-end metric on real clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pvvae.eval.metrics.fvd import (
    compute_fvd,
    compute_fvd_kvd,
    compute_kvd,
    feature_statistics,
    frechet_distance,
    fvd_from_features,
    kvd_from_features,
)
from pvvae.eval.metrics.i3d import i3d_logits

from .conftest import frames_to_video


def test_frechet_closed_form_diagonal():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    got = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-10)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def test_frechet_closed_form_full_covariance():
    """Tr(sqrtm(S1 S2)) = Tr((S1^1/2 S2 S1^1/2)^1/2), computed here with symmetric eigh."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    s1, s2 = a @ a.T + 0.1 * np.eye(8), b @ b.T + 0.1 * np.eye(8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    root1 = _psd_sqrt(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * _psd_sqrt(root1 @ s2 @ root1))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_feature_statistics_biased_and_unbiased():
    x = np.random.default_rng(2).normal(size=(20, 5))
    mu, biased = feature_statistics(x)
    _, unbiased = feature_statistics(torch.from_numpy(x), unbiased_covariance=True)
    np.testing.assert_allclose(mu, x.mean(0), atol=1e-12)
    np.testing.assert_allclose(biased, np.cov(x, rowvar=False, bias=True), atol=1e-12)
    np.testing.assert_allclose(unbiased, np.cov(x, rowvar=False), atol=1e-12)


def _kvd_brute_force(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kvd_matches_brute_force():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(7, 400)) * 3, rng.normal(0.5, 3, size=(9, 400))
    assert kvd_from_features(x, y) == pytest.approx(_kvd_brute_force(x, y), rel=1e-10)
    same = rng.normal(size=(50, 400))
    assert abs(kvd_from_features(same[:25], same[25:])) < kvd_from_features(x, y)
    with pytest.raises(ValueError):
        kvd_from_features(x[:1], y)


def test_fvd_from_features_separates_shifted_sets():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(200, 16))
    assert fvd_from_features(real, real) == pytest.approx(0.0, abs=1e-8)
    shifted = fvd_from_features(real, real + 1.0)
    assert shifted == pytest.approx(16.0, rel=1e-6)  # |mu shift|^2, equal covariances


@pytest.fixture(scope="module")
def real_clips(clip_frames):
    """3 real 9-frame clips (carphone, decoded once), (3, 3, 9, 144, 176) in [-1, 1]."""
    frames = clip_frames("carphone_pristine.mp4", 27, start=30)
    return torch.cat([frames_to_video(frames[i : i + 9]) for i in (0, 9, 18)])


def test_fvd_kvd_on_real_clips(i3d_model, real_clips):
    g = torch.Generator().manual_seed(0)
    noisy = (real_clips + 0.4 * torch.randn(real_clips.shape, generator=g)).clamp(-1, 1)
    feats_real = i3d_logits(real_clips, i3d_model, batch_size=3)
    feats_noisy = i3d_logits(noisy, i3d_model, batch_size=3)
    # a set against itself: ~0 even though the 3-sample covariance is singular (the slow,
    # ill-conditioned case for sqrtm; full-rank 2048-clip sets are faster)
    assert abs(fvd_from_features(feats_real, feats_real)) < 1e-2
    assert kvd_from_features(feats_real, feats_noisy) > kvd_from_features(feats_real, feats_real)
    assert torch.dist(feats_real, feats_noisy) > 1.0  # noise moves the I3D logits


class _PooledColour(torch.nn.Module):
    """Cheap stand-in for the I3D (same call signature): mean colour -> 16 fixed features."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 16)  # FVD/KVD do not depend on the width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(dim=(2, 3, 4)))


def test_public_api_agrees_with_the_pieces():
    torch.manual_seed(0)
    stub = _PooledColour()
    real = torch.rand(6, 3, 9, 8, 8) * 2 - 1
    fake = torch.rand(5, 3, 9, 8, 8) * 1.5 - 1
    feats_real, feats_fake = i3d_logits(real, stub), i3d_logits(fake, stub)
    batches = iter([real[:2], real[2:]])  # iterables of batches are accepted
    fvd, kvd = compute_fvd_kvd(batches, fake, model=stub, batch_size=4)
    assert fvd == pytest.approx(fvd_from_features(feats_real, feats_fake), rel=1e-6)
    assert kvd == pytest.approx(kvd_from_features(feats_real, feats_fake), rel=1e-6)
    assert compute_fvd(real, fake, model=stub) == pytest.approx(fvd, rel=1e-6)
    unbiased = compute_fvd(real, fake, model=stub, unbiased_covariance=True)
    assert unbiased == pytest.approx(fvd_from_features(feats_real, feats_fake, True), rel=1e-6)
    assert compute_kvd(real, fake, model=stub, batch_size=2) == pytest.approx(kvd, rel=1e-6)
