"""Tests of pvvae.objectives.perceptual: per-frame LPIPS on clips, with frame subsets."""

from __future__ import annotations

import torch

from pvvae.objectives.lpips import LPIPS, video_lpips
from pvvae.objectives.perceptual import lpips_loss, sample_frames


def _lpips() -> LPIPS:
    torch.manual_seed(0)
    return LPIPS("alex", pretrained_backbone=False)  # random backbone: tests only


def test_lpips_loss_is_the_per_frame_mean_and_differentiable():
    lpips = _lpips()
    x = torch.rand(2, 3, 5, 64, 64) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1).requires_grad_(True)
    loss = lpips_loss(lpips, y, x)
    assert torch.allclose(loss, video_lpips(lpips, y, x).mean(), atol=1e-6)
    assert lpips_loss(lpips, x, x).item() == 0
    loss.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_frame_subsets_use_only_the_drawn_frames():
    lpips = _lpips()
    x = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    y = x.clone()
    y[:, :, 4] = -x[:, :, 4]  # only frame 4 differs
    assert lpips_loss(lpips, y, x, torch.tensor([0, 1, 2])).item() == 0
    assert lpips_loss(lpips, y, x, torch.tensor([3, 4])).item() > 0
    g = torch.Generator().manual_seed(0)
    frames = sample_frames(9, 3, g)
    assert frames.tolist() == sorted(set(frames.tolist())) and len(frames) == 3
    assert sample_frames(9, None) is None and sample_frames(9, 9) is None
