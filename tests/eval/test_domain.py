"""The proving-ground domain network (``pvvae.eval.domain``): a tiny deterministic build tells
the dataset's classes apart on a held-out stream, is cached and reused, and its Frechet
distance sees temporal corruptions that the Kinetics I3D misses."""

from __future__ import annotations

import json

import pytest
import torch

from pvvae.data.synthetic import SyntheticVideoDataset
from pvvae.eval import domain
from pvvae.eval.corrupt import repeat_first, shuffle_time
from pvvae.eval.domain import (
    build_domain_network,
    class_accuracy,
    domain_batch,
    domain_features,
    domain_fvd,
)

# about 10 s on one loaded thread; the default build (900 steps of 17 frames) is in
# docs/evaluation.md
TINY = dict(steps=300, frames=5, lr=3e-3, heldout=128)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("domain")
    return cache, build_domain_network(cache, **TINY)


@pytest.fixture(scope="module")
def clips():
    def take(seed, n=24):
        data = SyntheticVideoDataset(n, 17, 64, 64, seed=seed, annotations=False)
        return torch.stack([data[i]["video"] for i in range(n)])

    return take(50_000), take(50_001)


def test_tiny_build_separates_the_classes_on_a_held_out_stream(built):
    cache, net = built
    info = net.info
    assert info["heldout_clips"] == 128 and info["train_seed"] == domain.TRAIN_SEED
    # chance is 0.25 (four shape kinds); 128 held-out clips: +-0.04
    assert info["heldout_accuracy"] > 0.45, info
    (folder,) = cache.glob("domain-*")
    saved = json.loads((folder / "domain.json").read_text())
    assert saved["settings"]["steps"] == 300
    assert saved["heldout_accuracy"] == info["heldout_accuracy"]
    videos, labels, flow = domain_batch(domain.HELDOUT_SEED, 0, 64, frames=5)
    assert flow.shape == (64, 2, 4, 4, 4)
    right = class_accuracy(videos, labels, net)
    assert right > 0.45 and class_accuracy(videos, (labels + 1) % 4, net) < right


def test_the_cache_is_reused_and_settings_change_its_key(built, monkeypatch):
    cache, net = built

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the cache matches")

    monkeypatch.setattr(domain, "train_domain_network", no_training)
    again = build_domain_network(cache, **TINY)
    for (k, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(AssertionError, match="retrained"):
        build_domain_network(cache, **{**TINY, "steps": 301})


def test_domain_fvd_sees_shuffled_and_frozen_clips(built, clips):
    _, net = built
    ref, test = clips
    features = domain_features(test, net)
    assert features.shape == (24, 192) and features.dtype == torch.float64
    real = domain_fvd(ref, test, net)
    shuffled = domain_fvd(ref, shuffle_time(test, torch.Generator().manual_seed(0)), net)
    frozen = domain_fvd(ref, repeat_first(test), net)
    assert shuffled > 1.3 * real and frozen > 1.3 * real, (real, shuffled, frozen)


def test_other_frame_sizes_are_resized(built, clips):
    _, net = built
    small = torch.nn.functional.avg_pool3d(clips[1][:4], (1, 2, 2))  # (4, 3, 17, 32, 32)
    assert domain_features(small, net).shape == (4, 192)
