"""Spatial tiling with blended overlaps, for frames too large to process at once.

A function that maps a (B, C, T, H, W) tile to a (B, C', T', H * s, W * s) tile (``s`` = 1/16
for the encoder, 16 for the decoder) is applied to overlapping tiles, and the outputs are
blended (:func:`blend_weights`). Across the overlap of two neighbouring tiles the later
tile's weight rises from 0 to 1 while the earlier one's falls by as much, so the weights of
all tiles sum to one at every position (a partition of unity; the convention of diffusers'
tiled VAEs, whose ``blend_v`` / ``blend_h`` ramp linearly across the whole overlap). The ramp
spans the overlap actually shared, which is wider before a last tile moved back to end on the
border. ``margin`` trims the ramp: the outer ``margin`` fraction of the overlap at each end
goes to the tile for which it is interior, because a tile's samples near its own edge are
computed from padding instead of image (``margin=0.5`` cuts each overlap in the middle). Tiles
differ from the whole-frame result only near interior seams, by an amount the tests bound
(``tests/model/test_tiling.py``).
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


def _rise(overlap: int, margin: float) -> Tensor:
    """Weight (overlap,) of the tile that enters an overlap: 0 over the first ``margin``
    fraction, linear, 1 over the last; ``r + r.flip(0) == 1`` (the other tile gets the rest)."""
    i = torch.arange(overlap, dtype=torch.float64) + 0.5  # sample centres
    width = overlap * (1 - 2 * margin)
    if width <= 0:  # a cut in the middle (a centre on it, in an odd overlap, is shared)
        return ((torch.sign(i - overlap / 2) + 1) / 2).float()
    return ((i - overlap * margin) / width).clamp(0, 1).float()


def blend_weights(starts: list[int], length: int, size: int, margin: float = 0.0) -> list[Tensor]:
    """1D blend weights of tiles of ``length`` samples at ``starts`` covering ``size``.

    Args:
        starts: tile offsets, increasing (e.g. :func:`tile_starts`).
        length: samples per tile (a tile at the end is cut to ``size``).
        size: samples covered.
        margin: fraction of each overlap, at each of its ends, given wholly to the tile for
            which it is interior (0: linear across the whole overlap; at most 0.5).
    Returns:
        one weight vector (min(length, size - start),) per tile. Where at most two tiles
        overlap (stride >= length / 2) the weights of all tiles sum to exactly 1.
    """
    if not 0 <= margin <= 0.5:
        raise ValueError(f"margin must be in [0, 0.5], got {margin}")
    ends = [min(s + length, size) for s in starts]
    weights = [torch.ones(e - s) for s, e in zip(starts, ends, strict=True)]
    for k in range(1, len(starts)):
        overlap = ends[k - 1] - starts[k]
        if overlap <= 0:
            continue
        rise = _rise(overlap, margin)  # (overlap,): positions starts[k] .. ends[k - 1] - 1
        weights[k][:overlap] *= rise  # this tile fades in
        weights[k - 1][-overlap:] *= 1 - rise  # the previous one fades out
    return weights


def tiled_apply(
    fn: Callable[..., Tensor],
    x: Tensor,
    tile: int,
    stride: int,
    scale: float,
    keyed: bool = False,
    margin: float = 0.0,
) -> Tensor:
    """Apply ``fn`` on overlapping spatial tiles of ``x`` and blend the results.

    Args:
        fn: maps (B, C, T, h, w) -> (B, C', T', h * scale, w * scale). With ``keyed``, it
            is called as ``fn(tile, (top, left))``, so that a streaming caller can keep one
            causal state per tile position across temporal chunks.
        x: (B, C, T, H, W); H and W, ``tile`` and ``stride`` are in ``x``'s pixels.
        tile, stride: tile side and step; ``tile - stride`` is the overlap.
        scale: output pixels per input pixel (1/16 to encode, 16 to decode).
        margin: blend margin of :func:`blend_weights`, in output samples' terms.

    Returns:
        (B, C', T', H * scale, W * scale).
    """
    height, width = x.shape[-2:]
    rows, cols = tile_starts(height, tile, stride), tile_starts(width, tile, stride)
    out_h, out_w, out_tile = round(height * scale), round(width * scale), round(tile * scale)
    row_w = blend_weights([round(r * scale) for r in rows], out_tile, out_h, margin)
    col_w = blend_weights([round(c * scale) for c in cols], out_tile, out_w, margin)
    out = weight_sum = None
    for top, wy in zip(rows, row_w, strict=True):
        for left, wx in zip(cols, col_w, strict=True):
            piece = x[..., top : top + tile, left : left + tile]
            y = fn(piece, (top, left)) if keyed else fn(piece)  # (B, C', T', th, tw)
            if out is None:
                out = y.new_zeros((*y.shape[:3], out_h, out_w))
                weight_sum = y.new_zeros((out_h, out_w))
            weight = (wy[:, None] * wx[None, :]).to(y)  # (th, tw)
            t0, l0 = round(top * scale), round(left * scale)
            out[..., t0 : t0 + len(wy), l0 : l0 + len(wx)] += y * weight
            weight_sum[t0 : t0 + len(wy), l0 : l0 + len(wx)] += weight
    return out / weight_sum  # exact where at most two tiles overlap; else renormalises
