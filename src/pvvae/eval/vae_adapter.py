"""The interface every VAE has in the evaluation harness (:class:`VAEAdapter`).

The evaluation (:mod:`pvvae.eval.recon`, :mod:`pvvae.eval.latents`) sees every VAE as:

    encode(x)            x (B, 3, T, H, W) in [-1, 1]  ->  z (B, C, t, h, w), posterior mean
    decode(z, T)         z (B, C, t, h, w)             ->  x (B, 3, T, H, W), float32
    reconstruct(x)       decode(encode(x)), same shape as x, clamped to [-1, 1]
    predict(x_obs, n)    observed frames + n predicted ones (predictive VAEs, paper section 3.1)
    normalize(z)         the latent scaling the model's own diffusion pipeline applies

Latents are **raw** (not normalised): the posterior mean ``latent_dist.mode()``. Every model
accepts any frame count: the clip is padded by repeating its last frame to the next length the
model handles exactly and the output is trimmed back to T (the "4k + 1" rule users trip over).
The layout is written ``tTsScC`` (paper Table 1): temporal factor T, spatial S, C channels.
The adapters of each model are in :mod:`pvvae.eval.adapters` (PV-VAE, and the specs that name
a VAE) and :mod:`pvvae.eval.diffusers_adapters` (Wan, CogVideoX, HunyuanVideo, LTX-Video).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PredictionNotSupported(NotImplementedError):
    """Raised by :meth:`VAEAdapter.predict` for VAEs not trained to predict dropped frames."""


class VAEAdapter:
    """Common evaluation interface of a video VAE (see the module docstring).

    Subclasses implement :meth:`_encode_mean` and :meth:`_decode_raw` on inputs whose frame
    count is already valid, and may override :meth:`normalize` and :meth:`predict`.

    Args:
        model: the wrapped ``nn.Module`` (moved to ``device`` / ``dtype``, eval mode).
        name: model family shown in reports, e.g. "Wan2.1 VAE".
        source: where it was loaded from (spec or folder).
        temporal_compression, spatial_compression, latent_channels: the tTsScC layout.
        frame_multiple: the model handles T = 1 + frame_multiple * k exactly
            (default ``temporal_compression``).
        device, dtype: where the model runs; outputs are always float32.
        label: row label for tables (default ``name``).
    """

    kind = "base"
    supports_prediction = False

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        source: str,
        temporal_compression: int,
        spatial_compression: int,
        latent_channels: int,
        frame_multiple: int | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        label: str | None = None,
    ) -> None:
        model = model.to(device)
        if next(model.parameters()).dtype != dtype:  # diffusers warns on no-op dtype casts
            model = model.to(dtype=dtype)
        self.model = model.eval().requires_grad_(False)
        self.name = name
        self.label = label or name
        self.source = source
        self.temporal_compression = temporal_compression
        self.spatial_compression = spatial_compression
        self.latent_channels = latent_channels
        self.frame_multiple = frame_multiple or temporal_compression
        self.device = torch.device(device)
        self.dtype = dtype

    # ------------------------------------------------------------------ description
    @property
    def latent_layout(self) -> str:
        """``tTsScC`` (paper Table 1), e.g. ``t4s16c64``."""
        t, s, c = self.temporal_compression, self.spatial_compression, self.latent_channels
        return f"t{t}s{s}c{c}"

    def num_parameters(self) -> int:
        """Parameters of the wrapped model (encoder and decoder)."""
        return sum(p.numel() for p in self.model.parameters())

    def describe(self) -> dict:
        """JSON-ready summary: label, name, kind, source, layout, parameters, device, dtype."""
        return {
            "label": self.label,
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "latent_layout": self.latent_layout,
            "parameters": self.num_parameters(),
            "supports_prediction": self.supports_prediction,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    # ------------------------------------------------------------------ frames
    def valid_num_frames(self, num_frames: int) -> int:
        """Smallest ``1 + frame_multiple * k >= num_frames``: the length the model processes."""
        m = self.frame_multiple
        return 1 + m * -(-(num_frames - 1) // m)

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames t of a clip of ``num_frames`` frames: ``1 + ceil((T - 1) / t_factor)``."""
        return 1 + (self.valid_num_frames(num_frames) - 1) // self.temporal_compression

    def _check_pixels(self, x: Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"expected pixels (B, 3, T, H, W), got {tuple(x.shape)}")
        s = self.spatial_compression
        if x.shape[3] % s or x.shape[4] % s:
            raise ValueError(
                f"{self.label}: height and width must be multiples of {s}, got "
                f"{x.shape[3]}x{x.shape[4]}"
            )

    def _pad_frames(self, x: Tensor) -> Tensor:
        """Repeat the last frame up to :meth:`valid_num_frames`. (B, 3, T, H, W) -> (.., T', ..)."""
        missing = self.valid_num_frames(x.shape[2]) - x.shape[2]
        if missing == 0:
            return x
        return torch.cat([x, x[:, :, -1:].expand(-1, -1, missing, -1, -1)], dim=2)

    # ------------------------------------------------------------------ the interface
    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Posterior mean of the latents of ``x``.

        Args:
            x: (B, 3, T, H, W) in [-1, 1], H and W multiples of the spatial factor.

        Returns:
            (B, C, t, H / s, W / s) float32 raw latents, t = :meth:`latent_frames` (T).
        """
        self._check_pixels(x)
        x = self._pad_frames(x).to(device=self.device, dtype=self.dtype)
        return self._encode_mean(x).float()

    @torch.no_grad()
    def decode(self, z: Tensor, num_frames: int | None = None) -> Tensor:
        """Pixels of raw latents.

        Args:
            z: (B, C, t, h, w) raw latents.
            num_frames: trim the output to this many frames (default: all decoded frames).

        Returns:
            (B, 3, T, h * s, w * s) float32, not clamped.
        """
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise ValueError(
                f"expected latents (B, {self.latent_channels}, t, h, w), got {tuple(z.shape)}"
            )
        x = self._decode_raw(z.to(device=self.device, dtype=self.dtype)).float()
        return x if num_frames is None else x[:, :, :num_frames]

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Encode (posterior mean) and decode. (B, 3, T, H, W) -> the same shape, in [-1, 1]."""
        x_hat = self.decode(self.encode(x), num_frames=x.shape[2])
        if x_hat.shape != x.shape:
            raise RuntimeError(
                f"{self.label}: reconstruction has shape {tuple(x_hat.shape)} for input "
                f"{tuple(x.shape)}"
            )
        return x_hat.clamp(-1.0, 1.0)

    def predict(self, x_obs: Tensor, num_future: int) -> Tensor:
        """Reconstruct observed frames and predict ``num_future`` more (paper Figure 6).

        Args:
            x_obs: (B, 3, n, H, W) in [-1, 1].
            num_future: frames to predict after the observed ones.

        Returns:
            (B, 3, n + num_future, H, W) float32 in [-1, 1].

        Raises:
            PredictionNotSupported: for VAEs without a predictive decoder.
        """
        raise PredictionNotSupported(
            f"{self.label} ({self.kind}) cannot predict future frames: only PV-VAE is trained "
            "with predictive reconstruction (paper section 3.1)"
        )

    def normalize(self, z: Tensor) -> Tensor:
        """Latents as the model's diffusion pipeline feeds them to the generator.

        Args:
            z: (B, C, t, h, w) raw latents.

        Returns:
            Tensor of the same shape (identity for models without stored statistics).
        """
        return z

    # ------------------------------------------------------------------ model hooks
    def _encode_mean(self, x: Tensor) -> Tensor:
        """Posterior mean of valid-length pixels in the model dtype."""
        return self.model.encode(x).latent_dist.mode()

    def _decode_raw(self, z: Tensor) -> Tensor:
        """Pixels (B, 3, T', H, W) of latents in the model dtype."""
        return self.model.decode(z).sample
