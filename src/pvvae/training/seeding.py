"""Per-step, per-rank random streams derived from the run seed.

Every random draw of a training step (dropped groups k, posterior and padding noise, LPIPS
frames, the step's resolution) comes from a generator seeded with ``derive_seed(seed,
purpose, step[, rank])``: a pure function of the step, so resuming at any step reproduces
the draws of an uninterrupted run without restoring generator states, and ranks never share
a stream unless they must (the resolution and k are shared so that all ranks do the same
amount of work).
"""

from __future__ import annotations

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A 63-bit seed mixed from non-negative integers (numpy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2)
    return (int(state[0]) | int(state[1]) << 32) & (2**63 - 1)


def generator(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` of ``keys``."""
    return torch.Generator(device).manual_seed(derive_seed(*keys))


# Purpose tags: distinct streams for distinct draws of the same step.
RESOLUTION, DROP, NOISE, LPIPS_FRAMES = 101, 102, 103, 104
