"""Tests of pvvae.gen.sample: labels, decoding, mp4s + PNG grid + index."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from pvvae.data.video_io import read_video
from pvvae.gen.sample import choose_labels, decode_latents, frame_grid, run_sampling
from tests.gen.conftest import micro_vae_with_stats


def test_choose_labels():
    g = torch.Generator().manual_seed(0)
    assert choose_labels(3, 0, None, g) is None
    assert choose_labels(3, 5, 2, g).tolist() == [2, 2, 2]
    drawn = choose_labels(200, 5, None, g)
    assert drawn.min() >= 0 and drawn.max() == 4
    with pytest.raises(ValueError, match="unconditional"):
        choose_labels(3, 0, 1, g)
    with pytest.raises(ValueError, match="out of range"):
        choose_labels(3, 5, 5, g)


def test_decode_latents_undoes_the_cache_normalisation():
    vae = micro_vae_with_stats()
    z = torch.randn(1, 8, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = vae.decode(z).sample.clamp(-1, 1)
    torch.testing.assert_close(decode_latents(vae, vae.normalize(z)), expected)


def test_frame_grid_picks_first_middle_last_frames():
    videos = torch.full((2, 3, 5, 4, 6), -1.0)
    videos[1, :, 2] = 1.0  # the middle frame of the second clip is white
    grid = frame_grid(videos, pad=2)
    assert grid.shape == (2 * 6 - 2, 3 * 8 - 2, 3)
    assert (grid[6:10, 8:14] == 255).all() and (grid[6:10, 0:6] == 0).all()
    assert (grid[0:4, 8:14] == 0).all()


def test_sampling_writes_mp4s_grid_and_index(trained_run, micro_vae_dir, tmp_path):
    out = run_sampling(
        trained_run,
        tmp_path / "s",
        num=3,
        vae_spec=str(micro_vae_dir),
        class_index=1,
        num_steps=2,
        batch_size=2,
        guidance_scale=2.0,
        device="cpu",
        progress=False,
    )
    mp4s = sorted(out.glob("sample_*.mp4"))
    assert [p.name for p in mp4s] == [f"sample_{i:05d}.mp4" for i in range(3)]
    assert tuple(read_video(mp4s[2]).shape) == (17, 32, 32, 3)  # 5 latent frames -> 17
    assert Image.open(out / "grid.png").size == (3 * 34 - 2, 3 * 34 - 2)
    index = json.loads((out / "samples.json").read_text())
    assert [s["class"] for s in index["samples"]] == ["square"] * 3
    assert index["guidance_scale"] == 2.0 and index["sampler"] == "euler"


def test_sampling_needs_a_matching_vae(trained_run, tmp_path):
    with pytest.raises(ValueError, match="latent channels"):
        run_sampling(
            trained_run,
            tmp_path,
            num=1,
            vae_spec="preset:tiny",
            num_steps=1,
            device="cpu",
            progress=False,
        )
