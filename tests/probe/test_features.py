"""Feature extraction: shapes, layer 0 = normalised latents, the noised-input definition,
determinism and averaging over noise draws."""

from __future__ import annotations

import pytest
import torch

from pvvae.gen.cache import normalized_posterior
from pvvae.gen.flow import interpolate
from pvvae.probe.features import FeatureConfig, FeatureExtractor
from tests.conftest import random_video


def test_features_shape_and_factors(vae_and_latte):
    vae, latte = vae_and_latte
    ext = FeatureExtractor(vae, latte, FeatureConfig())
    assert ext.layer == 2 and ext.channels == 32  # depth 4 -> middle block 2
    assert (ext.spatial_factor, ext.temporal_factor) == (16, 4)
    f = ext(random_video(2, 9, 32, 48))
    assert f.shape == (2, 32, 3, 2, 3)


def test_layer_zero_is_the_normalised_latent(vae_and_latte):
    vae, latte = vae_and_latte
    video = random_video(1, 5)
    f = FeatureExtractor(vae, latte, FeatureConfig(layer=0))(video)
    assert torch.equal(f, normalized_posterior(vae, video)[0])


def test_features_read_the_noised_latent_with_the_null_label(vae_and_latte):
    vae, latte = vae_and_latte
    video = random_video(2, 5, seed=1)
    cfg = FeatureConfig(layer=3, t=0.3, seed=5)
    f = FeatureExtractor(vae, latte, cfg)(video)
    x0 = normalized_posterior(vae, video)[0]
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    t = torch.full((2,), 0.3)
    want = latte.features(interpolate(x0, eps, t), t, torch.full((2,), 4), layers=(3,))[3]
    assert torch.allclose(f, want, atol=1e-6)


def test_noise_draws_average_and_are_deterministic(vae_and_latte):
    vae, latte = vae_and_latte
    video = random_video(1, 5, seed=2)
    one = FeatureExtractor(vae, latte, FeatureConfig(t=0.5, num_draws=1))(video)
    assert torch.equal(one, FeatureExtractor(vae, latte, FeatureConfig(t=0.5))(video))
    three = FeatureExtractor(vae, latte, FeatureConfig(t=0.5, num_draws=3))(video)
    assert not torch.allclose(one, three)


def test_bad_feature_settings_are_named(vae_and_latte):
    vae, latte = vae_and_latte
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        FeatureConfig(t=1.0)
    with pytest.raises(ValueError, match="layers 0..4"):
        FeatureExtractor(vae, latte, FeatureConfig(layer=5))
