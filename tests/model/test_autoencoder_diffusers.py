"""``PVVAE`` against the diffusers model contract, built like diffusers' own autoencoder
tests (ModelTesterMixin / AutoencoderTesterMixin): save/load variants, dtype round trips,
determinism, output equivalence, training, gradient checkpointing, slicing and tiling
toggles. Inputs are unclamped ``randn``, as diffusers feeds them."""

import pytest
import torch

from pvvae import PVVAE
from pvvae.model.blocks import FrameAttention
from tests.conftest import make_micro_vae


def _x(b: int = 2, t: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, t, 32, 32, generator=torch.Generator().manual_seed(seed))


def _same_outputs(a: PVVAE, b: PVVAE, x: torch.Tensor, atol: float = 1e-5) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a(x).sample, b(x).sample, atol=atol, rtol=0)


@pytest.mark.parametrize("safe", [True, False])
@pytest.mark.parametrize("variant", [None, "fp16"])
def test_save_load_variants(tmp_path, safe, variant):
    vae = make_micro_vae()
    vae.save_pretrained(tmp_path, safe_serialization=safe, variant=variant)
    loaded = PVVAE.from_pretrained(tmp_path, variant=variant).eval()
    _same_outputs(vae, loaded, _x(), atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_save_in_half_load_with_torch_dtype(tmp_path, dtype):
    vae = make_micro_vae()
    vae.to(dtype).save_pretrained(tmp_path)
    loaded = PVVAE.from_pretrained(tmp_path, torch_dtype=dtype)
    assert all(p.dtype == dtype for p in loaded.parameters())
    loaded_fp32 = PVVAE.from_pretrained(tmp_path).eval()
    vae.float()  # back from half: weights rounded to half once, then exact
    assert all(p.dtype == torch.float32 for p in loaded_fp32.parameters())
    _same_outputs(vae, loaded_fp32, _x(), atol=0)


def test_dtype_round_trip_and_bf16_forward():
    vae = make_micro_vae()
    ref = {k: v.clone() for k, v in vae.state_dict().items()}
    vae.to(torch.float64).to(torch.float32)
    assert all(torch.equal(v, ref[k]) for k, v in vae.state_dict().items())
    with torch.no_grad():
        y32 = vae(_x()).sample
        y16 = vae.to(torch.bfloat16)(_x().bfloat16()).sample
    assert y16.dtype == torch.bfloat16 and y16.shape == y32.shape
    assert (y16.float() - y32).abs().mean() < 0.05 * y32.abs().mean()


def test_determinism_and_return_dict_equivalence():
    vae, x = make_micro_vae(), _x()
    with torch.no_grad():
        a, b = vae(x).sample, vae(x).sample
        (c,) = vae(x, return_dict=False)
        (post,) = vae.encode(x, return_dict=False)
        (d,) = vae.decode(post.mode(), return_dict=False)
    assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d[:, :, : x.shape[2]])
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    with torch.no_grad():
        s1 = vae(x, sample_posterior=True, generator=g()).sample
        s2 = vae(x, sample_posterior=True, generator=g()).sample
    assert torch.equal(s1, s2) and not torch.equal(s1, a)


def test_training_step_reaches_every_used_parameter():
    vae = make_micro_vae().train()
    out = vae(_x(), sample_posterior=True, generator=torch.Generator().manual_seed(0))
    post = vae.encode(_x()).latent_dist
    (out.sample.pow(2).mean() + 1e-3 * post.kl().mean()).backward()
    for name, p in vae.named_parameters():
        if name == "pad_token":  # used by predict() and predictive training only
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(("chunk", "slice_frames"), [(None, None), (1, 1), (2, None)])
def test_gradient_checkpointing_gives_the_same_gradients(chunk, slice_frames):
    x = _x(1, 9)

    def grads(checkpointing: bool):
        vae = make_micro_vae()
        with torch.no_grad():  # non-zero attention outputs, so attention is tested too
            for m in vae.modules():
                if isinstance(m, FrameAttention):
                    m.proj.weight.normal_(0, 0.1)
        vae.set_chunk_size(chunk, slice_frames)
        if checkpointing:
            vae.enable_gradient_checkpointing()
            assert vae.is_gradient_checkpointing
        out = vae(x).sample
        out.pow(2).mean().backward()
        return out.detach(), {n: p.grad for n, p in vae.named_parameters() if p.grad is not None}

    (y_ref, g_ref), (y, g) = grads(False), grads(True)
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=0)
    assert g.keys() == g_ref.keys()
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name], atol=1e-6, rtol=1e-4, msg=name)


def test_disable_gradient_checkpointing():
    vae = make_micro_vae()
    vae.enable_gradient_checkpointing()
    vae.disable_gradient_checkpointing()
    assert not vae.is_gradient_checkpointing


def test_no_split_modules_name_classes_of_the_model():
    names = {type(m).__name__ for m in make_micro_vae().modules()}
    assert set(PVVAE._no_split_modules) <= names


def test_slicing_and_tiling_toggles():
    vae, x = make_micro_vae(), torch.randn(2, 3, 5, 64, 64)
    with torch.no_grad():
        ref = vae(x).sample
        vae.enable_slicing()
        torch.testing.assert_close(vae(x).sample, ref, atol=1e-4, rtol=0)
        vae.enable_tiling(tile_size=32, tile_stride=16)
        tiled = vae(x).sample
        assert tiled.shape == ref.shape and not torch.allclose(tiled, ref)
        vae.disable_tiling()
        vae.disable_slicing()
        torch.testing.assert_close(vae(x).sample, ref, atol=1e-6, rtol=0)
