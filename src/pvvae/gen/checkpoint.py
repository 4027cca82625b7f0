"""Loading Latte models from the checkpoint layout of :mod:`pvvae.training.checkpoint`.

A Latte checkpoint folder (``runs/NAME/checkpoints/step-NNNNNNN/``) holds::

    config.json                              the Latte's diffusers config (below)
    diffusion_pytorch_model.safetensors      the trained weights
    ema/config.json, ema/diffusion_...       EMA weights (what sampling uses by default)
    train_state.pt                           optimizer, step, data position (resume only)

``config.json`` is what :meth:`Latte.save_pretrained` writes (``save_checkpoint`` calls the
model's ``save_config``): ``{"_class_name": "Latte", <LatteConfig fields>, "latent_shape":
[C, t, h, w], "classes": [...], "vae": "<VAE of the cache>"}``, so ``Latte.from_pretrained``
opens a checkpoint or ``ema/`` folder, and ``pvvae gen sample CKPT`` needs nothing else.
Checkpoints of the earlier layout (the architecture nested under ``"latte"``) still load here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch

from pvvae.gen.latte import Latte, LatteConfig
from pvvae.training.checkpoint import WEIGHTS_FILE, load_strict, model_folder, read_weights

CLASS_NAME = "Latte"


@dataclass(frozen=True)
class LatteMeta:
    """What a Latte's config records besides the weights, as typed values.

    Attributes:
        config: the architecture.
        latent_shape: (C, t, h, w) of one latent clip (the cache's shape); empty for a model
            saved without one (it cannot be sampled from).
        classes: class names (``classes[label]``); empty for unconditional models.
        vae: the VAE the latents came from (path or ``preset:NAME``), as given to the cache.
    """

    config: LatteConfig
    latent_shape: tuple[int, ...]
    classes: tuple[str, ...] = ()
    vae: str = ""

    @classmethod
    def of(cls, model: Latte) -> LatteMeta:
        """The meta of a model (read from its config)."""
        shape = tuple(int(v) for v in model.config.latent_shape or ())
        return cls(model.arch, shape, tuple(model.config.classes), str(model.config.vae))

    def build(self) -> Latte:
        """A freshly initialised Latte of this architecture that records the rest."""
        return Latte.from_arch(self.config, latent_shape=list(self.latent_shape),
                               classes=list(self.classes), vae=self.vae)


def read_latte_config(folder: Path) -> dict:
    """``folder/config.json`` as Latte constructor arguments; the earlier layout is converted
    and a file of another class or with unknown keys is a ValueError naming it."""
    from pvvae.model.registry import read_config_json

    data = read_config_json(folder)
    file = folder / "config.json"
    if data.get("_class_name") != CLASS_NAME:
        raise ValueError(f"{file} describes a {data.get('_class_name')!r}, not a Latte")
    if isinstance(data.get("latte"), dict):  # earlier layout: {"latte": {fields}, ...}
        data = {**data.pop("latte"), **data}
    valid = set(inspect.signature(Latte.__init__).parameters) - {"self"}
    unknown = sorted(k for k in data if not k.startswith("_") and k not in valid)
    if unknown:
        raise ValueError(f"{file}: unknown key(s) {unknown} for a Latte")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def load_latte(
    path: str | Path, device: torch.device | str = "cpu", use_ema: bool = True
) -> tuple[Latte, LatteMeta]:
    """Load a Latte (eval mode) and its :class:`LatteMeta`.

    Stricter than ``Latte.from_pretrained``: missing, unexpected or NaN/Inf weights and
    unknown config keys are errors naming the file.

    Args:
        path: a checkpoint folder, its ``ema/`` folder, a ``save_pretrained`` folder, or a run
            folder (its latest checkpoint), as :func:`pvvae.training.checkpoint.model_folder`
            resolves them.
        device: where to put the model.
        use_ema: load the EMA weights when the checkpoint has them.
    """
    folder = model_folder(path, use_ema)
    config = read_latte_config(folder)
    try:
        model = Latte(**config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{folder / 'config.json'}: {e}") from e
    load_strict(model, read_weights(folder / WEIGHTS_FILE), folder / WEIGHTS_FILE)
    model.register_to_config(_name_or_path=str(folder))  # as from_pretrained records it
    return model.to(device).eval(), LatteMeta.of(model)
