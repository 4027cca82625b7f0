"""``PVVAE``: the Predictive Video VAE with a diffusers-style API (paper section 3).

A causal 3D-convolutional VAE with 4x temporal and 16x spatial compression to 64 channels
(``paper`` preset, t4s16c64). Clips have 1 + T frames: the first frame maps to its own latent
frame and every following group of 4 frames to one more, so an image is the T = 0 case.

    x (B, 3, 1 + 4k, H, W) in [-1, 1]  --encode-->  z (B, 64, 1 + k, H/16, W/16)
    z                                  --decode-->  x_hat (B, 3, 1 + 4k, H, W)

``encode`` returns **raw** latents (the posterior of the encoder, not normalised).
Diffusion models should train on ``vae.normalize(z)`` and decode ``vae.denormalize(z_gen)``;
``latents_mean`` / ``latents_std`` live in the config and are measured with
``pvvae eval latents``.

Predictive reconstruction (paper section 3.1) needs two more pieces, both here so that training
and inference share them: a learnable padding token (:meth:`pad_latents`) and
:meth:`predict`, which encodes an observed prefix and decodes the whole clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from pvvae.model.blocks import FrameAttention
from pvvae.model.common import PAD_MODES, VideoVAEMixin  # noqa: F401 (PAD_MODES re-exported)
from pvvae.model.networks import Decoder, Encoder


class PVVAE(VideoVAEMixin, ModelMixin, ConfigMixin):
    """Predictive Video VAE.

    Args:
        in_channels, out_channels: pixel channels (3).
        latent_channels: Cz, channels of the latent (64 in the paper).
        encoder_channels, encoder_layers: width and residual blocks of each encoder stage,
            from full resolution down (one more stage than downsamplings).
        decoder_channels, decoder_layers: the same for the decoder (also listed from full
            resolution down).
        temporal_downsample: for each of the spatial x2 downsamplings, whether it also halves
            time. The paper's t4s16 layout is (True, True, False, False).
        pad_mode: how dropped latent frames are filled in predictive reconstruction:
            "learnable" (a learned Cz-vector broadcast over h x w, the paper's default) or
            "gaussian" (fresh N(0, I) samples), paper Table 6.
        patch_shortcut: add a linear pixel-group <-> latent path beside the deep encoder and
            decoder (:class:`~pvvae.model.networks.PatchShortcut`; not in the paper's model,
            off in ``paper``, on in ``tiny``, whose deep path alone stays at the mean image
            in a CPU-length run). The linear path starts at zero in the decoder.
        resample_shortcut: parameter-free residual paths around every down- and upsampling
            (block means down, repeats up; Wan2.2's AvgDown3D / DupUp3D). On in every preset:
            without them the deep path of a small model collapses to the mean image.
        latents_mean, latents_std: per-channel statistics of the latents (Cz values each),
            used by :meth:`normalize` / :meth:`denormalize`; ``None`` means 0 and 1.
    """

    _supports_gradient_checkpointing = True  # per residual / mid block (networks.run_block)
    _repeated_blocks = ["ResBlock", "FrameAttention"]  # checkpointing / FSDP units
    # Blocks that accelerate's device_map must keep on one device (each owns a skip sum or
    # an attention over the whole frame).
    _no_split_modules = ["ResBlock", "MidBlock", "Downsample", "Upsample"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        latent_channels: int = 64,
        encoder_channels: Sequence[int] = (32, 64, 128, 128, 128),
        encoder_layers: Sequence[int] = (1, 1, 1, 1, 1),
        decoder_channels: Sequence[int] = (32, 64, 128, 128, 128),
        decoder_layers: Sequence[int] = (1, 1, 1, 1, 1),
        temporal_downsample: Sequence[bool] = (True, True, False, False),
        pad_mode: str = "learnable",
        patch_shortcut: bool = False,
        resample_shortcut: bool = True,
        latents_mean: Sequence[float] | None = None,
        latents_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        n_down = len(temporal_downsample)
        for name, value in (
            ("encoder_channels", encoder_channels),
            ("encoder_layers", encoder_layers),
            ("decoder_channels", decoder_channels),
            ("decoder_layers", decoder_layers),
        ):
            if len(value) != n_down + 1:
                raise ValueError(
                    f"{name} has {len(value)} entries but temporal_downsample has {n_down}: "
                    f"give one entry per resolution stage ({n_down + 1})."
                )
        self.check_latent_config(latent_channels, pad_mode, latents_mean, latents_std)
        self.encoder = Encoder(
            in_channels, 2 * latent_channels, encoder_channels, encoder_layers,
            temporal_downsample, patch_shortcut, resample_shortcut,
        )
        self.decoder = Decoder(
            latent_channels, out_channels, decoder_channels, decoder_layers,
            temporal_downsample, patch_shortcut, resample_shortcut,
        )
        # The padding token of predictive reconstruction: one Cz-vector, broadcast over
        # (t, h, w) like a masked-modelling mask token (paper Table 6, "learnable").
        self.pad_token = nn.Parameter(torch.randn(latent_channels) * 0.02)
        self.initialize_weights()
        self.spatial_compression = 2**n_down
        self.temporal_compression = 2 ** sum(bool(t) for t in temporal_downsample)
        self.init_runtime_options()

    # ------------------------------------------------------------------ construction
    def initialize_weights(self) -> None:
        """Variance-preserving init: N(0, 1/fan_in) weights and zero biases for every conv/linear.

        PyTorch's default (uniform, a = sqrt(5)) shrinks activations by about sqrt(3) per layer,
        and its random biases then dominate what the per-position RMS norms see, so that a
        fresh encoder maps every input to nearly the same latent. The attention output
        projections stay at zero (each attention block starts as the identity), and the
        posterior starts narrow (log-variance bias -4, std 0.14): with std 1 the sampled latents
        are mostly noise and a fresh decoder learns to ignore them; the KL term widens the
        posterior as training sees fit.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.Linear)):
                fan_in = module.weight[0].numel()
                nn.init.normal_(module.weight, 0.0, fan_in**-0.5)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, FrameAttention):
                nn.init.zeros_(module.proj.weight)
        with torch.no_grad():
            self.encoder.conv_out.conv.bias[self.config.latent_channels :] = -4.0
            if self.encoder.shortcut is not None:  # the linear path starts on the mean only
                self.encoder.shortcut.proj.weight[self.config.latent_channels :] = 0.0
                nn.init.zeros_(self.decoder.shortcut.proj.weight)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> PVVAE:
        """A randomly initialised model of a named preset (see :data:`pvvae.PRESETS`)."""
        from pvvae.model.presets import preset_config

        return cls(**preset_config(name, **overrides))

    def get_last_layer(self) -> Tensor:
        """The decoder's last weight (the adaptive GAN weight is measured there)."""
        return self.decoder.conv_out.conv.weight
