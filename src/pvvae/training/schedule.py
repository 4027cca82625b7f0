"""Learning-rate schedule of the paper (section 4.1): linear warm-up, then cosine decay by 10x."""

from __future__ import annotations

import math

import torch


def lr_multiplier(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """Factor on the base lr at optimizer step ``step`` (0-based).

    Rises linearly from 1 / warmup_steps to 1 over the first ``warmup_steps`` steps, then
    follows a half cosine from 1 down to ``min_ratio`` at ``total_steps`` (and stays there).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying :func:`lr_multiplier`; call ``step()`` once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, warmup_steps, total_steps, min_ratio)
    )
