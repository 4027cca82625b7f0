"""The maths of the latent diagnostics (paper section 4.3): channel statistics, LTD, PCA.

- :class:`ChannelStats`: per-channel mean and population std of latents over every position,
  in float64 with Chan's parallel update (what ``vae.normalize`` and the latent cache use).
- :func:`latent_temporal_distance`: the Latent Temporal Distance ("the average L2 distance
  between latents across varying intervals"), defined in :mod:`pvvae.eval.latents`.
- :func:`pca_project` / :func:`pca_rgb`: the top principal components of latent vectors, and a
  clip's top 3 as RGB images (paper Figure 4).
"""

from __future__ import annotations

import torch
from einops import rearrange


class ChannelStats:
    """Running per-channel mean and population std of latents, in float64.

    Chan et al.'s parallel update merges the (count, mean, M2) of each batch, which stays
    accurate where ``E[z^2] - E[z]^2`` would cancel.

    Args:
        channels: C.
    """

    def __init__(self, channels: int) -> None:
        self.count = 0
        self.mean_ = torch.zeros(channels, dtype=torch.float64)
        self.m2 = torch.zeros(channels, dtype=torch.float64)

    def update(self, z: torch.Tensor) -> None:
        """Add latents (B, C, t, h, w): every (b, t, h, w) position is one sample per channel."""
        values = rearrange(z.detach().double().cpu(), "b c t h w -> c (b t h w)")
        n = values.shape[1]
        mean = values.mean(dim=1)
        m2 = (values - mean[:, None]).pow(2).sum(dim=1)
        total = self.count + n
        delta = mean - self.mean_
        self.mean_ = self.mean_ + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.pow(2) * (self.count * n / total)
        self.count = total

    @property
    def mean(self) -> torch.Tensor:
        """(C,) float64 mean."""
        return self.mean_.clone()

    @property
    def std(self) -> torch.Tensor:
        """(C,) float64 population standard deviation (divisor N)."""
        if self.count == 0:
            raise ValueError("no latents were added")
        return (self.m2 / self.count).sqrt()


def latent_temporal_distance(z: torch.Tensor) -> torch.Tensor:
    """Latent Temporal Distance of each clip at every interval (definition in the module doc).

    Args:
        z: (B, C, G, h, w) latents.

    Returns:
        (B, G - 1) float64: column d - 1 holds LTD_d, for d = 1..G-1.
    """
    z = z.detach().double()
    columns = []
    for d in range(1, z.shape[2]):
        diff = z[:, :, d:] - z[:, :, :-d]  # (B, C, G - d, h, w)
        columns.append(diff.norm(dim=1).mean(dim=(1, 2, 3)))  # channel L2 -> (B,)
    if not columns:
        return z.new_zeros(z.shape[0], 0)
    return torch.stack(columns, dim=1)  # (B, G - 1)


def pca_project(vectors: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Project vectors on their top-k principal components.

    Args:
        vectors: (N, C) samples.
        k: components kept; columns beyond C are zero.

    Returns:
        (N, k) float64 projections of the centred vectors, and (k,) explained-variance ratios.
        Each component's sign makes its largest-magnitude loading positive (deterministic).
    """
    x = vectors.double()
    x = x - x.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)  # vh: (min(N, C), C)
    components = vh[:k]
    largest = components.abs().argmax(dim=1)
    signs = components.gather(1, largest[:, None]).sign()
    components = components * torch.where(signs == 0, 1.0, signs)
    projection = x @ components.T  # (N, k')
    variance = s.pow(2)
    ratio = variance[:k] / variance.sum().clamp_min(1e-300)
    missing = k - projection.shape[1]
    if missing > 0:
        projection = torch.cat([projection, projection.new_zeros(len(x), missing)], dim=1)
        ratio = torch.cat([ratio, ratio.new_zeros(missing)])
    return projection, ratio


def pca_rgb(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-3 PCA components of one clip's latents as RGB images (paper Figure 4).

    Args:
        z: (C, t, h, w) latents of one clip.

    Returns:
        (t, h, w, 3) float64 in [0, 1] (each component min-max scaled over the clip; a constant
        component maps to 0.5), and the (3,) explained-variance ratios.
    """
    c, t, h, w = z.shape
    projection, ratio = pca_project(rearrange(z, "c t h w -> (t h w) c"))  # (t*h*w, 3)
    lo, hi = projection.min(dim=0).values, projection.max(dim=0).values
    span = hi - lo
    rgb = torch.where(span > 0, (projection - lo) / span.clamp_min(1e-300), 0.5)
    return rearrange(rgb, "(t h w) k -> t h w k", t=t, h=h, w=w), ratio


def group_end_frames(num_latent: int, num_frames: int, temporal_compression: int) -> list[int]:
    """The input frame ending each latent group: 0, then ``t_factor * j`` (capped at T - 1)."""
    return [min(temporal_compression * j, num_frames - 1) for j in range(num_latent)]
