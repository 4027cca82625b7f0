"""What every PV-VAE architecture shares, whatever its networks (paper section 3).

:class:`VideoVAEMixin` holds the parts of the public API that do not depend on how the
encoder and decoder are built: the runtime options (slicing, tiling, temporal chunking),
frame-count handling (1 + 4k frames), the padding latents and :meth:`predict` of predictive
reconstruction (paper section 3.1), and the latent statistics behind
:meth:`normalize` / :meth:`denormalize`; the encode / decode path itself (chunks, slices,
tiles, streams) is :class:`~pvvae.model.codec.ChunkedCodecMixin`, which it includes. The
CNN :class:`~pvvae.model.autoencoder.PVVAE` and the Transformer
:class:`~pvvae.model.transformer.TransformerPVVAE` both inherit it.

A class using the mixin provides ``self.config`` (diffusers ``ConfigMixin``) with
``latent_channels``, ``pad_mode``, ``latents_mean`` and ``latents_std``; the attributes
``spatial_compression``, ``temporal_compression`` and ``pad_token`` (a Cz-vector); and
the networks ``encoder(x, ctx, slice_frames)`` and ``decoder(z, ctx, slice_frames)``, on
which the shared inference path (input checks, encode / decode with chunks, slices and
tiles, streaming with explicit causal states, forward) runs unchanged. The trainer reaches
the networks only through :meth:`forward_encoder`, :meth:`forward_decoder`,
:meth:`encoder_modules` and :meth:`decoder_modules`, which a wrapper of another library's
VAE (:class:`~pvvae.model.diffusers_vae.DiffusersPVVAE`) overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from diffusers.models.autoencoders.vae import DecoderOutput
from torch import Tensor, nn

from pvvae.model.codec import ChunkedCodecMixin

PAD_MODES = ("learnable", "gaussian")


class VideoVAEMixin(ChunkedCodecMixin):
    """Architecture-independent methods of the PV-VAE models (see the module docstring)."""

    @staticmethod
    def check_latent_config(
        latent_channels: int,
        pad_mode: str,
        latents_mean: Sequence[float] | None,
        latents_std: Sequence[float] | None,
    ) -> None:
        """Raise a ValueError naming the problem if the latent part of a config is invalid."""
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode={pad_mode!r}; valid: {PAD_MODES}")
        for name, stats in (("latents_mean", latents_mean), ("latents_std", latents_std)):
            if stats is not None and len(stats) != latent_channels:
                raise ValueError(f"{name} has {len(stats)} values, expected {latent_channels}")

    def init_runtime_options(self) -> None:
        """Set the runtime options (not part of the config, as in diffusers) to defaults."""
        self.use_slicing = False
        self.use_tiling = False
        self.tile_size, self.tile_stride = 256, 192
        self.chunk_latent_frames: int | None = 8
        self.slice_frames: int | None = 1
        self.check_range = False  # opt-in pixel-range check (costs two host syncs)

    # ------------------------------------------------------------------ the layout
    @property
    def latent_channels(self) -> int:
        """Cz, channels of the latent."""
        return self.config.latent_channels

    @property
    def pixel_channels(self) -> int:
        """Channels of the pixels (3)."""
        return self.config.in_channels

    @property
    def latent_layout(self) -> str:
        """``tTsScC`` (paper Table 1 notation, as :attr:`pvvae.eval.VAEAdapter.latent_layout`),
        e.g. ``t4s16c64``."""
        return f"t{self.temporal_compression}s{self.spatial_compression}c{self.latent_channels}"

    # ------------------------------------------------------------------ training path
    def forward_encoder(self, x: Tensor) -> Tensor:
        """Posterior parameters of a whole short clip, without the chunking, tiling and input
        checks of :meth:`encode` (the training path). (B, 3, 1 + 4k, H, W) ->
        (B, 2Cz, 1 + k, H / 16, W / 16)."""
        return self.encoder(x)

    def forward_decoder(self, z: Tensor) -> Tensor:
        """Pixels of latents (B, Cz, t, h, w), whole clip at once, not clamped (training)."""
        return self.decoder(z)

    def encoder_modules(self) -> list[nn.Module]:
        """The modules that map pixels to the posterior (frozen in the decoder stage)."""
        return [self.encoder]

    def decoder_modules(self) -> list[nn.Module]:
        """The modules that map latents to pixels."""
        return [self.decoder]

    # ------------------------------------------------------------------ runtime options
    def enable_range_check(self, enable: bool = True) -> None:
        """Make :meth:`encode` raise on pixels outside [-1, 1] (e.g. 0..255 frames).

        Off by default: the check reads the data (two host syncs per call) and is skipped
        under ``torch.compile`` / ``torch.export``.
        """
        self.check_range = enable

    def enable_slicing(self) -> None:
        """Encode / decode one sample of the batch at a time (lower peak memory)."""
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False

    def enable_tiling(self, tile_size: int = 256, tile_stride: int = 192) -> None:
        """Process frames larger than ``tile_size`` pixels in blended spatial tiles.

        ``tile_size`` and ``tile_stride`` are in pixels and must be multiples of the spatial
        compression (16); the overlap ``tile_size - tile_stride`` is blended with weights that
        sum to one, ramping over its middle half (:func:`pvvae.model.tiling.blend_weights`).
        """
        s = self.spatial_compression
        if tile_size % s or tile_stride % s or not 0 < tile_stride <= tile_size:
            raise ValueError(
                f"tile_size={tile_size}, tile_stride={tile_stride}: both must be multiples of "
                f"{s} with 0 < tile_stride <= tile_size"
            )
        self.use_tiling, self.tile_size, self.tile_stride = True, tile_size, tile_stride

    def disable_tiling(self) -> None:
        self.use_tiling = False

    def set_chunk_size(
        self, latent_frames: int | None, slice_frames: int | None | Literal["keep"] = "keep"
    ) -> None:
        """Temporal chunking of encode/decode (None: whole clip at once).

        Args:
            latent_frames: latent frames per chunk (default 8). Chunking keeps activation
                memory constant in the video length.
            slice_frames: inside each chunk, the full-resolution part of the encoder (up to
                its first temporal downsampling) and of the decoder (from its temporal
                upsamplings on) run on this many frames at a time (default 1; None: the whole
                chunk). These parts hold 4x more frames than the latent chunk at the highest
                resolutions, so this sets the peak memory. Unchanged if omitted.

        Results equal whole-clip processing up to float rounding.
        """
        for name, value in (("chunk size", latent_frames), ("slice size", slice_frames)):
            if value not in (None, "keep") and value < 1:
                raise ValueError(f"{name} must be >= 1 frame or None, got {value}")
        self.chunk_latent_frames = latent_frames
        if slice_frames != "keep":
            self.slice_frames = slice_frames

    # ------------------------------------------------------------------ frame counts
    def valid_num_frames(self, num_frames: int) -> int:
        """Smallest 1 + 4k >= ``num_frames``: the length the model actually processes."""
        ct = self.temporal_compression
        return 1 + ct * -(-(num_frames - 1) // ct)

    def pad_frames(self, x: Tensor) -> Tensor:
        """Repeat the last frame until T = 1 + 4k. (B, C, T, H, W) -> (B, C, 1 + 4k, H, W).

        Any frame count is accepted this way; :meth:`forward` trims the output back to T.
        """
        missing = self.valid_num_frames(x.shape[2]) - x.shape[2]
        if missing == 0:
            return x
        return torch.cat([x, x[:, :, -1:].expand(-1, -1, missing, -1, -1)], dim=2)

    # ------------------------------------------------------------------ prediction
    def pad_latents(
        self, z_obs: Tensor, k: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Append k padding latent frames to the observed ones (paper section 3.1, Table 6).

        Args:
            z_obs: (B, Cz, G - k, h, w) latents of the observed frames.
            k: number of dropped groups to pad.
            generator: noise source for ``pad_mode="gaussian"``.
        Returns:
            (B, Cz, G, h, w): z_obs followed by k frames of the learnable token broadcast over
            h x w, or of N(0, I) samples.
        """
        if k == 0:
            return z_obs
        b, c, _, h, w = z_obs.shape
        if self.config.pad_mode == "gaussian":
            pad = torch.randn(
                (b, c, k, h, w), generator=generator, device=z_obs.device, dtype=z_obs.dtype
            )
        else:
            pad = self.pad_token.to(z_obs.dtype).view(1, c, 1, 1, 1).expand(b, c, k, h, w)
        return torch.cat([z_obs, pad], dim=2)

    @torch.no_grad()
    def predict(
        self,
        x_obs: Tensor,
        num_future_frames: int,
        sample_posterior: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Reconstruct observed frames and predict future ones (paper Figure 6).

        The encoder sees the longest prefix of ``x_obs`` of length 1 + 4m; the latent
        sequence is padded as in training so that it covers the observed and future frames,
        and the decoder produces the whole clip. Observed frames beyond that prefix (when
        ``x_obs`` has not 1 + 4m frames) are predicted together with the future.

        Args:
            x_obs: (B, 3, n, H, W) in [-1, 1], n >= 1.
            num_future_frames: how many frames to predict after the observed ones.
        Returns:
            (B, 3, n + num_future_frames, H, W): reconstruction followed by prediction.
        """
        self.check_pixels(x_obs)
        if num_future_frames < 0:
            raise ValueError(f"num_future_frames must be >= 0, got {num_future_frames}")
        ct = self.temporal_compression
        n = x_obs.shape[2]
        observed = 1 + ct * ((n - 1) // ct)  # frames the encoder sees
        posterior = self.encode(x_obs[:, :, :observed]).latent_dist
        z_obs = posterior.sample(generator) if sample_posterior else posterior.mode()
        total = self.valid_num_frames(n + num_future_frames)
        k = (total - 1) // ct + 1 - z_obs.shape[2]
        z = self.pad_latents(z_obs, k, generator)
        return self.decode(z).sample[:, :, : n + num_future_frames]

    # ------------------------------------------------------------------ latent statistics
    def latent_stat_values(self) -> tuple[Sequence[float], Sequence[float]]:
        """Per-channel (mean, std) of the raw latents: the config's, else 0 and 1."""
        c = self.latent_channels
        return self.config.latents_mean or [0.0] * c, self.config.latents_std or [1.0] * c

    def _stats(self, z: Tensor) -> tuple[Tensor, Tensor]:
        mean, std = self.latent_stat_values()
        shape = (1, self.latent_channels) + (1,) * (z.ndim - 2)
        as_tensor = lambda v: torch.tensor(v, device=z.device, dtype=z.dtype).view(shape)  # noqa: E731
        return as_tensor(mean), as_tensor(std)

    def normalize(self, z: Tensor) -> Tensor:
        """(z - latents_mean) / latents_std per channel: the input of a diffusion model."""
        mean, std = self._stats(z)
        return (z - mean) / std

    def denormalize(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`normalize`: maps generated latents back for :meth:`decode`."""
        mean, std = self._stats(z)
        return z * std + mean

    def set_latent_stats(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Store per-channel latent statistics in the config (saved by save_pretrained)."""
        c = self.config.latent_channels
        if len(mean) != c or len(std) != c:
            raise ValueError(f"expected {c} means and stds, got {len(mean)} and {len(std)}")
        self.register_to_config(
            latents_mean=[float(v) for v in mean], latents_std=[float(v) for v in std]
        )

    # ------------------------------------------------------------------ input handling
    def check_pixels(self, x: Tensor) -> None:
        """Raise a ValueError naming the problem if ``x`` is not a valid pixel batch.

        Shape checks always run (they cost nothing and never break a compiled graph). The
        value-range check reads the data (a host sync and a data-dependent branch), so it
        runs only when ``self.check_range`` is set (:meth:`enable_range_check`) and never
        while compiling; values outside [-1, 1] are otherwise accepted, as in diffusers.
        """
        if x.ndim != 5:
            hint = " For images use x.unsqueeze(2) (T = 1)." if x.ndim == 4 else ""
            raise ValueError(
                f"expected pixels of shape (B, C, T, H, W), got {tuple(x.shape)}.{hint}"
            )
        if x.shape[1] != self.pixel_channels:
            raise ValueError(
                f"expected {self.pixel_channels} channels in dim 1 (B, C, T, H, W), got "
                f"shape {tuple(x.shape)}; channel-last input needs x.permute(0, 4, 1, 2, 3)"
            )
        s = self.spatial_compression
        if x.shape[3] % s or x.shape[4] % s:
            raise ValueError(
                f"height and width must be multiples of {s}, got {x.shape[3]}x{x.shape[4]}; "
                "resize or crop first (pvvae.data.fit_to_multiple)"
            )
        if not self.check_range or torch.compiler.is_compiling():
            return
        lo, hi = float(x.min()), float(x.max())  # two host syncs: opt-in only
        if lo < -1.001 or hi > 1.001:
            raise ValueError(
                f"pixel values must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}]; "
                "uint8 frames map with x / 127.5 - 1"
            )

    # ------------------------------------------------------------------ full pass
    def forward(
        self,
        sample: Tensor,
        sample_posterior: bool = False,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> DecoderOutput | tuple[Tensor]:
        """Reconstruct ``sample`` (B, 3, T, H, W); the output has the same shape.

        Uses the posterior mode unless ``sample_posterior``.
        """
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        x = self.decode(z).sample[:, :, : sample.shape[2]]
        return DecoderOutput(sample=x) if return_dict else (x,)
