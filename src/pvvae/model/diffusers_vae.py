"""Predictive reconstruction for an existing diffusers video VAE (paper section 3.1).

The paper says predictive reconstruction "integrates into existing video VAE pipelines without
altering the loss composition". :class:`DiffusersPVVAE` puts a diffusers ``AutoencoderKLWan``
(Wan2.1: t4s8c16; Wan2.2: t4s16c48 with 2x2 patchify) behind the interface the PV-VAE trainer,
the evaluation harness and the demo use (:class:`~pvvae.model.common.VideoVAEMixin`), and
adds the one thing predictive reconstruction needs beside it: a learnable padding token
(a Cz-vector, paper Table 6) that fills the latent frames of the dropped groups.

    x (B, 3, 1 + 4k, H, W) --forward_encoder--> posterior parameters (B, 2Cz, 1 + k, h, w)
    z (B, Cz, 1 + k, h, w) --forward_decoder--> x_hat (B, 3, 1 + 4k, H, W)

The diffusers model is the submodule ``vae``, so its state dict is unchanged: a fine-tuned
model exports (:meth:`DiffusersPVVAE.save_diffusers`) to a plain diffusers folder that
``AutoencoderKLWan.from_pretrained(folder)`` and the Wan pipelines load as it is, plus
``pad_token.safetensors`` beside it, which :meth:`DiffusersPVVAE.from_diffusers` (and the
evaluation harness) read for :meth:`predict`.

Training runs the encoder and decoder on the whole clip in the same causal chunks as
diffusers (1 frame, then 4 frames per chunk for the encoder; one latent frame per chunk for
the decoder), threading the causal cache explicitly from chunk to chunk. Two differences from
``AutoencoderKLWan.decode``, both for training only: the output is not clamped to [-1, 1]
(a clamped pixel has no gradient, so a prediction stuck outside the range would never come
back), and with ``gradient_checkpointing`` each chunk is recomputed in the backward pass from
its input and the cache it received (the blocks mutate a shared cache, so per-block
checkpointing, as for PV-VAE, would recompute with the wrong cache).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from pvvae.model.common import VideoVAEMixin
from pvvae.model.distributions import DiagonalGaussian

SUPPORTED_CLASSES = ("AutoencoderKLWan",)
PAD_TOKEN_FILE = "pad_token.safetensors"  # beside the diffusers files of an exported model
NEW_PREFIX = "new:"  # model.source "diffusers:new:CLASS": a randomly initialised model

# Random-weight AutoencoderKLWan configs by name (model.preset with a "diffusers:new:" source).
# wan2.1 / wan2.2 are the layouts of the released VAEs (Wan2.1: t4s8c16, 127M; Wan2.2
# TI2V-5B: t4s16c48, 2x2 patchify, residual resampling); tiny is the t4s16c64 reference of
# bench/learning.py (8.6M), the proving-ground scale. Latent statistics default to 0 / 1.
WAN_PRESETS: dict[str, dict[str, Any]] = {
    "wan2.1": dict(
        base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
        temperal_downsample=[False, True, True], is_residual=False,
        scale_factor_spatial=8, scale_factor_temporal=4,
    ),
    "wan2.2": dict(
        base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
        temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
        out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
    ),
    "tiny": dict(
        base_dim=28, decoder_base_dim=28, z_dim=64, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
        temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
        out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
    ),
}


def _diffusers_class(name: str) -> type:
    if name not in SUPPORTED_CLASSES:
        raise ValueError(
            f"{name!r} is not a supported diffusers VAE for predictive fine-tuning; "
            f"supported: {SUPPORTED_CLASSES}"
        )
    import diffusers

    return getattr(diffusers, name)


def wan_config(preset: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``AutoencoderKLWan`` constructor arguments of a :data:`WAN_PRESETS` entry.

    ``overrides`` take any constructor argument (unknown names are a ValueError); latent
    statistics default to zeros and ones of the latent width.
    """
    import inspect

    if preset not in WAN_PRESETS:
        raise ValueError(
            f"unknown AutoencoderKLWan preset {preset!r}; valid: {sorted(WAN_PRESETS)}"
        )
    cls = _diffusers_class("AutoencoderKLWan")
    valid = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(overrides or {}) - valid)
    if unknown:
        raise ValueError(f"unknown AutoencoderKLWan argument(s) {unknown}; valid: {sorted(valid)}")
    config = {**WAN_PRESETS[preset], **(overrides or {})}
    z_dim = config["z_dim"]
    config.setdefault("latents_mean", [0.0] * z_dim)
    config.setdefault("latents_std", [1.0] * z_dim)
    return config


class DiffusersPVVAE(VideoVAEMixin, ModelMixin, ConfigMixin):
    """A diffusers causal video VAE trained with predictive reconstruction (module docstring).

    Args:
        vae_class: the diffusers class, one of :data:`SUPPORTED_CLASSES`.
        vae_config: its constructor arguments (the ``config.json`` diffusers writes).
        pad_mode: "learnable" (a Cz-vector broadcast over h x w) or "gaussian" (paper Table 6).
    """

    _supports_gradient_checkpointing = True  # per temporal chunk (module docstring)
    _repeated_blocks = ["WanResidualBlock", "WanAttentionBlock"]  # FSDP units
    supports_streaming = False  # whole clips only: the CLI says so (pvvae.inference.loading)

    @register_to_config
    def __init__(
        self,
        vae_class: str = "AutoencoderKLWan",
        vae_config: dict[str, Any] | None = None,
        pad_mode: str = "learnable",
    ) -> None:
        super().__init__()
        cls = _diffusers_class(vae_class)
        config = {k: v for k, v in (vae_config or {}).items() if not k.startswith("_")}
        self.vae = cls(**config)
        cfg = self.vae.config
        self.check_latent_config(cfg.z_dim, pad_mode, cfg.latents_mean, cfg.latents_std)
        self.pad_token = nn.Parameter(torch.randn(cfg.z_dim) * 0.02)
        self.patch_size = cfg.patch_size or 1
        self.spatial_compression = 2 ** (len(cfg.dim_mult) - 1) * self.patch_size
        self.temporal_compression = 2 ** sum(bool(t) for t in cfg.temperal_downsample)
        self.gradient_checkpointing = False
        self.init_runtime_options()

    # ------------------------------------------------------------------ construction
    @classmethod
    def new(cls, preset: str = "tiny", pad_mode: str = "learnable", **overrides) -> DiffusersPVVAE:
        """A randomly initialised ``AutoencoderKLWan`` of a :data:`WAN_PRESETS` layout."""
        return cls("AutoencoderKLWan", wan_config(preset, overrides), pad_mode)

    @classmethod
    def from_diffusers(cls, folder: str | Path, pad_mode: str = "learnable") -> DiffusersPVVAE:
        """Wrap a saved diffusers VAE: a model folder or a pipeline folder with ``vae/``.

        Its ``pad_token.safetensors`` (written by :meth:`save_diffusers`) is loaded when
        present; otherwise the token starts at small random values (fine-tuning a released
        VAE, which never saw one).
        """
        folder = diffusers_model_folder(folder)
        name = json.loads((folder / "config.json").read_text()).get("_class_name")
        vae = _diffusers_class(str(name)).from_pretrained(folder, low_cpu_mem_usage=False)
        return cls.wrap(vae, folder, pad_mode)

    @classmethod
    def wrap(
        cls, vae: nn.Module, folder: str | Path | None = None, pad_mode: str = "learnable"
    ) -> DiffusersPVVAE:
        """Wrap a loaded diffusers VAE (weights shared, not copied); read the padding token
        of ``folder`` when it has one."""
        config = {k: v for k, v in vae.config.items() if not k.startswith("_")}
        file = Path(folder) / PAD_TOKEN_FILE if folder is not None else None
        if file is not None and file.is_file():
            pad_mode = _read_pad_mode(file)
        with torch.device("meta"):  # no second random init of the wrapped weights
            model = cls(type(vae).__name__, config, pad_mode)
        model.vae = vae
        model.pad_token = nn.Parameter(
            torch.randn(config["z_dim"], device=_device_of(vae)) * 0.02
        )
        if file is not None and file.is_file():
            token = load_file(file)["pad_token"]
            if token.shape != model.pad_token.shape:
                raise ValueError(
                    f"{file} holds a padding token of shape {tuple(token.shape)}; the VAE in "
                    f"{folder} has {config['z_dim']} latent channels"
                )
            with torch.no_grad():
                model.pad_token.copy_(token)
        return model

    def save_diffusers(self, folder: str | Path) -> Path:
        """Write the diffusers model (``save_pretrained``: config.json + weights, loadable by
        ``AutoencoderKLWan.from_pretrained``) and ``pad_token.safetensors`` beside it."""
        folder = Path(folder)
        self.vae.save_pretrained(folder)
        save_file(
            {"pad_token": self.pad_token.detach().float().cpu().contiguous()},
            folder / PAD_TOKEN_FILE,
            metadata={"pad_mode": self.config.pad_mode, "format": "pvvae padding token"},
        )
        return folder

    # ------------------------------------------------------------------ the layout
    @property
    def latent_channels(self) -> int:
        """Cz, the diffusers ``z_dim``."""
        return self.vae.config.z_dim

    @property
    def pixel_channels(self) -> int:
        """Channels of the pixels (3), before the diffusers patchify."""
        return self.vae.config.in_channels // self.patch_size**2

    def get_last_layer(self) -> Tensor:
        """The decoder's last weight (the adaptive GAN weight is measured there)."""
        return self.vae.decoder.conv_out.weight

    def encoder_modules(self) -> list[nn.Module]:
        """The modules that map pixels to the posterior (frozen in the decoder stage)."""
        return [self.vae.encoder, self.vae.quant_conv]

    def decoder_modules(self) -> list[nn.Module]:
        return [self.vae.post_quant_conv, self.vae.decoder]

    # ------------------------------------------------------------------ training path
    def forward_encoder(self, x: Tensor) -> Tensor:
        """Posterior parameters of a whole clip, as ``AutoencoderKLWan.encode`` computes them.

        x (B, 3, 1 + 4k, H, W) -> (B, 2Cz, 1 + k, H / s, W / s). No tiling or slicing.
        """
        ct = self.temporal_compression
        if (x.shape[2] - 1) % ct:
            raise ValueError(
                f"{self.config.vae_class} encodes 1 + {ct}k frames, got {x.shape[2]} (diffusers "
                "would drop the extra frames silently); pad the clip by repeating its last frame"
            )
        x = _patchify(x, self.patch_size)  # (B, 3 p^2, T, H / p, W / p)
        chunks = [x[:, :, :1], *x[:, :, 1:].split(ct, dim=2)] if x.shape[2] > 1 else [x]
        out = self._run_chunks(self.vae.encoder, chunks, first_chunk=None)
        return self.vae.quant_conv(out)

    def forward_decoder(self, z: Tensor) -> Tensor:
        """Pixels of latents, as ``AutoencoderKLWan.decode`` computes them but not clamped.

        z (B, Cz, t, h, w) -> (B, 3, 1 + 4(t - 1), h s, w s).
        """
        x = self.vae.post_quant_conv(z)
        out = self._run_chunks(self.vae.decoder, list(x.split(1, dim=2)), first_chunk=True)
        return _unpatchify(out, self.patch_size)

    def _run_chunks(self, net: nn.Module, chunks: list[Tensor], first_chunk: bool | None) -> Tensor:
        """Run ``net`` over temporal chunks, passing the causal cache explicitly.

        Each chunk is a pure function (chunk, cache in) -> (output, cache out), so it can be
        recomputed under activation checkpointing.
        """
        cache: tuple[Tensor | None, ...] = (None,) * sum(
            isinstance(m, nn.Conv3d) and type(m).__name__ == "WanCausalConv3d"
            for m in net.modules()
        )
        outs = []
        for i, chunk in enumerate(chunks):
            kwargs = {} if first_chunk is None else {"first_chunk": first_chunk and i == 0}
            if self.gradient_checkpointing and torch.is_grad_enabled():
                out, cache = checkpoint(_chunk_step, net, chunk, cache, kwargs, use_reentrant=False)
            else:
                out, cache = _chunk_step(net, chunk, cache, kwargs)
            outs.append(out)
        return torch.cat(outs, dim=2)

    # ------------------------------------------------------------------ inference
    def encode(
        self, x: Tensor, return_dict: bool = True
    ) -> AutoencoderKLOutput | tuple[DiagonalGaussian]:
        """Posterior over raw latents by the diffusers ``encode`` (its tiling and slicing).

        x (B, 3, T, H, W) in [-1, 1]; T not of the form 1 + 4k is padded by repeating the
        last frame (diffusers would truncate it). Returns latents (B, Cz, 1 + ceil((T-1)/4),
        H / s, W / s).
        """
        self.check_pixels(x)
        params = self.vae.encode(self.pad_frames(x)).latent_dist.parameters
        posterior = DiagonalGaussian(params)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, z: Tensor, return_dict: bool = True) -> DecoderOutput | tuple[Tensor]:
        """Pixels of raw latents by the diffusers ``decode`` (clamped to [-1, 1], as there)."""
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise ValueError(
                f"expected latents (B, {self.latent_channels}, t, h, w), got {tuple(z.shape)}"
            )
        x = self.vae.decode(z).sample
        return DecoderOutput(sample=x) if return_dict else (x,)

    def enable_tiling(self, tile_size: int = 256, tile_stride: int = 192) -> None:
        """The diffusers model's spatial tiling, with tiles and stride in pixels."""
        super().enable_tiling(tile_size, tile_stride)
        self.vae.enable_tiling(tile_size, tile_size, tile_stride, tile_stride)

    def disable_tiling(self) -> None:
        super().disable_tiling()
        self.vae.disable_tiling()

    def enable_slicing(self) -> None:
        super().enable_slicing()
        self.vae.enable_slicing()

    def disable_slicing(self) -> None:
        super().disable_slicing()
        self.vae.disable_slicing()

    def latent_stat_values(self) -> tuple[list[float], list[float]]:
        """Per-channel (mean, std) of the diffusers config (what the Wan pipelines use)."""
        return self.vae.config.latents_mean, self.vae.config.latents_std

    def set_latent_stats(self, mean, std) -> None:
        """Store per-channel latent statistics in the diffusers config (the Wan pipelines
        normalise with them)."""
        c = self.latent_channels
        if len(mean) != c or len(std) != c:
            raise ValueError(f"expected {c} means and stds, got {len(mean)} and {len(std)}")
        mean, std = [float(v) for v in mean], [float(v) for v in std]
        self.vae.register_to_config(latents_mean=mean, latents_std=std)
        self.register_to_config(vae_config={**self.config.vae_config, "latents_mean": mean,
                                            "latents_std": std})

    def _streaming_unsupported(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} has no chunk-by-chunk streaming; encode/decode whole clips "
            "(enable_tiling bounds the memory)"
        )

    encode_chunk = decode_chunk = iter_encode = iter_decode = _streaming_unsupported


class _Slots:
    """Indexable slots that module hooks pass through as they are (not a list).

    Wan's blocks update the causal cache in place (``feat_cache[i] = ...``, ``feat_idx[0] +=
    1``). FSDP2's pre-forward hook rebuilds every list, tuple or dict among a unit's arguments
    that holds a tensor requiring grad (``replace_grad_tensors``): the blocks then wrote into
    the copy, the cache was lost between chunks, and FSDP2 trained another function than DDP.
    FSDP2 does not traverse other objects, so these slots reach the blocks unchanged.
    """

    def __init__(self, items) -> None:
        self.items = list(items)

    def __getitem__(self, i):
        return self.items[i]

    def __setitem__(self, i, value) -> None:
        self.items[i] = value


def _chunk_step(
    net: nn.Module, x: Tensor, cache: tuple[Tensor | None, ...], kwargs: dict
) -> tuple[Tensor, tuple[Tensor | None, ...]]:
    """One causal chunk through a Wan encoder or decoder: (output, the updated cache)."""
    feat_cache, feat_idx = _Slots(cache), _Slots([0])
    out = net(x, feat_cache=feat_cache, feat_idx=feat_idx, **kwargs)
    return out, tuple(feat_cache.items)


def _patchify(x: Tensor, p: int) -> Tensor:
    from diffusers.models.autoencoders.autoencoder_kl_wan import patchify

    return x if p == 1 else patchify(x, p)


def _unpatchify(x: Tensor, p: int) -> Tensor:
    from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

    return x if p == 1 else unpatchify(x, p)


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _read_pad_mode(file: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(file), "pt") as f:
        return (f.metadata() or {}).get("pad_mode", "learnable")


def diffusers_model_folder(path: str | Path) -> Path:
    """The folder of a diffusers VAE: ``path`` itself or its ``vae/`` (pipeline layout).

    Raises:
        FileNotFoundError: neither holds a config.json.
        ValueError: the config names a class that predictive fine-tuning does not support.
    """
    path = Path(path)
    for folder in (path, path / "vae"):
        file = folder / "config.json"
        if file.is_file():
            try:
                name = json.loads(file.read_text()).get("_class_name")
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{file} is not a readable JSON model config ({e})") from e
            if name not in SUPPORTED_CLASSES:
                raise ValueError(
                    f"{file} describes {name!r}; predictive fine-tuning supports "
                    f"{SUPPORTED_CLASSES} (a Wan2.1 / Wan2.2 VAE folder or pipeline folder)"
                )
            return folder
    raise FileNotFoundError(
        f"{path}: no diffusers VAE here (no config.json in {path} or {path / 'vae'}); pass a "
        "folder saved by save_pretrained, e.g. Wan2.2-TI2V-5B-Diffusers/vae"
    )
