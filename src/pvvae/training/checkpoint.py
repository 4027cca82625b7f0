"""Checkpoints of a run: ``runs/NAME/checkpoints/step-NNNNNNN/``.

Each checkpoint folder holds the model in diffusers layout (``config.json`` +
``diffusion_pytorch_model.safetensors``, loadable with ``PVVAE.from_pretrained``) and
``train_state.pt`` (optimizer, scheduler, step, RNG states), read back with
``torch.load(weights_only=True)``. A checkpoint is written into a hidden temporary folder and
renamed into place, so an interrupted write never replaces or corrupts a good checkpoint;
only the last ``keep_last`` are kept.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from pvvae.model.autoencoder import PVVAE

_STEP_DIR = re.compile(r"^step-(\d+)$")
STATE_FILE = "train_state.pt"


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: PVVAE,
    train_state: dict[str, Any] | None = None,
    keep_last: int = 2,
) -> Path:
    """Atomically write checkpoint ``step`` and prune old ones. Returns its folder."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if train_state is not None:
        torch.save(train_state, tmp / STATE_FILE)
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same step: move the old one aside first
        old = root / f".old-step-{step:07d}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    for stale in checkpoint_dirs(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def resolve_checkpoint(path: str | Path) -> Path:
    """A model folder from a checkpoint folder, a run folder (its latest) or a model folder."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is not None:
        return latest
    raise FileNotFoundError(
        f"{path} is neither a model folder (with config.json) nor a run folder with "
        "checkpoints/step-*/; pass e.g. runs/NAME or runs/NAME/checkpoints/step-0001000"
    )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> PVVAE:
    """Load a ``PVVAE`` from any path accepted by :func:`resolve_checkpoint`."""
    return PVVAE.from_pretrained(resolve_checkpoint(path)).to(device).eval()


def load_train_state(checkpoint: str | Path) -> dict[str, Any]:
    """The training state saved beside the weights (safe loading: tensors and primitives)."""
    file = Path(checkpoint) / STATE_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: this checkpoint cannot resume training")
    return torch.load(file, map_location="cpu", weights_only=True)
