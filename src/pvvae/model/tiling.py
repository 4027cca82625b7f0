"""Spatial tiling with linearly blended overlaps, for frames too large to process at once.

A function that maps a (B, C, T, H, W) tile to a (B, C', T', H * s, W * s) tile (``s`` = 1/16
for the encoder, 16 for the decoder) is applied to overlapping tiles; the outputs are blended
with weights that ramp linearly across every interior overlap and stay 1 at the image border,
then normalised by the summed weights. Tiles differ from the whole-frame result only near
interior seams, by an amount the tests bound (``tests/model/test_tiling.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` every ``stride`` that cover ``size`` exactly."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile + 1, stride))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def _ramp(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> Tensor:
    """1D blend weights: linear ramps of ``overlap`` samples at the interior ends. (length,)."""
    w = torch.ones(length)
    if overlap > 0:
        ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        if ramp_start:
            w[:overlap] = torch.minimum(w[:overlap], ramp)
        if ramp_end:
            w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


def tiled_apply(
    fn: Callable[..., Tensor],
    x: Tensor,
    tile: int,
    stride: int,
    scale: float,
    keyed: bool = False,
) -> Tensor:
    """Apply ``fn`` on overlapping spatial tiles of ``x`` and blend the results.

    Args:
        fn: maps (B, C, T, h, w) -> (B, C', T', h * scale, w * scale). With ``keyed``, it
            is called as ``fn(tile, (top, left))``, so that a streaming caller can keep one
            causal state per tile position across temporal chunks.
        x: (B, C, T, H, W); H and W, ``tile`` and ``stride`` are in ``x``'s pixels.
        tile, stride: tile side and step; ``tile - stride`` is the overlap.
        scale: output pixels per input pixel (1/16 to encode, 16 to decode).

    Returns:
        (B, C', T', H * scale, W * scale).
    """
    height, width = x.shape[-2:]
    rows, cols = tile_starts(height, tile, stride), tile_starts(width, tile, stride)
    overlap_out = round((tile - stride) * scale)
    out = weight_sum = None
    for top in rows:
        for left in cols:
            piece = x[..., top : top + tile, left : left + tile]
            y = fn(piece, (top, left)) if keyed else fn(piece)  # (B, C', T', th, tw)
            if out is None:
                out_shape = (*y.shape[:3], round(height * scale), round(width * scale))
                out = y.new_zeros(out_shape)
                weight_sum = y.new_zeros(out_shape[-2:])
            th, tw = y.shape[-2:]
            wy = _ramp(th, overlap_out, top > 0, top + tile < height)
            wx = _ramp(tw, overlap_out, left > 0, left + tile < width)
            weight = (wy[:, None] * wx[None, :]).to(y)  # (th, tw)
            t0, l0 = round(top * scale), round(left * scale)
            out[..., t0 : t0 + th, l0 : l0 + tw] += y * weight
            weight_sum[t0 : t0 + th, l0 : l0 + tw] += weight
    return out / weight_sum
