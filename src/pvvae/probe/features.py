"""Diffusion features of a frozen Latte for probing (paper section 4.3).

The paper reads "the 14th layer (out of 28) of the LVDM" and says nothing else. Choices made here
(all options of :class:`FeatureConfig`):

* **Input.** The clip is encoded by the VAE the Latte was trained on, the posterior mean is
  normalised with the VAE's own statistics (exactly what the latent cache stores,
  :func:`pvvae.gen.cache.normalized_posterior`), then noised along the rectified-flow path
  ``x_t = (1 - t) x0 + t eps`` (:func:`pvvae.gen.flow.interpolate`).
* **Layer.** 1-based, as :meth:`pvvae.gen.latte.Latte.features`; ``None`` is the middle block
  ``depth // 2`` (14 of 28 for Latte-XL, the paper's choice). ``layer=0`` returns the normalised
  latents themselves: the "VAE latents only" reference, no diffusion model involved.
* **Flow time.** ``t = 0.05`` by default. Diffusion-feature work (DIFT, Tang et al. 2023) reads
  features at a small noise level (``t = 261`` of 1000 DDPM steps for Stable Diffusion) so that
  the network sees a "noisy training input" yet little of the content is destroyed. Measured
  on the proving ground (a CPU-scale Latte, block 4 of 8, flow head on 1,024 clips, held-out
  EPE against 1.2748 for zero flow): 1.1608 at ``t = 0.05``, 1.2722 at ``t = 0.2`` (1.2432
  averaging 8 draws): at ``t = 0.2`` the noise hides the motion of 4x4-position latents.
* **Noise draws.** ``num_draws`` independent ``eps`` whose features are averaged (DIFT averages
  an ensemble of 8); 1 by default on the CPU. The draws come from a generator seeded by
  ``seed``, so features are deterministic.
* **Label.** A class-conditional Latte gets its null label (unconditional features: the probe
  must not be told the class).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pvvae.gen.cache import normalized_posterior
from pvvae.gen.flow import interpolate
from pvvae.gen.latte import Latte


@dataclass(frozen=True)
class FeatureConfig:
    """How features are read (module docstring).

    Attributes:
        layer: 1-based Latte block; ``None`` = ``depth // 2``; ``0`` = the VAE latents.
        t: rectified-flow time of the noised input, in ``[0, 1)`` (0 = clean latents).
        num_draws: noise draws averaged.
        seed: seed of the noise.
    """

    layer: int | None = None
    t: float = 0.05
    num_draws: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.t < 1.0:
            raise ValueError(f"feature time t={self.t}: use a value in [0, 1) (1 is pure noise)")
        if self.num_draws < 1:
            raise ValueError(f"num_draws={self.num_draws}: need at least one noise draw")


class FeatureExtractor:
    """Frozen VAE + Latte: video clips -> feature maps (no gradients).

    Args:
        vae: a ``PVVAE`` (the one whose latents the Latte was trained on).
        latte: the trained :class:`~pvvae.gen.latte.Latte`.
        config: :class:`FeatureConfig`.

    Attributes:
        layer: the resolved 1-based layer (0 for latents).
        channels: feature channels ``D`` (Latte width, or latent channels for ``layer=0``).
        spatial_factor: pixels per feature cell along H and W (VAE factor x Latte patch).
        temporal_factor: the VAE's temporal compression (frames per latent frame after the
            first, causal one).
    """

    def __init__(self, vae, latte: Latte, config: FeatureConfig = FeatureConfig()) -> None:
        depth = latte.config.depth
        self.layer = depth // 2 if config.layer is None else int(config.layer)
        if not 0 <= self.layer <= depth:
            raise ValueError(f"feature layer {self.layer}: the Latte has layers 0..{depth}")
        self.vae, self.latte, self.config = vae.eval(), latte.eval(), config
        for p in (*vae.parameters(), *latte.parameters()):
            p.requires_grad_(False)
        self.channels = latte.config.in_channels if self.layer == 0 else latte.config.hidden_size
        patch = 1 if self.layer == 0 else latte.config.patch_size
        self.spatial_factor = vae.spatial_compression * patch
        self.temporal_factor = vae.temporal_compression

    @property
    def device(self) -> torch.device:
        return next(self.latte.parameters()).device

    @torch.no_grad()
    def __call__(self, video: Tensor) -> Tensor:
        """Features of a batch of clips.

        Args:
            video: (B, 3, T, H, W) in ``[-1, 1]``, ``T = 1 + k * temporal_factor``, ``H`` and
                ``W`` multiples of ``spatial_factor``.

        Returns:
            (B, D, t, H / spatial_factor, W / spatial_factor) float32 features, with
            ``t = 1 + (T - 1) / temporal_factor``.
        """
        x0, _ = normalized_posterior(self.vae, video.to(self.device))  # (B, C, t, h, w)
        if self.layer == 0:
            return x0.float()
        cfg = self.config
        y = None
        if self.latte.conditional:
            y = torch.full((x0.shape[0],), self.latte.null_label, device=x0.device)  # (B,)
        t = torch.full((x0.shape[0],), cfg.t, device=x0.device)  # (B,)
        generator = torch.Generator(device=x0.device).manual_seed(cfg.seed)
        total = None
        for _ in range(cfg.num_draws):
            eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
            x_t = interpolate(x0, eps, t)  # (B, C, t, h, w)
            f = self.latte.features(x_t, t, y, layers=(self.layer,))[self.layer]  # (B, D, ...)
            total = f if total is None else total + f
        return (total / cfg.num_draws).float()  # (B, D, t, h/p, w/p)
