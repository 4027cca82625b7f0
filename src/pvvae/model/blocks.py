"""Building blocks of the PV-VAE encoder and decoder (paper section 3.1, "Model design").

Every block is causal in time and chunk-invariant:
- normalisation is per position (RMS over channels at each (t, h, w)), never pooled over
  frames (GroupNorm over a 5D tensor would leak the future into the past);
- attention runs within a frame;
- temporal kernels are :class:`~pvvae.model.causal.CausalConv3d`.
Each block's ``forward(x, ctx)`` takes the streaming context of
:mod:`pvvae.model.causal` (``None`` for a whole clip).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from pvvae.model.causal import CausalConv3d, ChunkContext, causal_window


class ChannelRMSNorm(nn.Module):
    """RMS normalisation over channels at each position, with a learned gain and bias.

    Computed in float32 (stable under bf16 autocast). x: (B, C, T, H, W) -> same shape.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels, 1, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return (x32 * self.weight + self.bias).to(x.dtype)


class ResBlock(nn.Module):
    """Pre-activation residual block: (norm, SiLU, causal 3x3x3 conv) x 2 plus a skip.

    x: (B, C_in, T, H, W) -> (B, C_out, T, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = ChannelRMSNorm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3)
        self.norm2 = ChannelRMSNorm(out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv3d(in_channels, out_channels, 1)
        )

    def forward(self, x: Tensor, ctx: ChunkContext | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)), ctx)
        h = self.conv2(F.silu(self.norm2(h)), ctx)
        return self.skip(x) + h


class FrameAttention(nn.Module):
    """Single-head self-attention over the h*w positions of each frame (no temporal mixing).

    The output projection starts at zero, so a new block is the identity (as in Wan's VAE).
    x: (B, C, T, H, W) -> same shape.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = ChannelRMSNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, ctx: ChunkContext | None = None) -> Tensor:
        b, _, t, h, w = x.shape
        tokens = rearrange(self.norm(x), "b c t h w -> (b t) (h w) c")  # (B*T, H*W, C)
        q, k, v = self.qkv(tokens).unsqueeze(1).chunk(3, dim=-1)  # each (B*T, 1, H*W, C)
        out = F.scaled_dot_product_attention(q, k, v).squeeze(1)  # (B*T, H*W, C)
        out = rearrange(self.proj(out), "(b t) (h w) c -> b c t h w", b=b, t=t, h=h, w=w)
        return x + out


class MidBlock(nn.Module):
    """ResBlock, frame attention, ResBlock at the lowest resolution. (B, C, t, h, w) kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.res1 = ResBlock(channels, channels)
        self.attn = FrameAttention(channels)
        self.res2 = ResBlock(channels, channels)

    def forward(self, x: Tensor, ctx: ChunkContext | None = None) -> Tensor:
        return self.res2(self.attn(self.res1(x, ctx), ctx), ctx)


class Downsample(nn.Module):
    """Halve H and W (per-frame 3x3 stride-2 conv); optionally halve time causally.

    The temporal step is a causal conv with kernel 3 and stride 2 over time, mapping
    1 + 2m frames to 1 + m: frame 0 stays alone (the image / first-frame group) and every
    later output summarises two new frames. x: (B, C, T, H, W) -> (B, C, T', H/2, W/2) with
    T' = 1 + (T - 1) / 2 when ``temporal`` else T.

    ``shortcut``: add a parameter-free residual path, the mean over each 2 x 2 pixel block
    and (when ``temporal``) over each causal pair of frames (frame 0 alone, then (1, 2),
    (3, 4), ...), as Wan2.2's AvgDown3D. Without it, content must pass through the strided
    convs alone and a small model collapses to the mean image (README, "The model").
    """

    def __init__(self, channels: int, temporal: bool, shortcut: bool = True) -> None:
        super().__init__()
        self.spatial = nn.Conv3d(channels, channels, (1, 3, 3), stride=(1, 2, 2))
        self.temporal = CausalConv3d(channels, channels, (3, 1, 1), (2, 1, 1)) if temporal else None
        self.shortcut = shortcut

    def forward(self, x: Tensor, ctx: ChunkContext | None = None) -> Tensor:
        h = self.spatial(F.pad(x, (0, 1, 0, 1)))  # (B, C, T, H/2, W/2): pad right/bottom by 1
        if self.temporal is not None:
            h = self.temporal(h, ctx)  # (B, C, T', H/2, W/2)
        return h + self._average(x, ctx) if self.shortcut else h

    def _average(self, x: Tensor, ctx: ChunkContext | None) -> Tensor:
        """The shortcut: (B, C, T, H, W) -> (B, C, T', H/2, W/2) block means."""
        x = rearrange(x, "b c t (h h2) (w w2) -> b c t h w (h2 w2)", h2=2, w2=2).mean(dim=-1)
        if self.temporal is None:
            return x
        pairs = causal_window(self, x, ctx, kt=2, st=2)  # first frame doubled on a first chunk
        if pairs is None:
            return x[:, :, :0]
        return rearrange(pairs, "b c (t two) h w -> b c t two h w", two=2).mean(dim=3)


class Upsample(nn.Module):
    """Double H and W (nearest + 3x3 conv); optionally double time causally.

    The temporal step predicts two frames per input frame with a causal conv to 2C channels,
    interleaves them in time and drops the very first one, so 1 + m frames become 1 + 2m:
    latent frame 0 decodes to one frame, latent frame i >= 1 to frames 2i - 1 and 2i.
    x: (B, C, T, H, W) -> (B, C, T', 2H, 2W), T' = 2T - 1 on a whole clip when ``temporal``.

    ``shortcut``: add a parameter-free residual path that repeats each input frame over the
    output frames it maps to and each pixel over its 2 x 2 block (the mirror of
    :class:`Downsample`'s, as Wan2.2's DupUp3D).
    """

    def __init__(self, channels: int, temporal: bool, shortcut: bool = True) -> None:
        super().__init__()
        self.temporal = CausalConv3d(channels, 2 * channels, (3, 1, 1)) if temporal else None
        self.spatial = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1))
        self.shortcut = shortcut

    def forward(self, x: Tensor, ctx: ChunkContext | None = None) -> Tensor:
        first = ctx is None or ctx.is_first
        h = x
        if self.temporal is not None:
            h = self.temporal(h, ctx)  # (B, 2C, T, H, W)
            h = rearrange(h, "b (two c) t h w -> b c (t two) h w", two=2)  # (B, C, 2T, H, W)
            h = h[:, :, 1:] if first else h  # the first latent frame decodes to a single frame
        h = self.spatial(F.interpolate(h, scale_factor=(1.0, 2.0, 2.0), mode="nearest"))
        if not self.shortcut:
            return h
        if self.temporal is not None:
            x = x.repeat_interleave(2, dim=2)  # (B, C, 2T, H, W)
            x = x[:, :, 1:] if first else x
        return h + F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
