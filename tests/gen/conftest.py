"""Shared fixtures of the generation tests: a micro VAE with latent statistics and a small
latent cache of synthetic clips built with it (17x32x32 clips -> latents (8, 5, 2, 2))."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvvae.data.synthetic import SyntheticVideoDataset
from pvvae.gen.cache import CacheSpec, cache_latents
from tests.conftest import make_micro_vae

NUM_CLIPS, FRAMES, SIZE = 6, 17, 32


def micro_vae_with_stats():
    """The micro VAE with non-trivial latents_mean/std, so normalisation is exercised."""
    vae = make_micro_vae()
    c = vae.config.latent_channels
    vae.set_latent_stats([0.05 * i for i in range(c)], [0.5 + 0.1 * i for i in range(c)])
    return vae


def cache_clips(num_clips: int) -> SyntheticVideoDataset:
    """The clips of the test cache: textured synthetic ones (not the smooth proving ground),
    whose micro-VAE latents lie far enough apart for the overfitting and sampling tests of
    test_train.py to tell the clips apart."""
    return SyntheticVideoDataset(num_clips, FRAMES, SIZE, SIZE, preset="textured",
                                 annotations=False)


def build_cache(out: Path, shard_size: int = 4, dtype: str = "float32", store_std: bool = True):
    """Cache NUM_CLIPS synthetic clips with the micro VAE at ``out``; returns (vae, spec)."""
    vae = micro_vae_with_stats()
    spec = CacheSpec(
        vae="micro",
        data="synthetic",
        num_frames=FRAMES,
        size=SIZE,
        num_clips=NUM_CLIPS,
        shard_size=shard_size,
        dtype=dtype,
        store_std=store_std,
    )
    dataset = cache_clips(NUM_CLIPS)
    cache_latents(vae, dataset, out, spec, batch_size=3, progress=False)
    return vae, spec


@pytest.fixture(scope="session")
def latent_cache(tmp_path_factory) -> Path:
    """A float32 cache with std (shared by the train/sample/eval tests; do not modify)."""
    out = tmp_path_factory.mktemp("gen") / "cache"
    build_cache(out)
    return out


@pytest.fixture(scope="session")
def micro_vae_dir(tmp_path_factory) -> Path:
    """The micro VAE (with statistics) saved as a model folder, for ``--vae``."""
    out = tmp_path_factory.mktemp("vae") / "micro"
    micro_vae_with_stats().save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def trained_run(latent_cache, tmp_path_factory) -> Path:
    """A class-conditional tiny Latte trained for 2 steps on ``latent_cache`` (with EMA)."""
    from pvvae.config import load_config
    from pvvae.gen.train import GenExperimentConfig, train

    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(
        GenExperimentConfig,
        None,
        [
            f"data.cache={latent_cache}",
            f"train.out_dir={out}",
            "name=run",
            "train.steps=2",
            "train.device=cpu",
            "train.progress=false",
            "train.tensorboard=false",
            "data.batch_size=2",
            "train.ckpt_every=2",
        ],
    )
    return train(cfg)
