"""The PV-VAE architectures by name: ``model.arch`` of a training config, and the
``_class_name`` that diffusers writes into a saved model's ``config.json``.

==============  =====================================  ==============================
arch            class                                  presets
==============  =====================================  ==============================
``cnn``         :class:`pvvae.PVVAE` (paper section 3)  ``pvvae.PRESETS``
``transformer`` :class:`pvvae.TransformerPVVAE` (5)    ``TRANSFORMER_PRESETS``
==============  =====================================  ==============================

Both share one public API (:class:`~pvvae.model.common.VideoVAEMixin`), so training,
evaluation, caching and generation take either through configuration alone. Training
checkpoints of a fine-tuned diffusers VAE (``model.source: diffusers:...``) hold a
:class:`~pvvae.model.diffusers_vae.DiffusersPVVAE`, which has the same API and is known here
too (:func:`class_names`, :func:`class_of_config`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

ARCHITECTURES = ("cnn", "transformer")
TRANSFORMER_PREFIX = "transformer-"  # preset names of the Transformer outside a config


def model_class(arch: str) -> type:
    """The model class of ``arch`` ("cnn" or "transformer")."""
    if arch == "cnn":
        from pvvae.model.autoencoder import PVVAE

        return PVVAE
    if arch == "transformer":
        from pvvae.model.transformer import TransformerPVVAE

        return TransformerPVVAE
    raise ValueError(f"unknown model architecture {arch!r}; valid: {ARCHITECTURES}")


def model_presets(arch: str) -> Mapping[str, dict]:
    """The named presets of ``arch`` (each a dict of constructor arguments)."""
    if arch == "cnn":
        from pvvae.model.presets import PRESETS

        return PRESETS
    from pvvae.model.transformer import TRANSFORMER_PRESETS

    model_class(arch)  # raises on an unknown arch
    return TRANSFORMER_PRESETS


WRAPPER_CLASS = "DiffusersPVVAE"  # pvvae.model.diffusers_vae: a wrapped diffusers VAE


def class_names() -> tuple[str, ...]:
    """The ``_class_name`` values of saved PV-VAE models of every architecture, and of the
    wrapper of a diffusers VAE fine-tuned with predictive reconstruction."""
    return (*(model_class(arch).__name__ for arch in ARCHITECTURES), WRAPPER_CLASS)


def read_config_json(folder: str | Path) -> dict:
    """``folder/config.json`` as a dict; a missing, unreadable or non-object file is a
    ValueError naming it."""
    file = Path(folder) / "config.json"
    try:
        config = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{file} is not a readable JSON model config ({e})") from e
    if not isinstance(config, dict):
        raise ValueError(f"{file} must hold a JSON object, not {type(config).__name__}")
    return config


def class_of_folder(folder: str | Path) -> type:
    """The model class a saved folder holds, read from its ``config.json``.

    Raises:
        ValueError: the folder holds a model of another library (or a damaged config).
    """
    return class_of_config(read_config_json(folder), Path(folder) / "config.json")


def class_of_config(config: dict, source: str | Path) -> type:
    """The model class named by a read ``config.json`` (``_class_name``) from ``source``."""
    name = config.get("_class_name")
    for arch in ARCHITECTURES:
        cls = model_class(arch)
        if cls.__name__ == name:
            return cls
    if name == WRAPPER_CLASS:
        from pvvae.model.diffusers_vae import DiffusersPVVAE

        return DiffusersPVVAE
    raise ValueError(f"{source} describes {name!r}, not a PV-VAE model ({class_names()})")


def from_preset(name: str):
    """A randomly initialised model of a preset name as the command line and benchmarks
    give it: "NAME" for a CNN preset, "transformer-NAME" for a Transformer one."""
    if name.startswith(TRANSFORMER_PREFIX):
        return model_class("transformer").from_preset(name[len(TRANSFORMER_PREFIX) :])
    return model_class("cnn").from_preset(name)
