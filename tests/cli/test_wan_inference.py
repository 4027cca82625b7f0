"""The video verbs on a fine-tuned diffusers Wan VAE: run folder and exported folder."""

from __future__ import annotations

import shutil

import pytest
import torch

from pvvae.cli.main import main
from pvvae.cli.video import load_clip
from pvvae.data.samples import sample_video_path
from pvvae.data.video_io import read_video
from pvvae.inference.latent_file import load_latents
from pvvae.inference.loading import load_model, model_fingerprint, supports_streaming
from pvvae.model.diffusers_vae import DiffusersPVVAE

VIDEO = str(sample_video_path("bikes"))
SMALL = ["--size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    """A tiny Wan2.2-layout VAE as a training run folder and as its `pvvae export` folder."""
    root = tmp_path_factory.mktemp("wan")
    torch.manual_seed(0)
    model = DiffusersPVVAE.new("tiny", base_dim=8, decoder_base_dim=8, z_dim=8).eval()
    model.save_pretrained(root / "model")
    step = root / "run" / "checkpoints" / "step-0000001"
    shutil.copytree(root / "model", step)
    model.save_diffusers(root / "exported")
    return root


@pytest.mark.parametrize("folder", ["run", "exported"])
def test_both_folders_load_the_same_model(wan, folder):
    model = load_model(wan / folder)
    assert isinstance(model, DiffusersPVVAE) and not supports_streaming(model)
    assert model_fingerprint(model) == model_fingerprint(load_model(wan / "model"))


@pytest.mark.parametrize("folder", ["run", "exported"])
def test_reconstruct_equals_the_model_on_the_whole_clip(wan, folder, tmp_path, capsys):
    out = tmp_path / "rec.mp4"
    assert main(["reconstruct", str(wan / folder), VIDEO, str(out), *SMALL,
                 "--max-frames", "7"]) == 0
    assert "7 frames, PSNR" in (text := capsys.readouterr().out) and "not streamed" in text
    assert read_video(out).shape == (7, 32, 32, 3)


@pytest.mark.parametrize("folder", ["run", "exported"])
def test_predict_writes_observed_plus_future(wan, folder, tmp_path, capsys):
    out = tmp_path / "pred.mp4"
    assert main(["predict", str(wan / folder), VIDEO, str(out), *SMALL, "--max-frames", "13",
                 "--observe", "5"]) == 0
    assert "observed 5 frames, predicted 8" in capsys.readouterr().out
    assert read_video(out).shape == (13, 32, 32, 3)


def test_encode_decode_round_trip_across_folders(wan, tmp_path, capsys):
    latents, out = tmp_path / "z.safetensors", tmp_path / "dec.mp4"
    assert main(["encode", str(wan / "run"), VIDEO, str(latents), *SMALL,
                 "--max-frames", "7"]) == 0
    model = load_model(wan / "model")
    with torch.no_grad():
        ref = model.encode(load_clip(VIDEO, num_frames=7, size=32)).latent_dist.mode()
    torch.testing.assert_close(load_latents(latents), ref, atol=1e-5, rtol=0)
    # the exported folder is the same model (same fingerprint): it decodes these latents
    assert main(["decode", str(wan / "exported"), str(latents), str(out), "--no-progress"]) == 0
    assert read_video(out).shape == (7, 32, 32, 3)
