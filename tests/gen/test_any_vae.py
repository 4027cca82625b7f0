"""Generation with a fine-tuned diffusers Wan VAE: ``pvvae gen cache``, ``gen train``,
``gen sample`` and ``gen eval`` (stand-in I3D) end to end, with the VAE as a wrapped model
folder (what a fine-tuning run's checkpoint holds) and as the folder ``pvvae export`` writes."""

from __future__ import annotations

import json

import pytest
import torch

from pvvae.cli.main import main
from pvvae.data.video_io import read_video
from pvvae.gen.cache import LatentDataset, build_video_dataset, normalized_posterior
from pvvae.gen.evaluate import run_evaluation
from pvvae.inference.spec import load_vae
from pvvae.model.diffusers_vae import DiffusersPVVAE
from tests.gen.conftest import FRAMES, SIZE
from tests.gen.test_evaluate import _Colour

CHANNELS = 8


def tiny_wan() -> DiffusersPVVAE:
    """A t4s16c8 AutoencoderKLWan (Wan2.2 layout) with non-trivial latent statistics."""
    torch.manual_seed(0)
    vae = DiffusersPVVAE.new("tiny", base_dim=8, decoder_base_dim=8, z_dim=CHANNELS).eval()
    vae.set_latent_stats([0.1 * i for i in range(CHANNELS)],
                         [0.5 + 0.1 * i for i in range(CHANNELS)])
    return vae


@pytest.mark.parametrize("saved", ["wrapped", "exported"])
def test_cache_train_sample_and_eval_with_a_wan_vae(saved, tmp_path, monkeypatch):
    vae = tiny_wan()
    folder = tmp_path / saved
    vae.save_pretrained(folder) if saved == "wrapped" else vae.save_diffusers(folder)
    loaded = load_vae(folder)
    assert type(loaded) is DiffusersPVVAE and loaded.latent_channels == CHANNELS

    cache = tmp_path / "cache"
    assert main(["gen", "cache", str(folder), "synthetic", str(cache), "--num-frames", str(FRAMES),
                 "--size", str(SIZE), "--num-clips", "4", "--shard-size", "3", "--batch-size", "2",
                 "--dtype", "float32", "--device", "cpu", "--no-progress"]) == 0
    data = LatentDataset(cache)
    assert data.latent_shape == (CHANNELS, 5, 2, 2)
    assert data.manifest["normalized_with_vae_stats"] and len(data.manifest["stats"]["std"]) == 8
    clips = build_video_dataset("synthetic", FRAMES, SIZE, num_clips=4)  # what the CLI read
    x = torch.stack([clips[i]["video"] for i in range(2)])
    with torch.no_grad():
        mean, _ = normalized_posterior(vae, x)
    torch.testing.assert_close(data[1]["latent"], mean[1], rtol=1e-4, atol=1e-4)

    runs = tmp_path / "runs"
    assert main(["gen", "train", f"data.cache={cache}", f"train.out_dir={runs}", "name=wan",
                 "train.steps=1", "train.device=cpu", "train.progress=false",
                 "train.tensorboard=false", "data.batch_size=2"]) == 0
    out = tmp_path / "samples"
    assert main(["gen", "sample", str(runs / "wan"), "--num", "2", "--steps", "2",
                 "--device", "cpu", "--out", str(out), "--no-progress"]) == 0  # VAE of the cache
    mp4s = sorted(out.glob("sample_*.mp4"))
    assert len(mp4s) == 2 and tuple(read_video(mp4s[0]).shape) == (FRAMES, SIZE, SIZE, 3)
    assert json.loads((out / "samples.json").read_text())["vae"] == str(folder)

    monkeypatch.setattr("pvvae.eval.metrics.i3d.load_i3d", lambda device: _Colour(16))
    m = run_evaluation(tmp_path / "eval", real="synthetic", checkpoint=runs / "wan", num=2,
                       num_steps=1, device="cpu", progress=False)
    assert m.latent_config == "t4s16c8" and m.num_fake == 2 and m.fvd >= 0
