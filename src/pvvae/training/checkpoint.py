"""Checkpoints of a run: ``runs/NAME/checkpoints/step-NNNNNNN/``.

Layout of one checkpoint folder::

    config.json, diffusion_pytorch_model.safetensors   the model, diffusers layout
    ema/config.json, ema/diffusion_pytorch_model.safetensors   EMA weights (when kept)
    <name>.safetensors                                 other weights (e.g. discriminator)
    train_state.pt                                     optimizers, schedulers, step, RNG
                                                       states, data position, config

Model and EMA folders load with ``PVVAE.from_pretrained`` (and :func:`load_model`, which
prefers the EMA weights: they are the ones to evaluate and export, and which refuses a
config.json that does not fit the weights, missing/unexpected weights and NaN/Inf weights).
``train_state.pt`` holds only tensors and plain Python values and is read back with
``torch.load(weights_only=True)``. A checkpoint is written into a hidden temporary folder
that is renamed into place, so a crash or kill during the write never replaces or corrupts
a good checkpoint; only the last ``keep_last`` are kept. Nothing here is specific to the
VAE: any module with diffusers' ``save_config`` (or none) can be saved this way.
"""

from __future__ import annotations

import inspect
import os
import pickle
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

_STEP_DIR = re.compile(r"^step-(\d+)$")
STATE_FILE = "train_state.pt"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"  # diffusers' name
EMA_DIR = "ema"


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def checkpoint_step(checkpoint: str | Path) -> int:
    """The step number of a ``step-NNNNNNN`` folder."""
    m = _STEP_DIR.match(Path(checkpoint).name)
    if m is None:
        raise ValueError(f"{checkpoint} is not a step-NNNNNNN checkpoint folder")
    return int(m.group(1))


def cpu_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """Detached contiguous CPU copies of ``module.state_dict()`` (not for FSDP shards)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def write_pretrained(folder: Path, model: nn.Module, weights: Mapping[str, Tensor]) -> None:
    """Write ``weights`` in diffusers layout, with ``model``'s config.json when it has one."""
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_config"):
        model.save_config(folder)
    save_file(_contiguous(weights), folder / WEIGHTS_FILE, metadata={"format": "pt"})


def _contiguous(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: nn.Module,
    train_state: dict[str, Any] | None = None,
    keep_last: int = 2,
    *,
    weights: Mapping[str, Tensor] | None = None,
    ema_weights: Mapping[str, Tensor] | None = None,
    extra_weights: Mapping[str, Mapping[str, Tensor]] | None = None,
) -> Path:
    """Atomically write checkpoint ``step`` and prune old ones. Returns its folder.

    Args:
        run_dir: the run folder; checkpoints go to ``run_dir/checkpoints/step-NNNNNNN``.
        step: training step (the folder name).
        model: source of config.json (diffusers ``save_config``) and, unless ``weights`` is
            given, of the weights.
        train_state: tensors and plain values for ``train_state.pt``.
        keep_last: how many checkpoints to keep (<= 0: all).
        weights: the model's full state dict (e.g. gathered from FSDP shards).
        ema_weights: EMA state dict, saved as ``ema/`` in the model's layout.
        extra_weights: name -> state dict, saved as ``name.safetensors``.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}-{os.getpid()}"
    write_pretrained(tmp, model, weights if weights is not None else cpu_state_dict(model))
    if ema_weights is not None:
        write_pretrained(tmp / EMA_DIR, model, ema_weights)
    for name, state in (extra_weights or {}).items():
        save_file(_contiguous(state), tmp / f"{name}.safetensors")
    if train_state is not None:
        torch.save(train_state, tmp / STATE_FILE)
    _fsync_tree(tmp)
    if final.exists():  # re-saving the same step: move the old one aside first
        old = root / f".old-step-{step:07d}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    for stale in checkpoint_dirs(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _remove_leftovers(root: Path) -> None:
    """Delete temporary folders left by writes that crashed or were killed."""
    for p in root.iterdir():
        if p.name.startswith((".tmp-step-", ".old-step-")):
            shutil.rmtree(p, ignore_errors=True)


def _fsync_tree(path: Path) -> None:
    for f in path.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def model_folder(path: str | Path, use_ema: bool = True) -> Path:
    """The folder :func:`load_model` reads: the EMA one when present and ``use_ema``."""
    folder = resolve_checkpoint(path)
    if use_ema and (folder / EMA_DIR / "config.json").is_file():
        return folder / EMA_DIR
    return folder


def load_model(path: str | Path, device: str | torch.device = "cpu", use_ema: bool = True):
    """Load a ``PVVAE`` or ``TransformerPVVAE`` (the class its config.json names; eval mode)
    from any path accepted by :func:`resolve_checkpoint`.

    With ``use_ema`` (default) a checkpoint's EMA weights are loaded when it has them.
    Stricter than ``PVVAE.from_pretrained`` (which only warns): an unknown config key, a
    missing or unexpected weight, or a NaN/Inf weight is a ``ValueError`` naming the file, so
    an edited ``config.json`` can never load a different model silently.
    """
    folder = model_folder(path, use_ema)
    cls, config = read_model_config(folder)
    try:
        model = cls.from_config(config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{folder / 'config.json'}: {e} (a field has a wrong value)") from e
    load_strict(model, read_weights(folder / WEIGHTS_FILE), folder / WEIGHTS_FILE)
    model.register_to_config(_name_or_path=str(folder))  # as from_pretrained records it
    return model.to(device).eval()


def export_diffusers(path: str | Path, out: str | Path, use_ema: bool = True) -> Path:
    """Write a fine-tuned diffusers VAE (``model.source: diffusers:...``) of a checkpoint as
    a diffusers folder: ``AutoencoderKLWan.from_pretrained(out)`` loads it unchanged, and
    ``pad_token.safetensors`` beside it keeps the padding token for ``predict``.

    Args:
        path: a checkpoint, model or run folder (its latest checkpoint; EMA preferred).
        out: the folder to write.
    Returns:
        ``out``.
    """
    model = load_model(path, use_ema=use_ema)
    if not hasattr(model, "save_diffusers"):
        raise ValueError(
            f"{path} holds a {type(model).__name__}, which is saved in its own format already; "
            "export applies to diffusers VAEs fine-tuned with model.source=diffusers:..."
        )
    return model.save_diffusers(out)


def read_model_config(folder: Path) -> tuple[type, dict[str, Any]]:
    """The model class ``folder/config.json`` names and the config, whose keys that class's
    ``__init__`` all accepts (the file is read once)."""
    from pvvae.model.registry import class_of_config, read_config_json

    file = folder / "config.json"
    config = read_config_json(folder)
    cls = class_of_config(config, file)
    valid = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(k for k in config if not k.startswith("_") and k not in valid)
    if unknown:
        raise ValueError(f"{file}: unknown key(s) {unknown} for {cls.__name__}")
    return cls, config


def read_weights(file: Path) -> dict[str, Tensor]:
    """A safetensors file as a CPU state dict; unreadable or NaN/Inf weights are errors."""
    try:
        weights = load_file(file)
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:  # missing, truncated
        raise ValueError(f"cannot read weights {file}: {e}") from e
    check_finite(weights, file)
    return weights


def check_finite(weights: Mapping[str, Tensor], source: str | Path) -> None:
    """Raise ``ValueError`` naming the tensors of ``weights`` that hold NaN or Inf."""
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(
            f"{source} holds NaN/Inf weights in {len(bad)} tensor(s) (e.g. {bad[0]}): it was "
            "saved from a diverged run; use an earlier checkpoint"
        )


def load_strict(model: nn.Module, weights: Mapping[str, Tensor], source: str | Path) -> None:
    """``model.load_state_dict(weights)`` where a missing or unexpected key is a ValueError."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{source} does not fit the model its config.json describes: {len(missing)} "
            f"missing weight(s) {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}; "
            "was config.json edited? Restore it or retrain"
        )


def load_weights(checkpoint: str | Path, name: str) -> dict[str, Tensor] | None:
    """``name.safetensors`` of a checkpoint folder as a CPU state dict (None when absent)."""
    file = Path(checkpoint) / f"{name}.safetensors"
    return load_file(file) if file.is_file() else None


def load_train_state(checkpoint: str | Path) -> dict[str, Any]:
    """The training state saved beside the weights (safe loading: tensors and primitives)."""
    file = Path(checkpoint) / STATE_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: this checkpoint cannot resume training")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{file} holds Python objects that safe loading refuses (only tensors and plain "
            "values are allowed): it was not written by pvvae or was tampered with; delete "
            "this checkpoint folder to resume from the previous one"
        ) from e
