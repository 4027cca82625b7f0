"""Exponential moving average of a model's weights (as DiT, WF-VAE; decay about 0.999).

    theta_ema <- decay * theta_ema + (1 - decay) * theta        after every optimizer step

The average covers the floating-point entries of ``model.state_dict()`` (parameters and
buffers) under their state-dict names, so it works for any module, also wrapped for
activation checkpointing (whose hooks keep the names clean) or sharded by FSDP2 (the
averages are then shards too; :func:`pvvae.training.distributed.full_state_dict` gathers
them). Non-float entries are copied.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


class EMA:
    """EMA of ``model``'s state, initialised to a copy of it.

    Args:
        model: the trained module.
        decay: weight of the old average per update.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow: dict[str, Tensor] = {
            k: v.detach().clone() for k, v in model.state_dict().items()
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current state."""
        for name, value in model.state_dict().items():
            avg = self.shadow[name]
            if avg.is_floating_point():
                avg.lerp_(value.detach(), 1.0 - self.decay)
            else:
                avg.copy_(value)

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged tensors, keyed like ``model.state_dict()`` (shared, not copied)."""
        return dict(self.shadow)

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Set the averages from full tensors (missing or extra names raise KeyError)."""
        from pvvae.training.distributed import load_full_tensor

        missing, extra = set(self.shadow) - set(state), set(state) - set(self.shadow)
        if missing or extra:
            raise KeyError(f"EMA state mismatch: missing {sorted(missing)}, extra {sorted(extra)}")
        for name, avg in self.shadow.items():
            load_full_tensor(avg, state[name])
