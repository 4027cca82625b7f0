import pytest
import torch

from pvvae.model.codec import TILE_BLEND_MARGIN
from pvvae.model.tiling import blend_weights, tile_starts, tiled_apply
from tests.conftest import make_micro_vae


def test_tile_starts_cover_every_pixel():
    for size, tile, stride in [(64, 32, 16), (80, 32, 16), (96, 64, 48), (32, 64, 48)]:
        starts = tile_starts(size, tile, stride)
        covered = torch.zeros(size, dtype=torch.bool)
        for s in starts:
            covered[s : s + tile] = True
        assert covered.all() and starts[-1] + min(tile, size) == size


@pytest.mark.parametrize("margin", [0.0, 0.25, 0.5])
@pytest.mark.parametrize(
    "size, tile, stride", [(64, 32, 16), (80, 32, 24), (100, 64, 48), (20, 32, 16)]
)
def test_blend_weights_are_a_partition_of_unity(size, tile, stride, margin):
    """Summed over tiles, the weights are 1 everywhere (also across the wider overlap before a
    last tile moved back to the border), each in [0, 1], and 1 at the image border."""
    starts = tile_starts(size, tile, stride)
    total = torch.zeros(size)
    for start, w in zip(starts, blend_weights(starts, tile, size, margin), strict=True):
        assert w.min() >= 0 and w.max() <= 1
        total[start : start + len(w)] += w
    torch.testing.assert_close(total, torch.ones(size))


def test_blend_ramp_spans_the_overlap_and_margin_cuts_it():
    (_, w_lin), (_, w_cut) = [blend_weights([0, 8], 16, 24, m) for m in (0.0, 0.5)]
    torch.testing.assert_close(w_lin[:8], (torch.arange(8) + 0.5) / 8)  # linear, whole overlap
    assert w_cut[:8].tolist() == [0.0] * 4 + [1.0] * 4  # a cut in the middle
    assert blend_weights([0, 3], 6, 9, 0.5)[1][:3].tolist() == [0.0, 0.5, 1.0]  # odd overlap


@pytest.mark.parametrize("margin", [TILE_BLEND_MARGIN, 0.5])
def test_margin_reproduces_a_local_function_exactly(margin):
    """A 3x3 conv needs 1 pixel of context. With overlaps of 8 pixels or more and the margin
    (the default's quarter, or a cut in the middle), no tile-edge pixel (computed from
    padding) gets weight, so tiling is exact (a seam test); a linear ramp mixes them in."""
    conv = torch.nn.Conv3d(2, 2, (1, 3, 3), padding=(0, 1, 1))
    x = torch.randn(1, 2, 1, 64, 72)
    with torch.no_grad():
        ref = conv(x)
        trimmed = tiled_apply(conv, x, tile=32, stride=24, scale=1.0, margin=margin)
        linear = tiled_apply(conv, x, tile=32, stride=24, scale=1.0)
    torch.testing.assert_close(trimmed, ref)
    assert (linear - ref).abs().max() > 1e-3


def test_pointwise_function_is_reproduced_exactly():
    x = torch.randn(1, 2, 3, 64, 96)
    out = tiled_apply(lambda t: t * 2 + 1, x, tile=32, stride=16, scale=1.0)
    torch.testing.assert_close(out, x * 2 + 1)


def test_scaled_output_positions():
    x = torch.randn(1, 1, 1, 64, 64)
    down = tiled_apply(lambda t: t[..., ::16, ::16], x, tile=32, stride=16, scale=1 / 16)
    torch.testing.assert_close(down, x[..., ::16, ::16])


def test_local_conv_error_is_confined_to_seams():
    conv = torch.nn.Conv3d(2, 2, (1, 3, 3), padding=(0, 1, 1))
    x = torch.randn(1, 2, 2, 64, 64)
    with torch.no_grad():
        ref, tiled = conv(x), tiled_apply(conv, x, tile=32, stride=16, scale=1.0)
    err = (tiled - ref).abs()
    assert err.mean() < 0.05 * ref.abs().mean()
    assert err[..., :15, :15].max() < 1e-5  # far from any seam: exact


def test_tiled_vae_error_is_bounded_and_shrinks_with_tile_size():
    """Tiled encode/decode differs from untiled near seams. With random weights (a worst case:
    a trained model is more local) the relative mean error stays below these bounds."""
    from pvvae.data.synthetic import synthetic_clip

    vae = make_micro_vae()
    x = synthetic_clip(0, 0, num_frames=1, height=192, width=192, annotations=False)["video"][None]
    errors = []
    with torch.no_grad():
        z_ref = vae.encode(x).latent_dist.mode()
        x_ref = vae.decode(z_ref).sample
        for tile, stride in [(64, 32), (160, 96)]:
            vae.enable_tiling(tile_size=tile, tile_stride=stride)
            z = vae.encode(x).latent_dist.mode()
            x_dec = vae.decode(z_ref).sample
            assert z.shape == z_ref.shape and x_dec.shape == x_ref.shape
            errors.append(
                (
                    float((z - z_ref).abs().mean() / z_ref.abs().mean()),
                    float((x_dec - x_ref).abs().mean() / x_ref.abs().mean()),
                )
            )
        # a tile covering the whole frame is exactly the untiled computation
        vae.enable_tiling(tile_size=192, tile_stride=192)
        torch.testing.assert_close(vae.decode(z_ref).sample, x_ref)
    (z_small, x_small), (z_large, x_large) = errors
    assert z_large < z_small and x_large < x_small
    assert z_large < 0.2 and x_large < 0.3, errors
