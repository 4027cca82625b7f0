"""The diffusers video VAEs PV-VAE is compared with (paper Table 2), as :class:`VAEAdapter`.

Per-model quirks handled here:

- Wan2.1 / Wan2.2 (``AutoencoderKLWan``): T = 1 + 4k (other counts are silently truncated by
  diffusers); Wan2.2 patchifies 2x2 internally (t4s16c48). Normalisation ``(z - mean) / std``.
  A folder fine-tuned with predictive reconstruction (``pad_token.safetensors`` beside the
  diffusers files, :mod:`pvvae.model.diffusers_vae`) also predicts.
- CogVideoX (``AutoencoderKLCogVideoX``): T = 1 + 8k, since it encodes frames in batches of 8
  and decodes latents in pairs after an odd first batch (a 1 + 4k clip with an even latent count
  decodes to the wrong length). Normalisation ``z * scaling_factor``.
- HunyuanVideo (``AutoencoderKLHunyuanVideo``): T = 1 + 4k. Normalisation ``z * scaling_factor``.
- LTX-Video (``AutoencoderKLLTXVideo``): T = 1 + 8k (t8s32c128); decoders with timestep
  conditioning (0.9.1+) are decoded at timestep 0 without noise, the pipeline's default.
  Normalisation ``(z - mean) * scaling_factor / std``.

:func:`load_diffusers_vae` reads any of them from a model folder or a pipeline folder with a
``vae/`` sub-folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pvvae.eval.vae_adapter import VAEAdapter
from pvvae.inference.spec import DIFFUSERS_CLASSES, config_class_name
from pvvae.model.diffusers_vae import PAD_TOKEN_FILE


def _stat_tensor(values, z: Tensor) -> Tensor:
    """Per-channel values as a (1, C, 1, 1, 1) tensor on z's device."""
    return torch.as_tensor(values, dtype=z.dtype, device=z.device).reshape(1, -1, 1, 1, 1)


class WanAdapter(VAEAdapter):
    """``AutoencoderKLWan`` with a Wan2.1 (t4s8c16) or Wan2.2 (t4s16c48, 2x2 patchify) config.

    Args:
        model: the ``AutoencoderKLWan``.
        folder: the folder it was read from; when it holds ``pad_token.safetensors`` (a VAE
            fine-tuned with predictive reconstruction) the adapter predicts (paper section 3.1).
        other arguments as :class:`VAEAdapter`.
    """

    kind = "wan"

    def __init__(self, model, folder: Path | None = None, **kwargs) -> None:
        cfg = model.config
        patch = cfg.patch_size or 1
        predictive = folder is not None and (Path(folder) / PAD_TOKEN_FILE).is_file()
        family = "Wan2.2 VAE" if patch > 1 else "Wan2.1 VAE"
        super().__init__(
            model,
            name=f"{family} + predictive fine-tuning" if predictive else family,
            temporal_compression=2 ** sum(bool(t) for t in cfg.temperal_downsample),
            spatial_compression=2 ** (len(cfg.dim_mult) - 1) * patch,
            latent_channels=cfg.z_dim,
            **kwargs,
        )
        self.predictor = None
        if predictive:  # the wrapper shares the weights; only the token is added
            from pvvae.model.diffusers_vae import DiffusersPVVAE

            self.predictor = DiffusersPVVAE.wrap(self.model, folder)  # token on its device
            self.predictor.requires_grad_(False).eval()
            self.supports_prediction = True

    @torch.no_grad()
    def predict(self, x_obs: Tensor, num_future: int) -> Tensor:
        """See :meth:`VAEAdapter.predict`: encode the observed prefix, pad the future latent
        frames with the fine-tuned padding token, decode (``DiffusersPVVAE.predict``)."""
        if self.predictor is None:
            return super().predict(x_obs, num_future)
        self._check_pixels(x_obs)
        x_obs = x_obs.to(device=self.device, dtype=self.dtype)
        return self.predictor.predict(x_obs, num_future).float().clamp(-1.0, 1.0)

    def normalize(self, z: Tensor) -> Tensor:
        """``(z - latents_mean) / latents_std`` (the Wan pipelines)."""
        cfg = self.model.config
        return (z - _stat_tensor(cfg.latents_mean, z)) / _stat_tensor(cfg.latents_std, z)


class CogVideoXAdapter(VAEAdapter):
    """``AutoencoderKLCogVideoX`` (t4s8c16); clips are padded to 1 + 8k frames."""

    kind = "cogvideox"

    def __init__(self, model, **kwargs) -> None:
        cfg = model.config
        t = int(cfg.temporal_compression_ratio)
        super().__init__(
            model,
            name="CogVideoX VAE",
            temporal_compression=t,
            spatial_compression=2 ** (len(cfg.block_out_channels) - 1),
            latent_channels=cfg.latent_channels,
            frame_multiple=2 * t,  # frames in batches of 8, latents decoded in pairs
            **kwargs,
        )

    def normalize(self, z: Tensor) -> Tensor:
        """``z * scaling_factor`` (the CogVideoX pipelines)."""
        return z * self.model.config.scaling_factor


class HunyuanVideoAdapter(VAEAdapter):
    """``AutoencoderKLHunyuanVideo`` (t4s8c16)."""

    kind = "hunyuan"

    def __init__(self, model, **kwargs) -> None:
        cfg = model.config
        super().__init__(
            model,
            name="HunyuanVideo VAE",
            temporal_compression=cfg.temporal_compression_ratio,
            spatial_compression=cfg.spatial_compression_ratio,
            latent_channels=cfg.latent_channels,
            **kwargs,
        )

    def normalize(self, z: Tensor) -> Tensor:
        """``z * scaling_factor`` (the HunyuanVideo pipeline)."""
        return z * self.model.config.scaling_factor


class LTXVideoAdapter(VAEAdapter):
    """``AutoencoderKLLTXVideo`` (t8s32c128 for LTX-Video); clips padded to 1 + 8k frames."""

    kind = "ltx"

    def __init__(self, model, **kwargs) -> None:
        super().__init__(
            model,
            name="LTX-Video VAE",
            temporal_compression=model.temporal_compression_ratio,
            spatial_compression=model.spatial_compression_ratio,
            latent_channels=model.config.latent_channels,
            **kwargs,
        )

    def _decode_raw(self, z: Tensor) -> Tensor:
        """Decode; timestep-conditioned decoders get timestep 0 (the LTX pipeline default)."""
        temb = None
        if self.model.config.timestep_conditioning:
            temb = torch.zeros(z.shape[0], device=z.device, dtype=z.dtype)
        return self.model.decode(z, temb).sample

    def normalize(self, z: Tensor) -> Tensor:
        """``(z - latents_mean) * scaling_factor / latents_std`` (the LTX pipelines)."""
        mean = self.model.latents_mean.view(1, -1, 1, 1, 1).to(z)
        std = self.model.latents_std.view(1, -1, 1, 1, 1).to(z)
        return (z - mean) * self.model.config.scaling_factor / std


# spec kind -> (diffusers class name, adapter class)
_ADAPTERS = {
    "wan": WanAdapter,
    "cogvideox": CogVideoXAdapter,
    "hunyuan": HunyuanVideoAdapter,
    "ltx": LTXVideoAdapter,
}
DIFFUSERS_KINDS = {kind: (name, _ADAPTERS[kind]) for kind, name in DIFFUSERS_CLASSES.items()}


def _diffusers_subfolder(path: Path, class_name: str) -> str | None:
    """None for a model folder, "vae" for a pipeline folder; checks the class name."""
    for subfolder, config in ((None, path / "config.json"), ("vae", path / "vae" / "config.json")):
        found = config_class_name(config)
        if found is None:
            continue
        if found != class_name:
            raise ValueError(f"{config} describes {found}, not {class_name}")
        return subfolder
    raise FileNotFoundError(
        f"{path}: no config.json of a {class_name} (looked in {path} and {path / 'vae'})"
    )


def load_diffusers_vae(
    kind: str,
    path: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    label: str | None = None,
) -> VAEAdapter:
    """Load a diffusers video VAE from a local folder (model or pipeline layout).

    Args:
        kind: "wan", "cogvideox", "hunyuan" or "ltx".
        path: folder with config.json + weights, or a pipeline folder with ``vae/``.
        device, dtype, label: as in :class:`VAEAdapter`.
    """
    import diffusers

    class_name, adapter_class = DIFFUSERS_KINDS[kind]
    path = Path(path)
    subfolder = _diffusers_subfolder(path, class_name)
    # torch_dtype at load time keeps any module diffusers marks as float32-only in float32
    model = getattr(diffusers, class_name).from_pretrained(
        path, subfolder=subfolder, torch_dtype=dtype, low_cpu_mem_usage=False
    )
    extra = {"folder": path / (subfolder or "")} if adapter_class is WanAdapter else {}
    return adapter_class(
        model, source=f"{kind}:{path}", device=device, dtype=dtype, label=label, **extra
    )
