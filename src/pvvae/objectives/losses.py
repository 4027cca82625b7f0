"""The VAE training loss of the paper, Eq. 1 (section 3.2, "Loss functions").

    L_total = lambda_rec (L_MSE + L_Diff) + lambda_lpips L_LPIPS + lambda_gan L_GAN + lambda_kl L_KL

Every term is a pure function of tensors. Reductions (documented choices; the paper gives
none): L_MSE and L_Diff are means over all elements; L_KL is the KL summed over the latent
elements of a sample, averaged over the batch, as in LDM / WF-VAE, so that the usual
lambda_kl ~ 1e-6 applies. The KL covers the observed latents only: the padded ones are not
encoder outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pvvae.model.distributions import DiagonalGaussian


@dataclass
class LossWeights:
    """The lambdas of Eq. 1, plus the switch of the motion-aware term (paper Table 4).

    ``lambda_lpips`` and ``lambda_gan`` default to 0: their terms need the LPIPS backbone and
    the discriminator, which the training stages configure.
    """

    lambda_rec: float = 1.0
    lambda_lpips: float = 0.0
    lambda_gan: float = 0.0
    lambda_kl: float = 1e-6
    motion_loss: bool = True


def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L_MSE: mean squared error over all elements. (B, C, T, H, W) x 2 -> scalar."""
    return F.mse_loss(pred, target)


def temporal_difference(x: Tensor) -> Tensor:
    """Differences of adjacent frames. (B, C, T, H, W) -> (B, C, T - 1, H, W)."""
    return x[:, :, 1:] - x[:, :, :-1]


def motion_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L_Diff, the motion-aware objective: MSE between temporal differences of output and input.

    Static regions have zero difference in both, so this term concentrates on motion
    (paper section 3.2). Zero for single frames. (B, C, T, H, W) x 2 -> scalar.
    """
    if pred.shape[2] < 2:
        return pred.new_zeros(())
    return F.mse_loss(temporal_difference(pred), temporal_difference(target))


def kl_loss(posterior: DiagonalGaussian) -> Tensor:
    """L_KL: KL(q(z|x_obs) || N(0, I)) summed over latent elements, averaged over the batch."""
    return posterior.kl().mean()


def compose_loss(terms: Mapping[str, Tensor], weights: LossWeights) -> Tensor:
    """Eq. 1 from named terms ``mse``, ``diff``, ``lpips``, ``gan``, ``kl`` (missing ones are 0).

    ``diff`` is ignored when ``weights.motion_loss`` is False.
    """
    zero = next(iter(terms.values())).new_zeros(())
    rec = terms.get("mse", zero) + (terms.get("diff", zero) if weights.motion_loss else zero)
    return (
        weights.lambda_rec * rec
        + weights.lambda_lpips * terms.get("lpips", zero)
        + weights.lambda_gan * terms.get("gan", zero)
        + weights.lambda_kl * terms.get("kl", zero)
    )


@torch.no_grad()
def observed_and_predicted_mse(
    pred: Tensor, target: Tensor, num_observed_frames: int
) -> dict[str, float]:
    """Reconstruction error reported separately on observed and on predicted (dropped) frames.

    Returns ``{"mse_observed": ..., "mse_predicted": ...}``; the second key is absent when no
    frame was dropped.
    """
    n = num_observed_frames
    out = {"mse_observed": F.mse_loss(pred[:, :, :n], target[:, :, :n]).item()}
    if n < pred.shape[2]:
        out["mse_predicted"] = F.mse_loss(pred[:, :, n:], target[:, :, n:]).item()
    return out
