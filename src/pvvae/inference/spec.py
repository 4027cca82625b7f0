"""One grammar that names a VAE, read by every command and module.

A spec is ``[LABEL=]KIND:TARGET`` or a bare folder:

- ``pvvae:PATH``: a PV-VAE model, checkpoint or run folder (EMA weights preferred), or an
  exported fine-tuned diffusers folder;
- ``preset:NAME`` (``pvvae-preset:NAME`` is the same): a *randomly initialised* preset
  (``tiny``, ``paper``, ``transformer-tiny``, ...), for smoke runs and benchmarks only;
- ``wan:PATH``, ``cogvideox:PATH``, ``hunyuan:PATH``, ``ltx:PATH``: a diffusers VAE (a model
  folder, or a pipeline folder with ``vae/``);
- a bare folder: the kind is read from its ``config.json`` (or ``checkpoints/`` for a run).

``LABEL=`` names the row in evaluation tables. :func:`parse_vae_spec` splits a spec,
:func:`load_vae` returns the model itself (the interface of
:class:`pvvae.model.common.VideoVAEMixin`); evaluation wraps the same specs in adapters
(:func:`pvvae.eval.adapters.load_vae`), which also read the third-party kinds that cannot be
trained, cached or sampled from here.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import NamedTuple

import torch

logger = logging.getLogger(__name__)

# kind -> the diffusers class its config.json names
DIFFUSERS_CLASSES = {
    "wan": "AutoencoderKLWan",
    "cogvideox": "AutoencoderKLCogVideoX",
    "hunyuan": "AutoencoderKLHunyuanVideo",
    "ltx": "AutoencoderKLLTXVideo",
}
PRESET = "preset"
_ALIASES = {"pvvae-preset": PRESET}
SPEC_KINDS = ("pvvae", PRESET, *_ALIASES, *DIFFUSERS_CLASSES)
_LABEL = re.compile(r"^([^=:/\\]+)=(.+)$")


class VAESpec(NamedTuple):
    """A parsed spec: the row label (or None), the kind and what it points at."""

    label: str | None
    kind: str
    target: str


def parse_vae_spec(spec: str | Path) -> VAESpec:
    """Split ``[LABEL=]KIND:TARGET`` (or a bare folder) into a :class:`VAESpec`.

    Raises:
        ValueError: an unknown kind.
        FileNotFoundError: a bare folder that holds no VAE.
    """
    spec, label = str(spec), None
    match = _LABEL.match(spec)
    if match:
        label, spec = match.group(1).strip(), match.group(2)
    kind, sep, target = spec.partition(":")
    if sep and kind in SPEC_KINDS:
        return VAESpec(label, _ALIASES.get(kind, kind), target)
    if sep and re.fullmatch(r"[a-z0-9.-]+", kind) and not Path(spec).exists():
        raise ValueError(f"unknown VAE kind {kind!r} in {spec!r}; valid kinds: {SPEC_KINDS}")
    return VAESpec(label, detect_kind(Path(spec)), spec)


def config_class_name(config_file: Path) -> str | None:
    """The ``_class_name`` a ``config.json`` names, or None where there is no such file.

    Raises:
        ValueError: the file is not a JSON object.
    """
    if not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{config_file} is not valid JSON ({e}); restore or re-export it") \
            from None
    return config.get("_class_name") if isinstance(config, dict) else None


def detect_kind(path: Path) -> str:
    """Spec kind of a folder: a PV-VAE model/checkpoint/run folder or a diffusers VAE/pipeline.

    Raises:
        FileNotFoundError: the folder is none of these.
    """
    from pvvae.model.registry import class_names

    if (path / "checkpoints").is_dir():
        return "pvvae"
    for sub in (".", "ema", "vae"):
        name = config_class_name(path / sub / "config.json")
        if name in class_names():  # PVVAE or TransformerPVVAE
            return "pvvae"
        for kind, class_name in DIFFUSERS_CLASSES.items():
            if name == class_name:
                return kind
    raise FileNotFoundError(
        f"cannot tell which VAE {path} holds (no config.json naming PVVAE or one of "
        f"{list(DIFFUSERS_CLASSES.values())}); write the kind, e.g. wan:{path}"
    )


def preset_vae(name: str, seed: int = 0):
    """A randomly initialised preset drawn with ``seed``, leaving the global RNG untouched."""
    from pvvae.model.registry import from_preset

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return from_preset(name)


def load_vae(spec: str | Path, device: torch.device | str = "cpu", seed: int = 0):
    """The VAE a spec names, in eval mode on ``device``: a ``PVVAE``, ``TransformerPVVAE`` or
    (``wan:``, or a Wan folder) a ``DiffusersPVVAE``, all with one interface
    (:class:`pvvae.model.common.VideoVAEMixin`: ``latent_channels``, ``latent_stat_values``,
    ``normalize`` / ``denormalize``, the compressions, ``predict``).

    Args:
        spec: see the module docstring (a label is ignored here).
        device: where to put the model.
        seed: initialisation seed of a ``preset:``.

    Raises:
        ValueError: a kind that only evaluation reads (``cogvideox:``, ``hunyuan:``, ``ltx:``).
    """
    from pvvae.inference.loading import load_model
    from pvvae.model.diffusers_vae import SUPPORTED_CLASSES

    try:
        _, kind, target = parse_vae_spec(spec)
    except FileNotFoundError:  # not recognisable from outside: the loader names what is wrong
        kind, target = "pvvae", str(spec)
    if kind == PRESET:
        logger.warning("using a randomly initialised %r VAE: for smoke runs only", target)
        return preset_vae(target, seed).to(device).eval()
    if kind in DIFFUSERS_CLASSES and DIFFUSERS_CLASSES[kind] not in SUPPORTED_CLASSES:
        raise ValueError(
            f"{kind}:{target}: this kind is read by `pvvae eval` only; training, caching, "
            f"generation and inference take pvvae:, preset: or wan: VAEs"
        )
    return load_model(target, device)
