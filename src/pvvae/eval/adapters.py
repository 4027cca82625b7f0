"""The evaluation's entry point to any VAE, and the PV-VAE adapter.

Specs are the library's one VAE grammar (:mod:`pvvae.inference.spec`: ``pvvae:PATH``,
``preset:NAME``, ``wan:PATH``, ``cogvideox:PATH``, ``hunyuan:PATH``, ``ltx:PATH``, a bare
folder, ``LABEL=SPEC``). :func:`load_vae` returns a :class:`VAEAdapter` (the interface,
:mod:`pvvae.eval.vae_adapter`); PV-VAE (T = 1 + 4k; :meth:`PVVAEAdapter.predict` pads
dropped latent groups with the learned token) is adapted here, the diffusers VAEs in
:mod:`pvvae.eval.diffusers_adapters`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pvvae.eval.diffusers_adapters import load_diffusers_vae
from pvvae.eval.vae_adapter import VAEAdapter
from pvvae.inference.spec import PRESET, parse_vae_spec, preset_vae


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
    from pvvae.training.checkpoint import load_model, model_folder

    if preset:
        return PVVAEAdapter(
            preset_vae(str(target)), source=f"preset:{target}", device=device, dtype=dtype,
            label=label,
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

    Examples: ``pvvae:runs/x``, ``preset:tiny``, ``wan:/models/Wan2.1-T2V-1.3B-Diffusers``
    (pipeline folder), ``base=pvvae:runs/baseline`` (labelled row).

    Args:
        spec: the VAE spec.
        device: where to run it.
        dtype: model dtype (float32 default; bfloat16 for speed, outputs stay float32).

    Returns:
        The adapter, in eval mode without gradients.
    """
    label, kind, target = parse_vae_spec(spec)
    if kind == PRESET:
        return load_pvvae(target, device, dtype, label, preset=True)
    if kind == "pvvae":
        return load_pvvae(target, device, dtype, label)
    return load_diffusers_vae(kind, target, device, dtype, label)
