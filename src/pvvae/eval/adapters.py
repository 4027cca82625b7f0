"""Which VAE a spec names, and the PV-VAE adapter (the evaluation's entry point to any VAE).

Specs name a VAE on the command line: ``pvvae:PATH`` (model, checkpoint or run folder),
``pvvae-preset:NAME`` (random weights), ``wan:PATH``, ``cogvideox:PATH``, ``hunyuan:PATH``,
``ltx:PATH`` (a diffusers model folder or a whole pipeline folder with a ``vae/`` sub-folder),
or a bare folder whose ``config.json`` names the class. ``LABEL=SPEC`` sets the row label.
:func:`load_vae` returns a :class:`VAEAdapter` (the interface, :mod:`pvvae.eval.vae_adapter`);
PV-VAE (T = 1 + 4k; :meth:`PVVAEAdapter.predict` pads dropped latent groups with the learned
token) is adapted here, the diffusers VAEs in :mod:`pvvae.eval.diffusers_adapters`.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from pvvae.eval.diffusers_adapters import DIFFUSERS_KINDS, config_class_name, load_diffusers_vae
from pvvae.eval.vae_adapter import VAEAdapter
from pvvae.model.registry import class_names


class PVVAEAdapter(VAEAdapter):
    """:class:`pvvae.PVVAE` (paper section 3): t4s16c64 for the paper preset, with prediction.

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


def detect_kind(path: Path) -> str:
    """Spec kind of a folder: a PV-VAE model/checkpoint/run folder or a diffusers VAE/pipeline.

    Raises:
        FileNotFoundError: the folder is none of these.
    """
    if (path / "checkpoints").is_dir():
        return "pvvae"
    for sub in (".", "ema", "vae"):
        name = config_class_name(path / sub / "config.json")
        if name in class_names():  # PVVAE or TransformerPVVAE
            return "pvvae"
        for kind, (class_name, _) in DIFFUSERS_KINDS.items():
            if name == class_name:
                return kind
    raise FileNotFoundError(
        f"cannot tell which VAE {path} holds (no config.json naming PVVAE or one of "
        f"{[c for c, _ in DIFFUSERS_KINDS.values()]}); write the kind, e.g. wan:{path}"
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
