"""Diagonal Gaussian posterior of the VAE (seed section 3, the KL term of Eq. 1)."""

from __future__ import annotations

import torch
from torch import Tensor


class DiagonalGaussian:
    """q(z | x) = N(mean, diag(exp(logvar))), for latents of any rank.

    Args:
        parameters: (B, 2 * Cz, ...) with the means in the first Cz channels and the
            log-variances in the last Cz (clamped to [-30, 20] as in LDM/diffusers).
    """

    def __init__(self, parameters: Tensor) -> None:
        self.parameters = parameters
        self.mean, logvar = parameters.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised sample, (B, Cz, ...). Noise comes from ``generator`` when given."""
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps

    def mode(self) -> Tensor:
        """The posterior mean, (B, Cz, ...)."""
        return self.mean

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) summed over all latent elements of each sample: (B,)."""
        per_element = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return per_element.flatten(1).sum(dim=1)
