"""Controlled corruptions of real clips, the calibration of the metrics: a metric
that sees motion must rank temporal corruptions (shuffle, jitter) as bad and mild blur as
nearly harmless; one that sees appearance does the opposite.

Every function maps videos (N, 3, T, H, W) in [-1, 1] to the same shape and range; the
random ones take a ``torch.Generator`` and are deterministic given its seed.
:func:`corruptions` builds the standard set from one seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pvvae.eval.motion import gaussian_blur

BLUR_SIGMAS = (1.5, 3.0, 4.0)  # px: mild, medium, strong
JITTER_PIXELS = 2


def blur(x: Tensor, sigma: float) -> Tensor:
    """Per-frame Gaussian blur of std ``sigma`` px (:func:`pvvae.eval.motion.gaussian_blur`)."""
    return gaussian_blur(x, sigma).clamp(-1, 1)


def shuffle_time(x: Tensor, generator: torch.Generator) -> Tensor:
    """Each clip's frames in a random order (one permutation per clip)."""
    order = torch.stack([torch.randperm(x.shape[2], generator=generator) for _ in range(len(x))])
    index = order.to(x.device)[:, None, :, None, None].expand_as(x)
    return x.gather(2, index)


def repeat_first(x: Tensor) -> Tensor:
    """The first frame on every frame: a frozen clip."""
    return x[:, :, :1].expand_as(x).clone()


def reverse_time(x: Tensor) -> Tensor:
    """The frames in reverse order (physically plausible motion, backwards)."""
    return x.flip(2)


def jitter(x: Tensor, generator: torch.Generator, pixels: int = JITTER_PIXELS) -> Tensor:
    """Each frame shifted by its own random integer offset in ``[-pixels, pixels]`` on both
    axes, edges replicated (no wrap-around)."""
    n, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
    padded = F.pad(frames, (pixels,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * pixels + 1, (n * t, 2), generator=generator).tolist()
    shifted = torch.stack([p[:, dy : dy + h, dx : dx + w] for p, (dx, dy) in zip(padded, offsets)])
    return shifted.reshape(n, t, c, h, w).permute(0, 2, 1, 3, 4).contiguous()


def corruptions(x: Tensor, seed: int = 0) -> dict[str, Tensor]:
    """The standard set, by name: ``blur_<sigma>`` for each of ``BLUR_SIGMAS``, ``shuffle``,
    ``static`` (first frame repeated), ``jitter`` (+-``JITTER_PIXELS`` px), ``reverse``.
    The random ones draw from one generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    out = {f"blur_{s:g}": blur(x, s) for s in BLUR_SIGMAS}
    out["shuffle"] = shuffle_time(x, g)
    out["static"] = repeat_first(x)
    out["jitter"] = jitter(x, g)
    out["reverse"] = reverse_time(x)
    return out
