"""Saving and loading Latte models in the checkpoint layout of :mod:`pvvae.training.checkpoint`.

A Latte checkpoint folder (``runs/NAME/checkpoints/step-NNNNNNN/``) holds::

    config.json                              LatteConfig + what sampling needs (below)
    diffusion_pytorch_model.safetensors      the trained weights
    ema/config.json, ema/diffusion_...       EMA weights (what sampling uses by default)
    train_state.pt                           optimizer, step, data position (resume only)

``config.json`` is ``{"_class_name": "Latte", "latte": {LatteConfig fields}, "latent_shape":
[C, t, h, w], "classes": [...], "vae": "<VAE path or preset:NAME of the cache>"}``: the latent
size to sample, the class names and the VAE that decodes them, so ``pvvae gen sample CKPT``
needs nothing else. :class:`LatteWriter` gives ``save_checkpoint`` that file (it writes
``config.json`` through a ``save_config(folder)`` method, diffusers-style).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from pvvae.gen.latte import Latte, LatteConfig
from pvvae.training.checkpoint import WEIGHTS_FILE, model_folder, read_weights

CONFIG_FILE = "config.json"
CLASS_NAME = "Latte"


@dataclass(frozen=True)
class LatteMeta:
    """What a Latte checkpoint records besides its weights.

    Attributes:
        config: the architecture.
        latent_shape: (C, t, h, w) of one latent clip (the cache's shape).
        classes: class names (``classes[label]``); empty for unconditional models.
        vae: the VAE the latents came from (path or ``preset:NAME``), as given to the cache.
    """

    config: LatteConfig
    latent_shape: tuple[int, int, int, int]
    classes: tuple[str, ...] = ()
    vae: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "_class_name": CLASS_NAME,
            "latte": asdict(self.config),
            "latent_shape": list(self.latent_shape),
            "classes": list(self.classes),
            "vae": self.vae,
            **self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatteMeta:
        if data.get("_class_name") != CLASS_NAME:
            raise ValueError(f"config.json describes a {data.get('_class_name')!r}, not a Latte")
        known = {"_class_name", "latte", "latent_shape", "classes", "vae"}
        return cls(
            config=LatteConfig(**data["latte"]),
            latent_shape=tuple(int(v) for v in data["latent_shape"]),
            classes=tuple(data.get("classes", ())),
            vae=str(data.get("vae", "")),
            extra={k: v for k, v in data.items() if k not in known},
        )


class LatteWriter:
    """Stand-in ``model`` for :func:`pvvae.training.checkpoint.save_checkpoint`: it only
    writes ``config.json`` (the weights are passed to ``save_checkpoint`` explicitly)."""

    def __init__(self, meta: LatteMeta) -> None:
        self.meta = meta

    def save_config(self, folder: str | Path) -> None:
        """Write ``folder/config.json``."""
        Path(folder, CONFIG_FILE).write_text(json.dumps(self.meta.to_json(), indent=2))


def load_latte(
    path: str | Path, device: torch.device | str = "cpu", use_ema: bool = True
) -> tuple[Latte, LatteMeta]:
    """Load a Latte (eval mode) and its :class:`LatteMeta`.

    Args:
        path: a checkpoint folder, its ``ema/`` folder, or a run folder (its latest checkpoint),
            as :func:`pvvae.training.checkpoint.model_folder` resolves them.
        device: where to put the model.
        use_ema: load the EMA weights when the checkpoint has them.
    """
    folder = model_folder(path, use_ema)
    meta = LatteMeta.from_json(json.loads((folder / CONFIG_FILE).read_text()))
    model = Latte(meta.config)
    model.load_state_dict(read_weights(folder / WEIGHTS_FILE), strict=True)  # finite, readable
    return model.to(device).eval(), meta
