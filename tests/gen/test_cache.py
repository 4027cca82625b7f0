"""Tests of pvvae.gen.cache: round trip of the normalised posterior, resume, errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from pvvae.gen.cache import (
    MANIFEST,
    LatentDataset,
    cache_latents,
    latent_shape,
    normalized_posterior,
    shard_name,
)
from tests.gen.conftest import (
    FRAMES,
    NUM_CLIPS,
    SIZE,
    build_cache,
    cache_clips,
    micro_vae_with_stats,
)


def reference(vae, indices):
    data = cache_clips(NUM_CLIPS)
    x = torch.stack([data[i]["video"] for i in indices])
    with torch.no_grad():
        mean, std = normalized_posterior(vae, x)
    return mean, std, [data[i]["label"] for i in indices]


def test_round_trip_matches_the_normalised_posterior(latent_cache):
    vae = micro_vae_with_stats()
    data = LatentDataset(latent_cache)
    assert len(data) == NUM_CLIPS and data.latent_shape == (8, 5, 2, 2)
    assert data.latent_shape == latent_shape(vae, FRAMES, SIZE)
    mean, std, labels = reference(vae, range(NUM_CLIPS))
    for i in range(NUM_CLIPS):  # crosses the shard border (shard_size 4)
        item = data[i]
        torch.testing.assert_close(item["latent"], mean[i], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(item["std"], std[i], rtol=1e-5, atol=1e-5)
        assert item["label"] == labels[i] and item["index"] == i
    # normalisation really applied: mean = (mu - m) / s with the VAE's own statistics
    with torch.no_grad():
        x = cache_clips(1)[0]["video"][None]
        mu = vae.encode(x).latent_dist.mode()
    m = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    s = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(data[0]["latent"], ((mu - m) / s)[0], rtol=1e-5, atol=1e-5)
    manifest = data.manifest
    assert manifest["complete"] and manifest["num_shards"] == 2
    assert manifest["classes"] == ["disc", "square", "triangle", "ring"]
    assert len(manifest["stats"]["mean"]) == 8
    rows = torch.stack([data[i]["latent"] for i in range(NUM_CLIPS)]).double()  # two-pass stats
    per_channel = rows.transpose(0, 1).reshape(8, -1)  # (C, n t h w)
    stats = {k: torch.tensor(v, dtype=torch.float64) for k, v in manifest["stats"].items()}
    torch.testing.assert_close(stats["mean"], per_channel.mean(1))
    torch.testing.assert_close(stats["std"], per_channel.std(1, correction=0))
    with pytest.raises(IndexError):
        data[NUM_CLIPS]


def test_float16_mean_only(tmp_path):
    build_cache(tmp_path / "c", shard_size=8, dtype="float16", store_std=False)
    data = LatentDataset(tmp_path / "c")
    mean, _, _ = reference(micro_vae_with_stats(), [3])
    assert "std" not in data[3] and data[3]["latent"].dtype == torch.float32
    torch.testing.assert_close(data[3]["latent"], mean[0], rtol=2e-3, atol=2e-3)


def test_resume_skips_finished_shards_and_redoes_missing_ones(tmp_path):
    out = tmp_path / "c"
    vae, spec = build_cache(out, shard_size=2)  # 3 shards
    first = LatentDataset(out)[0]["latent"]
    os.utime(out / shard_name(0), (1, 1))  # mark finished shards with an old mtime
    os.remove(out / shard_name(1))
    data = cache_clips(NUM_CLIPS)
    cache_latents(vae, data, out, spec, progress=False)
    assert (out / shard_name(0)).stat().st_mtime == 1  # not rewritten
    assert (out / shard_name(1)).is_file()
    redone = LatentDataset(out)
    torch.testing.assert_close(redone[0]["latent"], first)
    torch.testing.assert_close(redone[2]["latent"], reference(vae, [2])[0][0])


def test_resume_refuses_other_settings(tmp_path):
    out = tmp_path / "c"
    vae, spec = build_cache(out, shard_size=2)
    data = cache_clips(NUM_CLIPS)
    from dataclasses import replace

    with pytest.raises(ValueError, match="other settings"):
        cache_latents(vae, data, out, replace(spec, shard_size=3), progress=False)


def test_unfinished_or_missing_cache_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pvvae gen cache"):
        LatentDataset(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "pvvae-latent-cache"}))
    with pytest.raises(ValueError, match="unfinished"):
        LatentDataset(tmp_path)
