"""One interface over PV-VAE and the diffusers video VAEs it is compared with (seed Table 2).

The evaluation harness (:mod:`pvvae.eval.recon`, :mod:`pvvae.eval.latents`) sees every VAE as a
:class:`VAEAdapter`:

    encode(x)            x (B, 3, T, H, W) in [-1, 1]  ->  z (B, C, t, h, w), posterior mean
    decode(z, T)         z (B, C, t, h, w)             ->  x (B, 3, T, H, W), float32
    reconstruct(x)       decode(encode(x)), same shape as x, clamped to [-1, 1]
    predict(x_obs, n)    observed frames + n predicted ones (PV-VAE only, seed section 3.1)
    normalize(z)         the latent scaling the model's own diffusion pipeline applies

Latents are **raw** (not normalised): the posterior mean ``latent_dist.mode()``. Every model
accepts any frame count: the clip is padded by repeating its last frame to the next length the
model handles exactly and the output is trimmed back to T (the "4k + 1" rule users trip over).
The layout is written ``tTsScC`` (seed Table 1): temporal factor T, spatial S, C channels.

Per-model quirks handled here:

- PV-VAE: T = 1 + 4k; :meth:`predict` pads dropped latent groups with the learned token.
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

Specs name a VAE on the command line: ``pvvae:PATH`` (model, checkpoint or run folder),
``pvvae-preset:NAME`` (random weights), ``wan:PATH``, ``cogvideox:PATH``, ``hunyuan:PATH``,
``ltx:PATH`` (a diffusers model folder or a whole pipeline folder with a ``vae/`` sub-folder),
or a bare folder whose ``config.json`` names the class. ``LABEL=SPEC`` sets the row label.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import Tensor, nn

from pvvae.model.diffusers_vae import PAD_TOKEN_FILE
from pvvae.model.registry import class_names


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
        """``tTsScC`` (seed Table 1), e.g. ``t4s16c64``."""
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
        """Reconstruct observed frames and predict ``num_future`` more (seed Figure 6).

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
            "with predictive reconstruction (seed section 3.1)"
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


def _stat_tensor(values, z: Tensor) -> Tensor:
    """Per-channel values as a (1, C, 1, 1, 1) tensor on z's device."""
    return torch.as_tensor(values, dtype=z.dtype, device=z.device).reshape(1, -1, 1, 1, 1)


class PVVAEAdapter(VAEAdapter):
    """:class:`pvvae.PVVAE` (seed section 3): t4s16c64 for the paper preset, with prediction.

    Args:
        model: a ``PVVAE``.
        folder: the model folder it was read from (where ``--write-config`` writes), or None.
        other arguments as :class:`VAEAdapter`.
    """

    kind = "pvvae"
    supports_prediction = True

    def __init__(self, model, folder: Path | None = None, **kwargs) -> None:
        super().__init__(
            model,
            name=_pvvae_name(model),
            temporal_compression=model.temporal_compression,
            spatial_compression=model.spatial_compression,
            latent_channels=model.latent_channels,
            **kwargs,
        )
        self.folder = folder

    @torch.no_grad()
    def predict(self, x_obs: Tensor, num_future: int) -> Tensor:
        """See :meth:`VAEAdapter.predict`; uses ``PVVAE.predict`` (posterior mean, learned pad)."""
        self._check_pixels(x_obs)
        x_obs = x_obs.to(device=self.device, dtype=self.dtype)
        return self.model.predict(x_obs, num_future).float().clamp(-1.0, 1.0)

    def normalize(self, z: Tensor) -> Tensor:
        """``(z - latents_mean) / latents_std`` from the config (identity when unset)."""
        return self.model.normalize(z)


def _pvvae_name(model) -> str:
    """"PV-VAE", or the diffusers class of a fine-tuned wrapper (``DiffusersPVVAE``)."""
    vae_class = getattr(model.config, "vae_class", None)
    return f"{vae_class} + predictive fine-tuning" if vae_class else "PV-VAE"


class WanAdapter(VAEAdapter):
    """``AutoencoderKLWan`` with a Wan2.1 (t4s8c16) or Wan2.2 (t4s16c48, 2x2 patchify) config.

    Args:
        model: the ``AutoencoderKLWan``.
        folder: the folder it was read from; when it holds ``pad_token.safetensors`` (a VAE
            fine-tuned with predictive reconstruction) the adapter predicts (seed section 3.1).
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


# diffusers class name -> (spec kind, adapter class)
DIFFUSERS_KINDS = {
    "wan": ("AutoencoderKLWan", WanAdapter),
    "cogvideox": ("AutoencoderKLCogVideoX", CogVideoXAdapter),
    "hunyuan": ("AutoencoderKLHunyuanVideo", HunyuanVideoAdapter),
    "ltx": ("AutoencoderKLLTXVideo", LTXVideoAdapter),
}
SPEC_KINDS = ("pvvae", "pvvae-preset", *DIFFUSERS_KINDS)
_LABEL = re.compile(r"^([^=:/\\]+)=(.+)$")


def parse_spec(spec: str) -> tuple[str | None, str, str]:
    """Split ``[LABEL=]KIND:TARGET`` (or a bare folder) into (label, kind, target).

    A bare folder gets its kind from its ``config.json`` (see :func:`detect_kind`).

    Raises:
        ValueError: unknown kind.
    """
    label = None
    match = _LABEL.match(spec)
    if match:
        label, spec = match.group(1).strip(), match.group(2)
    kind, sep, target = spec.partition(":")
    if sep and kind in SPEC_KINDS:
        return label, kind, target
    if sep and re.fullmatch(r"[a-z0-9.-]+", kind) and not Path(spec).exists():
        raise ValueError(f"unknown VAE kind {kind!r} in {spec!r}; valid kinds: {SPEC_KINDS}")
    return label, detect_kind(Path(spec)), spec


def _class_name(config_file: Path) -> str | None:
    if not config_file.is_file():
        return None
    return json.loads(config_file.read_text()).get("_class_name")


def detect_kind(path: Path) -> str:
    """Spec kind of a folder: a PV-VAE model/checkpoint/run folder or a diffusers VAE/pipeline.

    Raises:
        FileNotFoundError: the folder is none of these.
    """
    if (path / "checkpoints").is_dir():
        return "pvvae"
    for sub in (".", "ema", "vae"):
        name = _class_name(path / sub / "config.json")
        if name in class_names():  # PVVAE or TransformerPVVAE
            return "pvvae"
        for kind, (class_name, _) in DIFFUSERS_KINDS.items():
            if name == class_name:
                return kind
    raise FileNotFoundError(
        f"cannot tell which VAE {path} holds (no config.json naming PVVAE or one of "
        f"{[c for c, _ in DIFFUSERS_KINDS.values()]}); write the kind, e.g. wan:{path}"
    )


def _diffusers_subfolder(path: Path, class_name: str) -> str | None:
    """None for a model folder, "vae" for a pipeline folder; checks the class name."""
    for subfolder, config in ((None, path / "config.json"), ("vae", path / "vae" / "config.json")):
        found = _class_name(config)
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


def load_pvvae(
    target: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    label: str | None = None,
    preset: bool = False,
) -> PVVAEAdapter:
    """PV-VAE from a model/checkpoint/run folder (EMA weights preferred), or a named preset.

    Args:
        target: folder for :func:`pvvae.training.checkpoint.load_model`, or a preset name.
        preset: ``target`` is a preset name: random weights drawn with seed 0 (tests, demos),
            without touching the caller's global RNG state.
    """
    from pvvae.model.registry import from_preset
    from pvvae.training.checkpoint import load_model, model_folder

    if preset:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = from_preset(str(target))
        return PVVAEAdapter(
            model, source=f"pvvae-preset:{target}", device=device, dtype=dtype, label=label
        )
    folder = model_folder(target)
    return PVVAEAdapter(
        load_model(target, "cpu"),
        folder=folder,
        source=f"pvvae:{target}",
        device=device,
        dtype=dtype,
        label=label,
    )


def load_vae(
    spec: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> VAEAdapter:
    """Load any VAE the harness knows from a spec (syntax in the module docstring).

    Examples: ``pvvae:runs/x``, ``pvvae-preset:tiny``, ``wan:/models/Wan2.1-T2V-1.3B-Diffusers``
    (pipeline folder), ``base=pvvae:runs/baseline`` (labelled row).

    Args:
        spec: the VAE spec.
        device: where to run it.
        dtype: model dtype (float32 default; bfloat16 for speed, outputs stay float32).

    Returns:
        The adapter, in eval mode without gradients.
    """
    label, kind, target = parse_spec(spec)
    if kind == "pvvae-preset":
        return load_pvvae(target, device, dtype, label, preset=True)
    if kind == "pvvae":
        return load_pvvae(target, device, dtype, label)
    return load_diffusers_vae(kind, target, device, dtype, label)
