"""The PV-VAE encoder and decoder (paper section 3.1, "Model design").

Encoder: conv_in, then one stage of residual blocks per resolution with a downsampling
between stages, a mid block (ResBlock, frame attention, ResBlock), and a projection to the
2 * latent_channels parameters of the posterior. The paper's t4s16 layout uses four
downsamplings: two spatiotemporal (x2 in T, H and W) followed by two spatial-only ones, for
4x temporal and 16x spatial compression. The decoder mirrors it: two spatial upsamplings,
then two spatiotemporal ones.

Shapes (t4s16c64): x (B, 3, 1 + 4k, H, W) -> posterior parameters (B, 128, 1 + k, H/16, W/16);
z (B, 64, 1 + k, h, w) -> (B, 3, 1 + 4k, 16h, 16w).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pvvae.model.blocks import ChannelRMSNorm, Downsample, MidBlock, ResBlock, Upsample
from pvvae.model.causal import CausalConv3d, CausalState, ChunkContext, run_sliced


def run_block(owner: nn.Module, block: nn.Module, h: Tensor, ctx: ChunkContext | None) -> Tensor:
    """``block(h, ctx)``, under activation checkpointing when ``owner.gradient_checkpointing``.

    ``owner`` (the encoder or decoder) holds the flag and the checkpoint function that
    diffusers' ``enable_gradient_checkpointing`` sets. Streaming tails: the block reads its
    layers' tails from a private copy of the previous state, so that the backward-time
    recomputation reads them again (the shared state hands each tail out once) and its
    rewrites go to a throwaway context; the first run's tails are handed on to ``ctx``.
    h: (B, C, T, H, W) -> the block's output.
    """
    if not (owner.gradient_checkpointing and torch.is_grad_enabled()):
        return block(h, ctx)
    checkpoint = owner._gradient_checkpointing_func
    if ctx is None:
        return checkpoint(block, h)
    mine = {m: ctx.read(m) for m in block.modules() if m in ctx.prev.tails}
    state = CausalState(mine, ctx.prev.frames)
    written: list[CausalState] = []

    def step(x: Tensor) -> Tensor:
        sub = ChunkContext(state.copy(), ctx.num_frames)
        out = block(x, sub)
        written.append(sub.next_state())
        return out

    out = checkpoint(step, h)
    for layer, tail in written.pop(0).tails.items():
        ctx.write(layer, tail)
    return out


class PatchShortcut(nn.Module):
    """A linear path between pixel groups and latents, beside the deep network (optional).

    Encoding: a conv with kernel = stride = (ct, s, s) (ct = 4, s = 16 for t4s16) maps each
    group of ct frames and s x s pixels to one latent position; on a first chunk the first
    frame is replicated ct - 1 times on the left, so frame 0 forms a group alone, as in the
    deep path. Decoding: the transposed conv, dropping the ct - 1 replicated frames on a
    first chunk. Kernel = stride keeps it causal and exact under chunking, slicing and
    tiling (chunks and tiles start on group boundaries).

    Not part of the paper's model (off in ``paper``): it lets the small CPU model (``tiny``)
    leave the mean image, which its deep path alone does not do in a few hundred steps.
    x: (B, 3, 1 + 4k, H, W) -> (B, C_out, 1 + k, H / s, W / s), or back when decoding.
    """

    def __init__(
        self, in_channels: int, out_channels: int, temporal: Sequence[bool], encode: bool
    ) -> None:
        super().__init__()
        self.ct, s = 2 ** sum(bool(t) for t in temporal), 2 ** len(temporal)
        conv = nn.Conv3d if encode else nn.ConvTranspose3d
        kernel = (self.ct, s, s)
        self.encode = encode
        self.proj = conv(in_channels, out_channels, kernel, stride=kernel, bias=False)

    def forward(self, x: Tensor, ctx: ChunkContext | None = None) -> Tensor:
        first = ctx is None or ctx.is_first
        if self.encode:
            if first:
                x = torch.cat([x[:, :, :1].expand(-1, -1, self.ct - 1, -1, -1), x], dim=2)
            return self.proj(x)
        out = self.proj(x)  # (B, C_out, ct * t, H, W)
        return out[:, :, self.ct - 1 :] if first else out


class Encoder(nn.Module):
    """Causal video encoder.

    Args:
        in_channels: pixel channels (3).
        out_channels: posterior parameters (2 * latent channels).
        channels: width of each resolution stage, from full resolution down; one more entry
            than there are downsamplings.
        layers: residual blocks per stage (same length as ``channels``).
        temporal_downsample: for each downsampling, whether it also halves time.
        patch_shortcut: add a linear map of each pixel group (kernel = stride = the
            compression, first frame replicated) to the posterior parameters.
        resample_shortcut: parameter-free block-mean paths around each downsampling
            (:class:`~pvvae.model.blocks.Downsample`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        layers: Sequence[int],
        temporal_downsample: Sequence[bool],
        patch_shortcut: bool = False,
        resample_shortcut: bool = True,
    ) -> None:
        super().__init__()
        self.conv_in = CausalConv3d(in_channels, channels[0], 3)
        self.shortcut = (
            PatchShortcut(in_channels, out_channels, temporal_downsample, encode=True)
            if patch_shortcut
            else None
        )
        self.stages = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = channels[0]
        for level, (width, depth) in enumerate(zip(channels, layers)):
            blocks = [ResBlock(prev if i == 0 else width, width) for i in range(depth)]
            self.stages.append(nn.ModuleList(blocks))
            prev = width if depth > 0 else prev
            if level < len(temporal_downsample):
                self.downs.append(
                    Downsample(prev, temporal_downsample[level], resample_shortcut)
                )
        self.temporal_levels = [i for i, t in enumerate(temporal_downsample) if t]
        self.mid = MidBlock(prev)
        self.norm_out = ChannelRMSNorm(prev)
        self.conv_out = CausalConv3d(prev, out_channels, 3)
        self.gradient_checkpointing = False  # set by PVVAE.enable_gradient_checkpointing

    def forward(
        self, x: Tensor, ctx: ChunkContext | None = None, slice_frames: int | None = None
    ) -> Tensor:
        """x: (B, 3, T, H, W) -> (B, 2 * Cz, t, H / s, W / s).

        ``slice_frames``: when set, the full-resolution part (up to and including the first
        temporal downsampling, where activations are largest) runs on ``slice_frames`` frames
        at a time (see :func:`~pvvae.model.causal.run_sliced`). Same output.
        """
        split = self.temporal_levels[0] + 1 if self.temporal_levels else 0
        if slice_frames and split:
            head = partial(self._run_levels, 0, split)
            h = run_sliced(head, x, ctx, slice_frames)
        else:
            h = self._run_levels(0, split, x, ctx)
        h = run_block(self, self.mid, self._run_levels(split, len(self.stages), h, ctx), ctx)
        h = self.conv_out(F.silu(self.norm_out(h)), ctx)
        return h if self.shortcut is None else h + self.shortcut(x, ctx)

    def _run_levels(self, start: int, stop: int, h: Tensor, ctx: ChunkContext | None) -> Tensor:
        """conv_in (when start is 0), then stages start..stop-1, each with its downsampling."""
        if start == 0:
            h = self.conv_in(h, ctx)
        for level in range(start, stop):
            for block in self.stages[level]:
                h = run_block(self, block, h, ctx)
            if level < len(self.downs):
                h = self.downs[level](h, ctx)
        return h


class Decoder(nn.Module):
    """Causal video decoder, the mirror of :class:`Encoder`.

    Args:
        in_channels: latent channels.
        out_channels: pixel channels (3).
        channels: width of each resolution stage, from full resolution down (as the encoder).
        layers: residual blocks per stage, from full resolution down.
        temporal_upsample: for each upsampling counted from full resolution down, whether it
            also doubles time (the mirror of the encoder's ``temporal_downsample``).
        patch_shortcut: add a linear map of each latent to its pixel group (the transpose
            of the encoder's) to the output.
        resample_shortcut: parameter-free repeat paths around each upsampling
            (:class:`~pvvae.model.blocks.Upsample`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        layers: Sequence[int],
        temporal_upsample: Sequence[bool],
        patch_shortcut: bool = False,
        resample_shortcut: bool = True,
    ) -> None:
        super().__init__()
        self.shortcut = (
            PatchShortcut(in_channels, out_channels, temporal_upsample, encode=False)
            if patch_shortcut
            else None
        )
        top = channels[-1]
        self.conv_in = CausalConv3d(in_channels, top, 3)
        self.mid = MidBlock(top)
        self.stages = nn.ModuleList()
        self.ups = nn.ModuleList()
        prev = top
        for level in reversed(range(len(channels))):
            width = channels[level]
            blocks = [ResBlock(prev if i == 0 else width, width) for i in range(layers[level])]
            self.stages.append(nn.ModuleList(blocks))
            prev = width if layers[level] > 0 else prev
            if level > 0:
                self.ups.append(Upsample(prev, temporal_upsample[level - 1], resample_shortcut))
        self.norm_out = ChannelRMSNorm(prev)
        self.conv_out = CausalConv3d(prev, out_channels, 3)
        self.gradient_checkpointing = False  # set by PVVAE.enable_gradient_checkpointing

    def forward(
        self, z: Tensor, ctx: ChunkContext | None = None, slice_frames: int | None = None
    ) -> Tensor:
        """z: (B, Cz, t, h, w) -> (B, 3, T, h * s, w * s).

        ``slice_frames``: when set, each temporal upsampling and everything after it runs on
        ``slice_frames`` frames at a time, before and after the upsampling (see
        :func:`~pvvae.model.causal.run_sliced`): the full-resolution stages, where activations
        are largest, then hold one slice instead of the 4x longer chunk. Same output.
        """
        h = run_block(self, self.mid, self.conv_in(z, ctx), ctx)
        h = self._run_from(0, h, ctx, slice_frames)
        return h if self.shortcut is None else h + self.shortcut(z, ctx)

    def _run_from(
        self, level: int, h: Tensor, ctx: ChunkContext | None, slice_frames: int | None
    ) -> Tensor:
        """Stages ``level``.. (with their upsamplings) and the output head on features h."""
        for i in range(level, len(self.stages)):
            for block in self.stages[i]:
                h = run_block(self, block, h, ctx)
            if i == len(self.ups):
                break
            if slice_frames and self.ups[i].temporal is not None:
                step = partial(self._upsample_then_run, i, slice_frames=slice_frames)
                return run_sliced(step, h, ctx, slice_frames)
            h = self.ups[i](h, ctx)
        return self.conv_out(F.silu(self.norm_out(h)), ctx)

    def _upsample_then_run(
        self, i: int, h: Tensor, ctx: ChunkContext, slice_frames: int
    ) -> Tensor:
        """Temporal upsampling ``i`` of one slice, then the rest, again slice by slice."""
        rest = partial(self._run_from, i + 1, slice_frames=slice_frames)
        return run_sliced(rest, self.ups[i](h, ctx), ctx, slice_frames)
