"""The LPIPS term of Eq. 1 (paper section 3.2, "Loss functions": LPIPS [63]) for video.

LPIPS is an image distance; on clips it is computed per frame, with the frames folded into
the batch, and averaged (the convention of WF-VAE / VidTok training and of the evaluation
tables). Optionally only a random subset of frames per clip goes through the network: the
mean over a uniformly drawn subset is an unbiased estimate of the mean over all frames at a
fraction of the cost (LPIPS's backbone costs about as much per frame as a small decoder).
The network itself is :class:`pvvae.objectives.lpips.LPIPS` (frozen, differentiable in its
inputs).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn


def sample_frames(
    num_frames: int, frames_per_clip: int | None, generator: torch.Generator | None = None
) -> Tensor | None:
    """Sorted indices of ``frames_per_clip`` distinct frames drawn uniformly (None: all)."""
    if frames_per_clip is None or frames_per_clip >= num_frames:
        return None
    return torch.randperm(num_frames, generator=generator)[:frames_per_clip].sort().values


def lpips_loss(
    lpips: nn.Module, pred: Tensor, target: Tensor, frames: Tensor | None = None
) -> Tensor:
    """L_LPIPS: mean LPIPS over the (selected) frames of every clip.

    Args:
        lpips: an LPIPS module mapping two (N, 3, H, W) batches to (N,) distances.
        pred, target: (B, 3, T, H, W) in [-1, 1].
        frames: (n,) frame indices to use (None: all T frames).
    Returns:
        a scalar.
    """
    if frames is not None:
        frames = frames.to(pred.device)
        pred, target = pred.index_select(2, frames), target.index_select(2, frames)  # (B,3,n,H,W)
    pred_f = rearrange(pred, "b c t h w -> (b t) c h w")  # frames folded into the batch
    target_f = rearrange(target, "b c t h w -> (b t) c h w")
    return lpips(pred_f, target_f).mean()
