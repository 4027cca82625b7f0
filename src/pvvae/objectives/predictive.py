"""Predictive reconstruction (paper section 3.1, "Integrating predictive learning ...").

A clip of 1 + T frames is split into G = 1 + T / p_t groups: the first frame alone, then
groups of p_t = 4 frames. Each training step samples the number of dropped future groups

    k ~ U{0, ..., floor((G - 1) * r)}        (r = maximum dropping ratio; the first frame stays),

encodes only the first 1 + T - k * p_t frames into G - k latent frames, appends k padding
latents (:meth:`pvvae.PVVAE.pad_latents`) and decodes the whole clip, which the loss compares
with the whole clip. r = 0 always gives k = 0: plain reconstruction, the baseline, through the
same code path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pvvae.model.autoencoder import PVVAE
from pvvae.model.distributions import DiagonalGaussian


def num_groups(num_frames: int, temporal_compression: int = 4) -> int:
    """G = 1 + T / p_t for a clip of 1 + T frames. Raises if T is not a multiple of p_t."""
    if num_frames < 1 or (num_frames - 1) % temporal_compression:
        raise ValueError(
            f"a training clip needs 1 + {temporal_compression}k frames, got {num_frames}"
        )
    return 1 + (num_frames - 1) // temporal_compression


def max_dropped_groups(groups: int, max_drop_ratio: float) -> int:
    """floor((G - 1) * r): the largest k that can be drawn."""
    if not 0.0 <= max_drop_ratio <= 1.0:
        raise ValueError(f"max_drop_ratio must be in [0, 1], got {max_drop_ratio}")
    # The small epsilon keeps e.g. (5 - 1) * 0.75 = 3 exact under float rounding.
    return math.floor((groups - 1) * max_drop_ratio + 1e-9)


def sample_num_dropped(
    groups: int, max_drop_ratio: float, generator: torch.Generator | None = None
) -> int:
    """Draw k ~ U{0, ..., floor((G - 1) r)} (one draw per training step)."""
    k_max = max_dropped_groups(groups, max_drop_ratio)
    return int(torch.randint(0, k_max + 1, (1,), generator=generator).item())


@dataclass
class PredictiveOutput:
    """Result of one predictive-reconstruction forward pass.

    Attributes:
        x_hat: (B, 3, 1 + T, H, W) decoded clip (observed and predicted frames).
        posterior: posterior over the G - k observed latent frames.
        k: dropped groups.
        num_observed_frames: 1 + T - k * p_t, frames given to the encoder.
    """

    x_hat: Tensor
    posterior: DiagonalGaussian
    k: int
    num_observed_frames: int


def predictive_reconstruction(
    vae: PVVAE,
    x: Tensor,
    k: int,
    sample_posterior: bool = True,
    generator: torch.Generator | None = None,
) -> PredictiveOutput:
    """Encode the observed prefix of ``x``, pad k latent frames and decode the whole clip.

    Runs the encoder and decoder on the whole (short) training clip at once, without the
    inference-time chunking, tiling and input checks of :meth:`PVVAE.encode`.

    Args:
        vae: the model (any :class:`~pvvae.model.common.VideoVAEMixin`: PV-VAE, PV-VAE* or
            a wrapped diffusers VAE).
        x: (B, 3, 1 + T, H, W) in [-1, 1].
        k: dropped groups (see :func:`sample_num_dropped`); 0 is plain reconstruction.
        sample_posterior: sample z (training) or take the posterior mean.
    """
    ct = vae.temporal_compression
    groups = num_groups(x.shape[2], ct)
    if not 0 <= k < groups:
        raise ValueError(f"k={k} dropped groups is out of range for G={groups}")
    n_obs = x.shape[2] - ct * k
    posterior = DiagonalGaussian(vae.forward_encoder(x[:, :, :n_obs]))  # (B, Cz, G - k, h, w)
    z = posterior.sample(generator) if sample_posterior else posterior.mode()
    x_hat = vae.forward_decoder(vae.pad_latents(z, k, generator))  # (B, 3, 1 + T, H, W)
    return PredictiveOutput(x_hat=x_hat, posterior=posterior, k=k, num_observed_frames=n_obs)
