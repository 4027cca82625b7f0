"""Task decoders of the probing study (paper section 4.3).

:class:`DenseHead` is the paper's decoder: "3D convolutions and pixel-shuffle operations to
upsample LVDM features to the original resolution", 2 output channels for optical flow and 3
for next-frame prediction. Layout (the paper gives no sizes; these are ours):

1. stem: two 3x3x3 convolutions (GELU between) at feature resolution, the second producing
   ``width * r_t`` channels;
2. temporal pixel shuffle: the ``r_t`` channel groups become ``r_t`` frames per latent frame;
   the first latent frame of the causal VAE stands for frame 0 alone, so the first ``r_t - 1``
   frames are dropped: ``t`` latent frames -> ``T = 1 + r_t (t - 1)`` frames;
3. ``log2(s)`` stages of (1x3x3 conv to ``4 c'`` channels, 2x spatial pixel shuffle, GELU),
   halving the width each stage (never below 16): ``(h, w) -> (s h, s w)``;
4. a 3x3x3 output convolution to the task's channels.

:class:`TrackHead` (point tracking; the paper gives no design) follows TAP-Net (Doersch et al.
2022): a :class:`DenseHead` produces an L2-normalised embedding per pixel and frame; the query
point's embedding is read bilinearly at its query frame; its cosine similarity with every pixel
of every frame, divided by a learned temperature and soft-maxed over the frame, gives a heat
map whose expectation (soft-argmax) is the predicted position. Occlusion is not predicted.
With ``window`` (the default) the heat map of frame t is also multiplied by a Gaussian search
window centred on the position predicted in frame t - 1 (on the query point in its own
frame), of learned width (initially ``window`` x the frame side): the local search of
correlation trackers (PWC-Net, RAFT's local lookup, TAPIR's refinement). A point the
embedding cannot tell apart from its neighbourhood then stays where it was (the static
baseline) instead of drifting to the frame's centre of mass, as a global soft-argmax does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class DenseHead(nn.Module):
    """Features (B, D, t, h, w) -> per-frame maps (B, C_out, T, s h, s w) (module docstring).

    Args:
        in_channels: feature channels ``D``.
        out_channels: ``C_out`` (2 flow, 3 next frame, E for the tracking embedding).
        spatial_factor: ``s``, a power of two (VAE spatial compression x Latte patch).
        temporal_factor: ``r_t``, the VAE's temporal compression.
        width: channels of the stem (halved at each upsampling stage, at least 16).
        zero_output: zero-initialise the output convolution, so that the head starts at the
            task's trivial baseline where that is the zero map (zero flow; a residual next
            frame = copy last frame) and only moves from it as far as the features help.
    """

    def __init__(
        self, in_channels: int, out_channels: int, spatial_factor: int, temporal_factor: int,
        width: int = 64, zero_output: bool = False,
    ) -> None:
        super().__init__()
        stages = int(math.log2(spatial_factor))
        if 2**stages != spatial_factor:
            raise ValueError(f"spatial_factor {spatial_factor} must be a power of two")
        self.temporal_factor = temporal_factor
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, width, 3, padding=1),
            nn.GELU(),
            nn.Conv3d(width, width * temporal_factor, 3, padding=1),
        )
        self.up = nn.ModuleList()
        c = width
        for _ in range(stages):
            c_next = max(c // 2, 16)
            self.up.append(nn.Conv3d(c, 4 * c_next, (1, 3, 3), padding=(0, 1, 1)))
            c = c_next
        self.out = nn.Conv3d(c, out_channels, 3, padding=1)
        if zero_output:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, features: Tensor) -> Tensor:
        """Args: features (B, D, t, h, w). Returns: (B, C_out, 1 + r_t (t - 1), s h, s w)."""
        r = self.temporal_factor
        x = self.stem(features)  # (B, width * r, t, h, w)
        x = rearrange(x, "b (c r) t h w -> b c (t r) h w", r=r)  # (B, width, r t, h, w)
        x = x[:, :, r - 1 :]  # (B, width, T, h, w): the first latent frame is frame 0 only
        for conv in self.up:
            x = rearrange(conv(x), "b (c i j) t h w -> b c t (h i) (w j)", i=2, j=2)  # 2x
            x = F.gelu(x)  # (B, c', T, 2h, 2w)
        return self.out(x)  # (B, C_out, T, H, W)


def sample_query_embeddings(emb: Tensor, query_t: Tensor, query_xy: Tensor) -> Tensor:
    """Bilinear read of per-frame embeddings at query points.

    Args:
        emb: (B, E, T, H, W) embeddings.
        query_t: (B, N) int64 query frames; query_xy: (B, N, 2) ``(x, y)`` pixel positions.

    Returns:
        (B, N, E) embeddings at the queries.
    """
    b, e, _, h, w = emb.shape
    n = query_t.shape[1]
    batch = torch.arange(b, device=emb.device)[:, None].expand(b, n)  # (B, N)
    frames = emb.permute(0, 2, 1, 3, 4)[batch, query_t]  # (B, N, E, H, W)
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=emb.device)
    grid = (query_xy.to(emb.dtype) * scale - 1.0).view(b * n, 1, 1, 2)  # align_corners=True
    out = F.grid_sample(frames.reshape(b * n, e, h, w), grid, align_corners=True)  # (BN,E,1,1)
    return out.view(b, n, e)


class TrackHead(nn.Module):
    """Point tracking by correlation and soft-argmax over a dense embedding (module docstring).

    Args:
        in_channels, spatial_factor, temporal_factor, width: as :class:`DenseHead`.
        embed_dim: ``E``, channels of the per-pixel embedding.
    """

    def __init__(
        self, in_channels: int, spatial_factor: int, temporal_factor: int, width: int = 64,
        embed_dim: int = 16, window: float | None = 0.1,
    ) -> None:
        super().__init__()
        self.dense = DenseHead(in_channels, embed_dim, spatial_factor, temporal_factor, width)
        # windowed: start flat inside the window (at the static baseline), sharpen in training
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.05 if window is None
                                                                  else 5.0)))
        # search-window width (a fraction of the frame side), None: global soft-argmax
        self.log_window = None if window is None else nn.Parameter(torch.tensor(math.log(window)))

    def forward(self, features: Tensor, query_t: Tensor, query_xy: Tensor) -> Tensor:
        """Track queries through the clip.

        Args:
            features: (B, D, t, h, w).
            query_t: (B, N) int64 query frames; query_xy: (B, N, 2) ``(x, y)`` at those frames.

        Returns:
            (B, N, T, 2) predicted ``(x, y)`` pixel positions in every frame.
        """
        emb = F.normalize(self.dense(features), dim=1)  # (B, E, T, H, W)
        q = F.normalize(sample_query_embeddings(emb, query_t, query_xy), dim=-1)  # (B, N, E)
        logits = torch.einsum("bne,bethw->bnthw", q, emb) / self.log_temperature.exp()
        if self.log_window is None:
            return soft_argmax(logits)  # (B, N, T, 2)
        query_xy = query_xy.to(logits.dtype)
        sigma = self.log_window.exp() * max(logits.shape[-2:])
        steps, previous = [], query_xy
        for t in range(logits.shape[2]):  # forward from each query frame
            after = (query_t < t)[..., None]  # (B, N, 1): frames after the query follow it
            centre = torch.where(after, previous, query_xy)
            pos = soft_argmax(logits[:, :, t] + window_log_prior(centre, sigma, logits.shape))
            previous = torch.where((query_t == t)[..., None], query_xy, pos)
            steps.append(previous)
        return torch.stack(steps, dim=2)  # (B, N, T, 2)


def _grid(shape: torch.Size, like: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel coordinates ``xs`` (W,) and ``ys`` (H,) of maps whose last two dims are (H, W)."""
    h, w = shape[-2:]
    return (torch.arange(w, device=like.device, dtype=like.dtype),
            torch.arange(h, device=like.device, dtype=like.dtype))


def soft_argmax(logits: Tensor) -> Tensor:
    """Expected ``(x, y)`` under the softmax over the last two dims: (..., H, W) -> (..., 2)."""
    prob = logits.flatten(-2).softmax(dim=-1).view(logits.shape)
    xs, ys = _grid(logits.shape, logits)
    return torch.stack([(prob.sum(dim=-2) * xs).sum(dim=-1),
                        (prob.sum(dim=-1) * ys).sum(dim=-1)], dim=-1)


def window_log_prior(centre: Tensor, sigma: Tensor, shape: torch.Size) -> Tensor:
    """Log of a Gaussian window of width ``sigma`` px around ``centre`` (B, N, 2) ``(x, y)``:
    (B, N, H, W) values ``-|p - centre|^2 / (2 sigma^2)``."""
    xs, ys = _grid(shape, centre)
    dx = (xs - centre[..., :1]) ** 2  # (B, N, W)
    dy = (ys - centre[..., 1:]) ** 2  # (B, N, H)
    return -(dy[..., :, None] + dx[..., None, :]) / (2 * sigma**2)
