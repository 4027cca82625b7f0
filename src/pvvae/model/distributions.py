"""Diagonal Gaussian posterior of the VAE (paper section 3, the KL term of Eq. 1).

The interface is that of diffusers' ``DiagonalGaussianDistribution`` (``parameters``,
``mean``, ``logvar``, ``var``, ``std``, ``deterministic``, ``sample``, ``mode``, ``kl``,
``nll``), so pipelines and training scripts written for diffusers VAEs work unchanged. One
difference, documented where it applies: reductions run over every non-batch dimension
(diffusers sums over dims 1-3, which for 5D video latents would leave a time axis).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class DiagonalGaussian:
    """q(z | x) = N(mean, diag(exp(logvar))), for latents of any rank.

    Args:
        parameters: (B, 2 * Cz, ...) with the means in the first Cz channels and the
            log-variances in the last Cz (clamped to [-30, 20] as in LDM/diffusers).
        deterministic: a point mass at the mean: ``var`` and ``std`` are zero,
            :meth:`sample` returns the mean and :meth:`kl` / :meth:`nll` return 0.
    """

    def __init__(self, parameters: Tensor, deterministic: bool = False) -> None:
        self.parameters = parameters
        self.deterministic = deterministic
        self.mean, logvar = parameters.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        if deterministic:
            self.var = self.std = torch.zeros_like(self.mean)
        else:
            self.std = torch.exp(0.5 * self.logvar)
            self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised sample, (B, Cz, ...). Noise comes from ``generator`` when given."""
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps

    def mode(self) -> Tensor:
        """The posterior mean, (B, Cz, ...)."""
        return self.mean

    def kl(self, other: DiagonalGaussian | None = None) -> Tensor:
        """KL(q || other), other = N(0, I) when None, summed over all latent elements: (B,).

        KL(N(m1, v1) || N(m2, v2)) = 0.5 * ((m1 - m2)^2 / v2 + v1 / v2 - 1 - log v1 + log v2).
        """
        if self.deterministic:
            return self.mean.new_zeros(self.mean.shape[0])
        if other is None:
            per_element = 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar)
        else:
            per_element = 0.5 * (
                (self.mean - other.mean).pow(2) / other.var
                + self.var / other.var
                - 1.0
                - self.logvar
                + other.logvar
            )
        return per_element.flatten(1).sum(dim=1)

    def nll(self, sample: Tensor, dims: tuple[int, ...] | None = None) -> Tensor:
        """Negative log-likelihood of ``sample`` (B, Cz, ...) under q, summed over ``dims``.

        ``dims`` defaults to every non-batch dimension, giving (B,).
        -log q(z) = 0.5 * (log 2 pi + logvar + (z - mean)^2 / var) per element.
        """
        if self.deterministic:
            return self.mean.new_zeros(self.mean.shape[0])
        dims = tuple(range(1, sample.ndim)) if dims is None else dims
        per_element = 0.5 * (
            math.log(2.0 * math.pi) + self.logvar + (sample - self.mean).pow(2) / self.var
        )
        return per_element.sum(dim=dims)


DiagonalGaussianDistribution = DiagonalGaussian  # the diffusers name
