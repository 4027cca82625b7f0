"""PV-VAE* (pvvae.model.transformer): shapes, block-causality, KV-cache streaming, round trips."""

import json

import pytest
import torch

from pvvae import TransformerPVVAE
from pvvae.model.transformer import TRANSFORMER_PRESETS
from pvvae.objectives.predictive import predictive_reconstruction
from tests.conftest import make_micro_transformer, random_video


@pytest.fixture
def vae() -> TransformerPVVAE:
    return make_micro_transformer()


@pytest.mark.parametrize("t", [1, 5, 7, 17])
def test_shapes_and_any_frame_count(vae, t):
    x = random_video(2, t, 32, 48)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.sample()
        y = vae.decode(z).sample
        assert vae(x).sample.shape == x.shape
    assert z.shape == (2, 8, 1 + -(-(t - 1) // 4), 2, 3)
    assert y.shape == (2, 3, 1 + 4 * (z.shape[2] - 1), 32, 48)


def test_encoder_is_block_causal(vae):
    x = random_video(1, 17)
    y = x.clone()
    y[:, :, 10] = -y[:, :, 10]  # frame 10 is in group 3 (frames 9..12)
    with torch.no_grad():
        diff = vae.encode(x).latent_dist.parameters - vae.encode(y).latent_dist.parameters
    per_latent = diff.abs().amax(dim=(0, 1, 3, 4))
    assert torch.all(per_latent[:3] == 0) and torch.all(per_latent[3:] > 0)


@pytest.mark.parametrize("j", [0, 2, 4])
def test_decoder_is_block_causal(vae, j):
    z = torch.randn(1, 8, 5, 2, 2)
    z2 = z.clone()
    z2[:, :, j] += 1.0  # latent j decodes to frame 0 (j = 0) or frames 4j - 3 .. 4j
    with torch.no_grad():
        diff = (vae.decode(z).sample - vae.decode(z2).sample).abs().amax(dim=(0, 1, 3, 4))
    first = max(4 * j - 3, 0)
    assert torch.all(diff[:first] == 0) and torch.all(diff[first:] > 0)


def test_prefix_encodes_to_the_latent_prefix(vae):
    x = random_video(2, 17)
    with torch.no_grad():
        whole = vae.encode(x).latent_dist.parameters
        for m in (0, 1, 3):
            prefix = vae.encode(x[:, :, : 1 + 4 * m]).latent_dist.parameters
            torch.testing.assert_close(prefix, whole[:, :, : 1 + m], atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_with_kv_cache_equals_whole_clip(vae, chunk):
    x = random_video(2, 33)
    with torch.no_grad():
        vae.set_chunk_size(None)
        params_whole = vae.encode(x).latent_dist.parameters
        z = params_whole[:, :8]
        x_whole = vae.decode(z).sample
        vae.set_chunk_size(chunk)
        params_chunked = vae.encode(x).latent_dist.parameters
        x_chunked = vae.decode(z).sample
    torch.testing.assert_close(params_chunked, params_whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(x_chunked, x_whole, atol=1e-5, rtol=0)


def test_stream_state_holds_the_cache_and_is_consumed(vae):
    x = random_video(1, 17)
    with torch.no_grad():
        ref = vae.encode(x).latent_dist.mode()
        post0, state = vae.encode_chunk(x[:, :, :5])
        cache = state.tails[vae.encoder.blocks[0].attn]  # (2, B, heads, tokens so far, d)
        post1, state2 = vae.encode_chunk(x[:, :, 5:], state)
    assert cache.shape == (2, 1, 2, 2 * 4, 8) and state2.frames == 17
    assert not state.tails  # every layer took its cache
    torch.testing.assert_close(torch.cat([post0.mode(), post1.mode()], 2), ref, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs 4m frames"):
        vae.encode_chunk(x[:, :, 5:7], state2)


def test_slicing_and_tiling_run_through_the_shared_path(vae):
    x = random_video(3, 5, 64, 64)
    with torch.no_grad():
        ref = vae(x).sample
        vae.enable_slicing()
        torch.testing.assert_close(vae(x).sample, ref, atol=1e-5, rtol=0)
        vae.enable_tiling(tile_size=32, tile_stride=16)  # attention sees one tile at a time
        assert vae(x).sample.shape == x.shape


def test_predictive_reconstruction_keeps_the_observed_frames(vae):
    x = random_video(2, 17)
    with torch.no_grad():
        out = predictive_reconstruction(vae, x, k=2, sample_posterior=False)
        observed = vae(x[:, :, :9]).sample
        predicted = vae.predict(x[:, :, :9], num_future_frames=8)
    assert out.x_hat.shape == x.shape and out.posterior.mean.shape == (2, 8, 3, 2, 2)
    torch.testing.assert_close(out.x_hat[:, :, :9], observed, atol=1e-5, rtol=0)
    torch.testing.assert_close(predicted, out.x_hat, atol=1e-5, rtol=0)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        vae = make_micro_transformer().train()
        if checkpointing:
            vae.enable_gradient_checkpointing()
        predictive_reconstruction(vae, random_video(1, 9), k=1).x_hat.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in vae.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)


def test_bf16_autocast_runs(vae):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = vae(random_video(1, 5)).sample
    assert y.shape == (1, 3, 5, 32, 32) and torch.isfinite(y).all()


def test_save_load_round_trip_is_exact(tmp_path, vae):
    vae.set_latent_stats([0.1] * 8, [1.5] * 8)
    vae.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["_class_name"] == "TransformerPVVAE"
    loaded = TransformerPVVAE.from_pretrained(tmp_path, low_cpu_mem_usage=False).eval()
    x = random_video(1, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x).sample, vae(x).sample)
    assert loaded.config.latents_std == [1.5] * 8
    z = torch.randn(2, 8, 3, 2, 2)
    torch.testing.assert_close(loaded.denormalize(loaded.normalize(z)), z)


def test_paper_preset_parameter_count_on_meta_device():
    with torch.device("meta"):
        vae = TransformerPVVAE.from_preset("paper")
    total = sum(p.numel() for p in vae.parameters())
    assert abs(total / 1.2e9 - 1) <= 0.10, total  # paper section 5: "roughly 1.2B"
    assert vae.config.num_heads * vae.config.head_dim == 2048
    assert len(vae.encoder.blocks) == len(vae.decoder.blocks) == 12


def test_tiny_preset_latent_layout():
    assert set(TRANSFORMER_PRESETS) == {"tiny", "paper"}
    vae = TransformerPVVAE.from_preset("tiny").eval()
    with torch.no_grad():
        z = vae.encode(random_video(1, 17, 64, 64)).latent_dist.mode()
    assert z.shape == (1, 64, 5, 4, 4)


def test_bad_config_errors():
    with pytest.raises(KeyError, match="valid presets"):
        TransformerPVVAE.from_preset("huge")
    with pytest.raises(ValueError, match="head_dim"):
        TransformerPVVAE(head_dim=7)
    with pytest.raises(ValueError, match="pad_mode"):
        TransformerPVVAE(pad_mode="zeros")
