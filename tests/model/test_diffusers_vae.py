"""DiffusersPVVAE: a diffusers AutoencoderKLWan behind the PV-VAE interface (issue 15)."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import AutoencoderKLWan

from pvvae.model.diffusers_vae import PAD_TOKEN_FILE, DiffusersPVVAE, diffusers_model_folder

# Wan2.2 layout (2x2 patchify, residual resampling) and Wan2.1 layout (no patchify), tiny.
SMALL = {"base_dim": 8, "decoder_base_dim": 8, "z_dim": 8}
LAYOUTS = {"wan2.2": ("tiny", SMALL), "wan2.1": ("wan2.1", {**SMALL, "num_res_blocks": 1})}


def small(layout: str = "wan2.2", seed: int = 0) -> DiffusersPVVAE:
    preset, overrides = LAYOUTS[layout]
    torch.manual_seed(seed)
    return DiffusersPVVAE.new(preset, **overrides).eval()


def clip(frames: int = 9, size: int = 32, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, size, size, generator=g) * 2 - 1


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@torch.no_grad()
def test_training_path_equals_the_diffusers_encode_and_decode(layout):
    model, x = small(layout), clip()
    params = model.forward_encoder(x)  # (B, 2Cz, 1 + 2, h, w)
    assert params.shape[:3] == (1, 16, 3)
    assert torch.equal(params, model.vae.encode(x).latent_dist.parameters)
    z = params[:, :8]
    out = model.forward_decoder(z)
    assert out.shape == x.shape
    # diffusers clamps its output; the training path does not (gradients of clipped pixels)
    assert torch.equal(out.clamp(-1, 1), model.vae.decode(z).sample)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@torch.no_grad()
def test_prefix_encoding_is_causal(layout):
    """Encoding the first 1 + 4k frames gives the first 1 + k latent frames of the clip's
    encoding: what predictive reconstruction relies on. Not bit-exact: the mid-block's
    per-frame attention runs on another number of frames (batched matmul rounding);
    measured max difference 6e-8 (float32)."""
    model, x = small(layout), clip(13)
    full = model.forward_encoder(x)
    for k in (0, 1, 2):
        prefix = model.forward_encoder(x[:, :, : 1 + 4 * k])
        torch.testing.assert_close(prefix, full[:, :, : 1 + k], rtol=0, atol=1e-6)


def test_chunk_checkpointing_gives_the_same_gradients():
    model, x = small().train(), clip()
    grads = []
    for ckpt in (False, True):
        model.gradient_checkpointing = ckpt
        model.zero_grad()
        z = model.forward_encoder(x[:, :, :5])[:, :8]
        model.forward_decoder(model.pad_latents(z, 1)).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_save_diffusers_loads_in_diffusers_unchanged_and_keeps_the_token(tmp_path):
    model, x = small(), clip()
    with torch.no_grad():
        model.pad_token.fill_(0.5)
    model.save_diffusers(tmp_path)
    assert (tmp_path / PAD_TOKEN_FILE).is_file()
    plain = AutoencoderKLWan.from_pretrained(tmp_path)  # what the Wan pipelines do
    with torch.no_grad():
        assert torch.equal(
            plain.encode(x).latent_dist.mode(), model.vae.encode(x).latent_dist.mode()
        )
        back = DiffusersPVVAE.from_diffusers(tmp_path)
        assert torch.equal(back.pad_token, model.pad_token)
        torch.testing.assert_close(back.predict(x[:, :, :5], 4), model.predict(x[:, :, :5], 4))


def test_from_diffusers_reads_a_pipeline_folder_and_starts_a_token(tmp_path):
    small().vae.save_pretrained(tmp_path / "vae")  # a released VAE: no token
    model = DiffusersPVVAE.from_diffusers(tmp_path)
    assert model.pad_token.shape == (8,) and model.pad_token.abs().max() < 0.2
    assert model.temporal_compression == 4 and model.spatial_compression == 16


def test_predict_and_forward_shapes():
    model, x = small(), clip(9)
    assert model(x).sample.shape == x.shape
    assert model.predict(x[:, :, :5], 4).shape == x.shape
    assert model.encode(x[:, :, :7]).latent_dist.mode().shape == (1, 8, 3, 2, 2)  # padded to 9


def test_bad_inputs_are_one_line_errors(tmp_path):
    model = small()
    with pytest.raises(ValueError, match="1 \\+ 4k frames, got 8"):
        model.forward_encoder(clip(8))
    with pytest.raises(FileNotFoundError, match="no diffusers VAE here"):
        diffusers_model_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLCogVideoX"}))
    with pytest.raises(ValueError, match="supports \\('AutoencoderKLWan',\\)"):
        DiffusersPVVAE.from_diffusers(tmp_path)
    with pytest.raises(ValueError, match="unknown AutoencoderKLWan argument"):
        DiffusersPVVAE.new("tiny", latent_channels=8)
    with pytest.raises(NotImplementedError, match="no chunk-by-chunk streaming"):
        next(iter(model.iter_encode(clip())))


def test_normalize_uses_the_diffusers_latent_statistics():
    model = DiffusersPVVAE.new("tiny", **SMALL, latents_mean=[1.0] * 8, latents_std=[2.0] * 8)
    z = torch.full((1, 8, 2, 2, 2), 3.0)
    assert torch.equal(model.normalize(z), torch.ones_like(z))  # (z - mean) / std, as Wan does
    assert torch.equal(model.denormalize(model.normalize(z)), z)
