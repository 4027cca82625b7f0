"""Open any saved VAE for inference, and name it by a fingerprint.

:func:`load_model` accepts every folder this library writes or reads:

* a PV-VAE model folder (``save_pretrained``), a checkpoint folder or a run folder (its
  latest checkpoint, EMA weights preferred), of any architecture, including a diffusers VAE
  fine-tuned with ``model.source: diffusers:...`` (a :class:`DiffusersPVVAE` checkpoint);
* an exported diffusers folder (``pvvae export``: ``AutoencoderKLWan`` files plus
  ``pad_token.safetensors``) or a diffusers pipeline folder with ``vae/``.

Every failure is a ``ValueError`` / ``FileNotFoundError`` with one line naming the file and
the fix (a config.json edited to another width included: PyTorch reports that one as a
multi-line ``RuntimeError``).

:func:`model_fingerprint` is a short hash of a model's class, layout and weights. ``pvvae
encode`` writes it into a latent file, and ``pvvae decode`` refuses a model with another
fingerprint: latents of one model decoded by another of the same width are noise, with no
error to show it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn


def is_diffusers_folder(path: str | Path) -> bool:
    """True when ``path`` (or its ``vae/``) holds a plain diffusers VAE, not a PV-VAE one."""
    from pvvae.model.registry import class_names

    for folder in (Path(path), Path(path) / "vae"):
        file = folder / "config.json"
        if file.is_file():
            try:
                name = json.loads(file.read_text()).get("_class_name")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                return False  # the PV-VAE loader names the damaged file
            return name not in class_names()
    return False


def load_model(path: str | Path, device: str | torch.device = "cpu", use_ema: bool = True):
    """A VAE from any folder of the module doc, in eval mode on ``device``.

    Args:
        path: model, checkpoint, run, exported diffusers or diffusers pipeline folder.
        device: where to put it.
        use_ema: prefer a checkpoint's EMA weights (PV-VAE checkpoints only).
    Returns:
        a ``PVVAE``, ``TransformerPVVAE`` or ``DiffusersPVVAE`` (one API:
        :class:`pvvae.model.common.VideoVAEMixin`).
    """
    from pvvae.training import checkpoint

    if is_diffusers_folder(path):
        from pvvae.model.diffusers_vae import DiffusersPVVAE

        return DiffusersPVVAE.from_diffusers(path).to(device).eval()
    try:
        return checkpoint.load_model(path, device, use_ema)
    except RuntimeError as e:  # load_state_dict: "size mismatch for ...", one line per weight
        if "size mismatch" not in str(e):
            raise
        first = next(line.strip() for line in str(e).splitlines() if "size mismatch" in line)
        folder = checkpoint.model_folder(path, use_ema)
        raise ValueError(
            f"{folder / checkpoint.WEIGHTS_FILE} does not fit {folder / 'config.json'} "
            f"({first}); was config.json edited? Restore it or retrain"
        ) from None


def model_fingerprint(model: nn.Module, samples: int = 64) -> str:
    """A 16-hex-digit fingerprint of a model: class, weight names, shapes and values.

    Cheap at any size: each weight contributes its name, shape and ``samples`` evenly spaced
    values (as float32), so two trainings, or two checkpoints of one training, differ. Take
    it before casting to another dtype (``pvvae encode`` and ``decode`` do): bf16 rounding
    changes the values.
    """
    digest = hashlib.sha256(type(model).__name__.encode())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            flat = tensor.detach().reshape(-1)
            step = max(flat.numel() // samples, 1)
            values = flat[::step][:samples].float().cpu().contiguous()
            digest.update(f"{name}:{tuple(tensor.shape)}".encode())
            digest.update(values.numpy().tobytes())
    return digest.hexdigest()[:16]


def supports_streaming(model: nn.Module) -> bool:
    """True when the model encodes and decodes chunk by chunk (``iter_encode``); a wrapped
    diffusers VAE does not: it encodes and decodes whole clips."""
    return bool(getattr(model, "supports_streaming", True))
