"""Tests of pvvae.model.blocks: the parameter-free resampling shortcuts (issue 9)."""

import pytest
import torch

from pvvae.model.blocks import Downsample, Upsample
from pvvae.model.causal import CausalState, ChunkContext


def _zero_convs(module: torch.nn.Module) -> torch.nn.Module:
    """Zero every conv so that only the shortcut path is left."""
    for p in module.parameters():
        torch.nn.init.zeros_(p)
    return module


def test_downsample_shortcut_is_the_causal_block_mean():
    x = torch.randn(2, 3, 5, 8, 8)
    with torch.no_grad():
        out = _zero_convs(Downsample(3, temporal=True))(x)  # (2, 3, 3, 4, 4)
    pooled = torch.nn.functional.avg_pool3d(x, (1, 2, 2))
    expected = torch.stack(
        [pooled[:, :, 0], pooled[:, :, 1:3].mean(2), pooled[:, :, 3:5].mean(2)], dim=2
    )
    torch.testing.assert_close(out, expected)
    with torch.no_grad():
        spatial = _zero_convs(Downsample(3, temporal=False))(x)
    torch.testing.assert_close(spatial, pooled)


def test_upsample_shortcut_repeats_each_latent_over_its_frames_and_pixels():
    z = torch.randn(1, 4, 3, 2, 2)
    with torch.no_grad():
        out = _zero_convs(Upsample(4, temporal=True))(z)  # (1, 4, 5, 4, 4)
    assert out.shape == (1, 4, 5, 4, 4)
    for frame, source in enumerate([0, 1, 1, 2, 2]):
        torch.testing.assert_close(out[:, :, frame, ::2, ::2], z[:, :, source])
        torch.testing.assert_close(out[:, :, frame, 1::2, 1::2], z[:, :, source])


@pytest.mark.parametrize("sizes", [[1, 1, 1, 1, 1], [1, 2, 2], [3, 2], [5]])
def test_downsample_shortcut_streams_exactly(sizes):
    """The pair mean keeps a one-frame tail between chunks, as a causal conv does."""
    torch.manual_seed(0)
    layer = Downsample(3, temporal=True).eval()
    x = torch.randn(1, 3, sum(sizes), 8, 8)
    with torch.no_grad():
        whole = layer(x)
        state, outs = CausalState(), []
        for piece in x.split(sizes, dim=2):
            ctx = ChunkContext(state, piece.shape[2])
            outs.append(layer(piece, ctx))
            state = ctx.next_state()
    torch.testing.assert_close(torch.cat(outs, dim=2), whole, atol=1e-5, rtol=0)


def test_shortcuts_can_be_switched_off():
    x = torch.randn(1, 3, 5, 8, 8)
    with torch.no_grad():
        assert torch.count_nonzero(_zero_convs(Downsample(3, True, shortcut=False))(x)) == 0
        assert torch.count_nonzero(_zero_convs(Upsample(3, True, shortcut=False))(x)) == 0
