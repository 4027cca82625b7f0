"""Causal temporal convolution with an explicit streaming cache (paper section 3.1, "Model design").

PV-VAE is built from 3D convolutions that are causal in time: an output frame depends only on
input frames at or before it. Time is padded on the left only, by repeating the first frame
(the convention of CogVideoX, HunyuanVideo, WF-VAE and Cosmos; Wan pads with zeros, which is
equally causal). Replication makes a single image (T = 1) look like a static video to every
kernel, so the image path and the video path share all weights.

Streaming. A long video is processed as a sequence of temporal chunks. Every causal conv keeps
the input frames it has not yet fully consumed (its *tail*) and prepends them to the next
chunk, so that the concatenated chunk outputs equal the whole-clip output exactly. The tails
live in an explicit state object, :class:`CausalState`, passed in and returned by the model's
``encode_chunk`` / ``decode_chunk``; no module holds mutable streaming state and nothing is
toggled by walking modules (see ``shared/notes/style.md``, rule 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class CausalState:
    """Streaming state of a causal network between two temporal chunks.

    A state is consumed by the chunk that reads it: each layer takes its tail out of the
    state as it reads it, so that the tails of the old and the new state are never in
    memory together (as Wan's feature cache overwrites its entries). Pass each state once;
    to branch a stream (continue one prefix in two ways), :meth:`copy` it first.

    Attributes:
        tails: per-layer unconsumed input frames, keyed by the layer object. Each value has
            shape (B, C, n, H, W) with n = kernel - stride frames in steady state.
        frames: number of input frames already processed (0 before the first chunk).
    """

    tails: dict[nn.Module, Tensor] = field(default_factory=dict)
    frames: int = 0

    @property
    def is_first(self) -> bool:
        """True while no chunk has been processed: layers pad instead of reading a tail."""
        return self.frames == 0

    def copy(self) -> CausalState:
        """A state that can be consumed independently of this one (tensors are shared)."""
        return CausalState(tails=dict(self.tails), frames=self.frames)


class ChunkContext:
    """What one forward pass over one chunk reads from and writes to the streaming state.

    Created by the model for each chunk from the previous :class:`CausalState`; after the
    forward pass, :meth:`next_state` returns the state for the following chunk. A model run
    on a whole clip uses ``ctx=None`` everywhere, which pads as for a first chunk.
    """

    def __init__(self, state: CausalState | None, num_frames: int) -> None:
        self.prev = state if state is not None else CausalState()
        self.num_frames = num_frames
        self._tails: dict[nn.Module, Tensor] = {}

    @property
    def is_first(self) -> bool:
        return self.prev.is_first

    def read(self, layer: nn.Module) -> Tensor | None:
        """Take ``layer``'s tail out of the previous state (None on a first chunk)."""
        return self.prev.tails.pop(layer, None)

    def write(self, layer: nn.Module, tail: Tensor) -> None:
        self._tails[layer] = tail

    def next_state(self) -> CausalState:
        return CausalState(tails=self._tails, frames=self.prev.frames + self.num_frames)


def run_sliced(fn, x: Tensor, ctx: ChunkContext | None, frames: int) -> Tensor:
    """``fn(x, ctx)`` computed over slices of ``frames`` frames of x, oldest first.

    ``fn`` is a causal function of its input built from layers of this module (e.g. the
    high-resolution end of the decoder). Each slice runs with its own :class:`ChunkContext`,
    chained from ``ctx``'s previous state, and the tails left by the last slice are written
    to ``ctx``, so the result and the state handed on equal those of one call on all of x
    (up to float rounding), while activations exist for one slice at a time.

    x: (B, C, T, H, W) -> fn's output for all T frames, concatenated in time.
    """
    state = ctx.prev if ctx is not None else CausalState()
    outs = []
    for piece in x.split(frames, dim=2):
        sub = ChunkContext(state, piece.shape[2])
        outs.append(fn(piece, sub))
        state = sub.next_state()
    if ctx is not None:
        for layer, tail in state.tails.items():
            ctx.write(layer, tail)
    return torch.cat(outs, dim=2)


def causal_window(
    layer: nn.Module, x: Tensor, ctx: ChunkContext | None, kt: int, st: int
) -> Tensor | None:
    """The frames a causal temporal window op (kernel kt, stride st) consumes in this chunk.

    Prepends ``layer``'s tail from the previous chunk (or, on a first chunk / whole clip,
    kt - 1 copies of the first frame), keeps what the next chunk still needs as the new
    tail, and returns the frames that complete windows: (B, C, (n - 1) * st + kt, H, W) for
    n >= 1 complete windows, or None when no window completes in this chunk.
    """
    tail = ctx.read(layer) if ctx is not None else None
    if tail is None:  # first chunk or whole clip: replicate the first frame on the left
        tail = x[:, :, :1].expand(-1, -1, kt - 1, -1, -1)
    buffer = torch.cat([tail, x], dim=2)  # (B, C, n_tail + T, H, W)
    num_out = (buffer.shape[2] - kt) // st + 1 if buffer.shape[2] >= kt else 0
    if ctx is not None:  # keep what the next chunk still needs (a copy: frees the buffer)
        ctx.write(layer, buffer[:, :, num_out * st :].clone())
    return buffer[:, :, : (num_out - 1) * st + kt] if num_out else None


class CausalConv3d(nn.Module):
    """3D convolution, causal in time, with 'same' zero padding in space.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: (kt, kh, kw) or an int for all three.
        stride: (st, sh, sw) or an int. A temporal stride s > 1 maps 1 + s*m frames to
            1 + m frames: the first output sees only the (replicated) first frame.

    Shapes: x (B, C_in, T, H, W) -> (B, C_out, T', H', W') with
    T' = (T + kt - 1 - kt) // st + 1 on a whole clip (left padding of kt - 1 frames).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int] = 3,
        stride: int | tuple[int, int, int] = 1,
    ) -> None:
        super().__init__()
        kt, kh, kw = (kernel_size,) * 3 if isinstance(kernel_size, int) else kernel_size
        st, sh, sw = (stride,) * 3 if isinstance(stride, int) else stride
        self.time_kernel, self.time_stride = kt, st
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            (kt, kh, kw),
            stride=(st, sh, sw),
            padding=(0, kh // 2, kw // 2),
        )

    def forward(self, x: Tensor, ctx: ChunkContext | None = None) -> Tensor:
        """Convolve one chunk (or a whole clip when ``ctx`` is None). x: (B, C, T, H, W)."""
        kt, st = self.time_kernel, self.time_stride
        if kt == 1 and st == 1:
            return self.conv(x)
        if x.shape[2] == 1 and (ctx is None or ctx.is_first):
            return self._single_frame(x, ctx)
        window = causal_window(self, x, ctx, kt, st)
        if window is None:
            shape = (x.shape[0], self.conv.out_channels, 0, *self._spatial_out(x))
            return x.new_zeros(shape)
        return self.conv(window)

    def _single_frame(self, x: Tensor, ctx: ChunkContext | None) -> Tensor:
        """A first chunk of one frame (an image): the window holds kt copies of it, so the
        output equals a 2D convolution with the kernel summed over time (kt times fewer
        FLOPs, the same value and the same gradient for every tap); the tail handed on is
        what :func:`causal_window` would keep. (B, C, 1, H, W) -> (B, C_out, 1, H', W')."""
        conv, kt, st = self.conv, self.time_kernel, self.time_stride
        if ctx is not None:
            ctx.write(self, x.expand(-1, -1, max(kt - st, 0), -1, -1).clone())
        return F.conv3d(x, conv.weight.sum(dim=2, keepdim=True), conv.bias,
                        stride=(1, *conv.stride[1:]), padding=conv.padding)

    def _spatial_out(self, x: Tensor) -> tuple[int, int]:
        _, sh, sw = self.conv.stride
        _, kh, kw = self.conv.kernel_size
        h = (x.shape[3] + 2 * (kh // 2) - kh) // sh + 1
        w = (x.shape[4] + 2 * (kw // 2) - kw) // sw + 1
        return h, w


@torch.no_grad()
def inflate_temporal_kernels(module: nn.Module) -> int:
    """Fold every causal temporal kernel onto its newest tap (2D -> 3D causal inflation).

    After image training (paper section 3.2, stage 1) only the sum of a kernel's temporal taps
    matters: an image (T = 1) is replicated into every tap. Those sums say nothing about how
    to weigh frames against each other, so a video stage that starts from them mixes frames
    at random. Moving each sum onto the tap of the current frame (the causal inflation of
    2D image VAEs into 3D ones, paper section 1 and OD-VAE) keeps every image output exactly
    and starts video training from a per-frame model; the temporal resampling convs then
    keep the newest frame of each group and the resampling shortcuts carry the group means.

    Returns the number of kernels changed. Weights of shape (C_out, C_in, kt, kh, kw).
    """
    changed = 0
    for layer in module.modules():
        if isinstance(layer, CausalConv3d) and layer.time_kernel > 1:
            weight = layer.conv.weight
            total = weight.sum(dim=2)  # (C_out, C_in, kh, kw)
            weight.zero_()
            weight[:, :, -1] = total
            changed += 1
    return changed
