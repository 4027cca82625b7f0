"""Tests of pvvae.gen.latte: shapes, adaLN-Zero, conditioning, CFG, block outputs, presets."""

from __future__ import annotations

import pytest
import torch

from pvvae.gen.latte import LATTE_PRESETS, Latte, LatteConfig, sincos_embedding_1d


def perturb_(model: Latte, seed: int = 0, std: float = 0.05) -> Latte:
    """Add noise to every parameter so the zero-initialised layers stop hiding the inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model


def tiny(**overrides) -> Latte:
    torch.manual_seed(0)
    return Latte.from_preset("tiny", **overrides).eval()


@pytest.mark.parametrize(
    "patch_size, shape",
    [(1, (2, 8, 5, 8, 8)), (2, (2, 8, 5, 8, 8)), (1, (1, 8, 3, 4, 6)), (2, (3, 8, 1, 6, 10))],
)
def test_output_shape(patch_size: int, shape: tuple[int, ...]) -> None:
    model = perturb_(tiny(patch_size=patch_size))
    x = torch.randn(shape)
    v = model(x, torch.rand(shape[0]))
    assert v.shape == x.shape
    assert torch.isfinite(v).all()


def test_out_channels_and_bad_inputs() -> None:
    model = tiny(out_channels=3, patch_size=2)
    assert model(torch.randn(1, 8, 2, 4, 4), 0.3).shape == (1, 3, 2, 4, 4)
    with pytest.raises(ValueError):
        model(torch.randn(1, 8, 2, 5, 4), 0.3)  # 5 not divisible by the patch size
    with pytest.raises(ValueError):
        model(torch.randn(1, 4, 2, 4, 4), 0.3)  # wrong channels
    with pytest.raises(ValueError):
        model(torch.randn(1, 8, 2, 4, 4), 0.3, torch.tensor([1]))  # labels to unconditional


def test_zero_init_outputs_exact_zeros() -> None:
    model = tiny(num_classes=5)
    v = model(torch.randn(2, 8, 3, 8, 8), torch.rand(2), torch.tensor([0, 5]))
    assert torch.equal(v, torch.zeros_like(v))
    # ... and every block starts as the identity (adaLN-Zero gates are zero); only the frame
    # embedding, added once before block 2 (the first temporal block), changes the stream.
    x = torch.randn(1, 8, 3, 4, 4)
    feats = model.features(x, 0.5, torch.tensor([1]), layers=(1, 2, 3, 4))
    assert torch.equal(feats[2], feats[3]) and torch.equal(feats[2], feats[4])
    frame_emb = sincos_embedding_1d(torch.arange(3), 64)  # (t, D)
    torch.testing.assert_close(
        feats[2] - feats[1], frame_emb.T[None, :, :, None, None].expand_as(feats[1])
    )


def test_conditioning_changes_output() -> None:
    model = perturb_(tiny(num_classes=5))
    x = torch.randn(2, 8, 3, 8, 8)
    y = torch.tensor([1, 2])
    v = model(x, torch.tensor([0.2, 0.7]), y)
    v_t = model(x, torch.tensor([0.6, 0.1]), y)
    v_y = model(x, torch.tensor([0.2, 0.7]), torch.tensor([3, 5]))
    assert (v - v_t).abs().amax(dim=(1, 2, 3, 4)).min() > 1e-3
    assert (v - v_y).abs().amax(dim=(1, 2, 3, 4)).min() > 1e-3
    # a scalar t is broadcast over the batch
    assert torch.allclose(model(x, 0.4, y), model(x, torch.full((2,), 0.4), y))


def test_batch_elements_are_independent() -> None:
    """Reshapes must never mix samples: a batch gives the same result as one-by-one."""
    model = perturb_(tiny(num_classes=5, patch_size=2))
    x, t, y = torch.randn(3, 8, 5, 4, 6), torch.rand(3), torch.tensor([0, 4, 5])
    v = model(x, t, y)
    for i in range(3):
        torch.testing.assert_close(v[i : i + 1], model(x[i : i + 1], t[i : i + 1], y[i : i + 1]))


def test_spatial_then_temporal_blocks() -> None:
    """Block 1 (spatial) keeps frames apart; block 2 (temporal) mixes them (variant 1)."""
    x = torch.randn(1, 8, 4, 4, 4)
    x2 = x.clone()
    x2[:, :, 3] += 1.0  # change the last frame only
    model = perturb_(tiny())
    f, f2 = model.features(x, 0.5, layers=(1, 2)), model.features(x2, 0.5, layers=(1, 2))
    torch.testing.assert_close(f[1][:, :, :3], f2[1][:, :, :3])  # earlier frames untouched
    assert not torch.allclose(f[1][:, :, 3], f2[1][:, :, 3])
    assert not torch.allclose(f[2][:, :, 0], f2[2][:, :, 0])  # temporal block mixes frames
    # the temporal block never mixes spatial positions: change one position only
    x3 = x.clone()
    x3[..., 0, 0] += 1.0
    g = model.features(x3, 0.5, layers=(1,))[1]
    assert not torch.allclose(g[..., 1, 1], f[1][..., 1, 1])  # spatial attention mixes
    assert [Latte.is_temporal_block(i) for i in range(4)] == [False, True, False, True]


def test_temporal_embedding_breaks_frame_symmetry() -> None:
    """Identical frames give different outputs per frame (1D temporal sin-cos embedding)."""
    model = perturb_(tiny())
    frame = torch.randn(1, 8, 1, 4, 4)
    v = model(frame.expand(1, 8, 3, 4, 4).contiguous(), 0.5)
    assert not torch.allclose(v[:, :, 0], v[:, :, 1])


def test_cfg() -> None:
    model = perturb_(tiny(num_classes=5))
    x, t, y = torch.randn(2, 8, 3, 4, 4), torch.rand(2), torch.tensor([0, 3])
    v_c = model(x, t, y)
    v_u = model(x, t, torch.full_like(y, model.null_label))
    torch.testing.assert_close(model.forward_with_cfg(x, t, y, 1.0), v_c, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.forward_with_cfg(x, t, y, 0.0), v_u, rtol=1e-5, atol=1e-5)
    expected = v_u + 4.0 * (v_c - v_u)
    torch.testing.assert_close(model.forward_with_cfg(x, t, y, 4.0), expected)


def test_label_dropout_uses_generator() -> None:
    model = tiny(num_classes=5, class_dropout_prob=0.5)
    y = torch.arange(5).repeat(40)  # (200,)
    drop = model.y_embedder.drop_labels
    a = drop(y, torch.Generator().manual_seed(3))
    b = drop(y, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    frac = (a == 5).float().mean().item()
    assert 0.35 < frac < 0.65
    assert torch.equal(a[a != 5], y[a != 5])
    # applied in training only
    perturb_(model)
    x, t, y2 = torch.randn(4, 8, 2, 4, 4), torch.rand(4), torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(model(x, t, y2), model(x, t, y2))
    model.train()
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.testing.assert_close(model(x, t, y2, generator=g1), model(x, t, y2, generator=g2))


def test_block_outputs_shapes_and_consistency() -> None:
    model = perturb_(tiny(patch_size=2))
    x = torch.randn(2, 8, 5, 8, 12)
    feats = model.features(x, torch.rand(2), layers=(2, 4))
    assert sorted(feats) == [2, 4]
    assert feats[2].shape == (2, 64, 5, 4, 6)  # (B, D, t, h/p, w/p)
    assert not torch.allclose(feats[2], feats[4])
    torch.testing.assert_close(model.features(x, 0.3)[2], model.features(x, 0.3, layers=(2,))[2])
    with pytest.raises(ValueError):
        model.features(x, 0.5, layers=(0,))  # 1-based
    with pytest.raises(ValueError):
        model.features(x, 0.5, layers=(5,))  # depth 4


def test_gradient_checkpointing_matches() -> None:
    torch.manual_seed(0)
    a = perturb_(Latte.from_preset("tiny", num_classes=0))
    b = Latte.from_preset("tiny", grad_checkpointing=True)
    b.load_state_dict(a.state_dict())
    x, t = torch.randn(2, 8, 3, 4, 4), torch.rand(2)
    la, lb = a(x, t).square().mean(), b(x, t).square().mean()
    la.backward()
    lb.backward()
    torch.testing.assert_close(la, lb)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad)


def test_presets_and_config() -> None:
    assert set(LATTE_PRESETS) == {"tiny", "S", "B", "L", "XL"}
    xl = LATTE_PRESETS["XL"]
    assert (xl.depth, xl.hidden_size, xl.num_heads, xl.mlp_ratio) == (28, 1152, 16, 4.0)
    assert (LATTE_PRESETS["S"].depth, LATTE_PRESETS["S"].hidden_size) == (12, 384)
    assert (LATTE_PRESETS["B"].hidden_size, LATTE_PRESETS["L"].depth) == (768, 24)
    with pytest.raises(TypeError):
        Latte.from_preset("tiny", not_a_field=1)
    with pytest.raises(KeyError):
        Latte.from_preset("XXL")
    with pytest.raises(ValueError):
        LatteConfig(hidden_size=100, num_heads=3)


def test_xl_parameter_count_on_meta_device() -> None:
    with torch.device("meta"):
        model = Latte.from_preset("XL", in_channels=64, num_classes=101)
    assert all(p.is_meta for p in model.parameters())
    n = sum(p.numel() for p in model.parameters())
    # DiT-XL/2 has 675M parameters; Latte-XL (28 alternating blocks) reports 673.68M.
    assert 670e6 < n < 678e6, n


def test_save_and_from_pretrained_round_trip(tmp_path) -> None:
    model = perturb_(tiny(num_classes=3, latent_shape=[8, 5, 2, 2], classes=["a", "b", "c"]))
    model.save_pretrained(tmp_path)
    loaded = Latte.from_pretrained(tmp_path).eval()
    assert loaded.arch == model.arch and loaded.conditional
    assert list(loaded.config.latent_shape) == [8, 5, 2, 2]
    assert list(loaded.config.classes) == ["a", "b", "c"]
    x, t, y = torch.randn(2, 8, 3, 4, 4), torch.rand(2), torch.tensor([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, y), model(x, t, y), rtol=0, atol=0)
