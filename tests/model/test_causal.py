import pytest
import torch

from pvvae.model.causal import (
    CausalConv3d,
    ChunkContext,
    causal_window,
    inflate_temporal_kernels,
    run_sliced,
)


def run_stream(conv: CausalConv3d, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    state, outs, start = None, [], 0
    for n in sizes:
        ctx = ChunkContext(state, n)
        outs.append(conv(x[:, :, start : start + n], ctx))
        state, start = ctx.next_state(), start + n
    return torch.cat(outs, dim=2)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("sizes", [[1, 4, 4, 4, 4], [5, 12], [1, 1, 1, 14], [17]])
def test_streaming_equals_whole_clip(stride, sizes):
    torch.manual_seed(0)
    conv = CausalConv3d(3, 4, 3, stride=(stride, 1, 1))
    x = torch.randn(2, 3, 17, 6, 6)
    whole = conv(x)
    assert whole.shape[2] == (17 - 1) // stride + 1
    torch.testing.assert_close(run_stream(conv, x, sizes), whole, atol=1e-5, rtol=0)


def test_output_depends_only_on_past_frames():
    torch.manual_seed(0)
    conv = CausalConv3d(2, 2, 3)
    x = torch.randn(1, 2, 9, 4, 4)
    y = x.clone()
    y[:, :, 5] += 1.0
    diff = (conv(x) - conv(y)).abs().amax(dim=(0, 1, 3, 4))
    assert torch.all(diff[:5] == 0) and torch.all(diff[5:8] > 0)


def test_first_frame_is_replicated_not_zero_padded():
    conv = CausalConv3d(1, 1, (3, 1, 1))
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
        conv.conv.bias.zero_()
    x = torch.full((1, 1, 1, 2, 2), 2.0)
    assert torch.allclose(conv(x), torch.full((1, 1, 1, 2, 2), 6.0))


@pytest.mark.parametrize("stride", [1, 2])
def test_single_frame_is_the_windowed_conv_in_value_and_gradient(stride):
    """An image runs as one 2D conv with the time-summed kernel: same output, and every
    temporal tap gets the gradient the 3-copy window would give it."""
    torch.manual_seed(0)
    conv = CausalConv3d(3, 4, 3, stride=(stride, 1, 1)).double()
    x = torch.randn(2, 3, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    fast = conv(x)
    slow = conv.conv(causal_window(conv, x, None, 3, stride))
    torch.testing.assert_close(fast, slow)
    g_fast = torch.autograd.grad(fast.square().sum(), [x, conv.conv.weight])
    g_slow = torch.autograd.grad(slow.square().sum(), [x, conv.conv.weight])
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("frames", [1, 2, 5])
def test_run_sliced_equals_one_call_and_hands_on_state(frames):
    torch.manual_seed(0)
    conv1, conv2 = CausalConv3d(3, 4, 3), CausalConv3d(4, 2, 3, stride=(2, 1, 1))
    net = lambda x, ctx: conv2(torch.tanh(conv1(x, ctx)), ctx)  # noqa: E731
    x = torch.randn(1, 3, 17, 5, 5)
    whole = net(x, None)
    ctx = ChunkContext(None, 9)  # slice the first chunk, then continue the stream whole
    first = run_sliced(net, x[:, :, :9], ctx, frames)
    ctx2 = ChunkContext(ctx.next_state(), 8)
    rest = net(x[:, :, 9:], ctx2)
    torch.testing.assert_close(torch.cat([first, rest], dim=2), whole, atol=1e-5, rtol=0)


def test_inflation_keeps_images_and_makes_frames_independent():
    """After inflate_temporal_kernels an image maps exactly as before (its frames are all
    replicas), and a stride-1 causal conv no longer looks at earlier frames."""
    torch.manual_seed(0)
    conv = CausalConv3d(3, 4, 3)
    image, clip = torch.randn(1, 3, 1, 6, 6), torch.randn(1, 3, 5, 6, 6)
    with torch.no_grad():
        before = conv(image)
        assert inflate_temporal_kernels(conv) == 1
        torch.testing.assert_close(conv(image), before, atol=1e-5, rtol=0)
        out, changed = conv(clip), clip.clone()
        changed[:, :, 2] += 1.0
        diff = (conv(changed) - out).abs().amax(dim=(0, 1, 3, 4))
    assert diff[2] > 0 and torch.all(diff[[0, 1, 3, 4]] == 0)
    assert torch.count_nonzero(conv.conv.weight[:, :, :2]) == 0
