"""Checkpoints of an :class:`~pvvae.training.engine.EngineState`: what is saved, and resume.

:func:`save` writes weights, EMA, optimizer, schedule, step, data position, non-finite
counters, precision pins, every rank's global RNG states, the config and the recipe's extras
(:meth:`~pvvae.training.engine.EngineState.extra_train_state`, ``extra_weights``) atomically
(:func:`pvvae.training.checkpoint.save_checkpoint`); :func:`restore` loads them back, refuses a
change of the sections the state freezes and warns about other config changes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pvvae.config import ConfigError, to_dict
from pvvae.training import distributed, parallel
from pvvae.training.checkpoint import (
    EMA_DIR,
    WEIGHTS_FILE,
    load_train_state,
    read_weights,
    save_checkpoint,
)
from pvvae.training.schedule import lr_multiplier

if TYPE_CHECKING:
    from pvvae.training.engine import EngineState

logger = logging.getLogger(__name__)
# config keys that may change between a run and its resumption without breaking exactness
RESUME_FREE = frozenset({
    "train.resume", "train.steps", "train.progress", "train.log_every", "train.ckpt_every",
    "train.keep_last", "train.image_every", "train.tensorboard", "data.num_workers",
})


def checkpoint_payload(state: EngineState) -> dict[str, Any]:
    """Arguments of :func:`pvvae.training.checkpoint.save_checkpoint` beyond the model.

    Collective (all ranks call it: FSDP shards and per-rank RNG states are gathered); the
    tensors are complete on rank 0 only.
    """
    info, sharded = state.dist, state.sharded
    rng = distributed.all_gather_object(distributed.rng_state(), info)
    train_state: dict[str, Any] = {
        "step": state.step,
        "data_position": state.data_position,
        "world_size": info.world_size,
        "optimizer": parallel.optimizer_state_for_save(
            state.forward, state.optimizer, info, sharded
        ),
        "scheduler": state.scheduler.state_dict(),
        "nonfinite": [state.nonfinite_total, state.nonfinite_consecutive],
        "precision": state.precision.state_dict(),
        "rng": rng,
        "config": to_dict(state.cfg),
        **state.extra_train_state(),
    }
    ema = None
    if state.ema is not None:
        ema = state.ema.state_dict()
        ema = distributed.full_state_dict(ema) if sharded or info.is_main else {}
    return {
        "train_state": train_state,
        "weights": parallel.model_state_for_save(state.model, info, sharded),
        "ema_weights": ema,
        "extra_weights": state.extra_weights(),
    }


def save(state: EngineState, run_dir: Path) -> Path | None:
    """Write a checkpoint of ``state`` (collective; rank 0 writes). Returns its folder."""
    payload = checkpoint_payload(state)
    folder = None
    if state.dist.is_main:
        folder = save_checkpoint(
            run_dir, state.step, state.model, keep_last=state.cfg.train.keep_last, **payload
        )
        logger.info("saved checkpoint %s", folder)
    distributed.barrier(state.dist)
    return folder


def restore(state: EngineState, checkpoint: Path) -> None:
    """Load a checkpoint written by :func:`save` into ``state`` (every rank)."""
    ts = load_train_state(checkpoint)
    current = to_dict(state.cfg)
    for section in state.frozen_on_resume:
        saved = ts.get("config", {}).get(section)
        if saved is not None and saved != current[section]:
            raise ConfigError(
                f"{checkpoint} was trained with {section}={saved}, the config now says "
                f"{section}={current[section]}: resume with the same {section} section"
            )
    if state.dist.is_main:
        _warn_config_changes(ts["config"], current)
        _warn_schedule_change(ts["config"], state.cfg, int(ts["step"]))
    parallel.load_model_state(state.model, read_weights(checkpoint / WEIGHTS_FILE))  # finite
    parallel.load_optimizer_state(state.forward, state.optimizer, ts["optimizer"], state.sharded)
    state.scheduler.load_state_dict(ts["scheduler"])
    if state.ema is not None:
        ema_file = checkpoint / EMA_DIR / WEIGHTS_FILE
        state.ema.load_state_dict(read_weights(ema_file) if ema_file.is_file()
                                  else distributed.full_state_dict(state.model.state_dict()))
    state.step, state.data_position = int(ts["step"]), int(ts["data_position"])
    state.nonfinite_total, state.nonfinite_consecutive = (int(n) for n in ts["nonfinite"])
    state.precision.load_state_dict(ts.get("precision", {}))
    state.load_extra(ts, checkpoint)
    if "rng" in ts and int(ts.get("world_size", -1)) == state.dist.world_size:
        distributed.set_rng_state(ts["rng"][state.dist.rank])
    else:
        logger.warning(
            "checkpoint written by %s ranks, resumed on %d: global RNG states not restored "
            "(training draws are keyed by step and rank, so this only matters for code that "
            "uses the global RNG)", ts.get("world_size", "an unknown number of"),
            state.dist.world_size,
        )


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) and k != "overrides" else {key: v})
    return out


def _warn_config_changes(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Log the config keys that differ from the checkpoint's (the resume may not be exact)."""
    a, b = _flatten(saved), _flatten(current)
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUME_FREE)
    if changed:
        logger.warning(
            "resuming with a config that differs from the checkpoint's in %s: the run "
            "continues, but not exactly as the original would have",
            ", ".join(f"{k} ({a.get(k)!r} -> {b.get(k)!r})" for k in changed),
        )


def _warn_schedule_change(saved: dict[str, Any], cfg, step: int) -> None:
    """Warn when a new ``train.steps`` moves the learning rate of the resumed step.

    ``train.steps`` may change on resume (extend or shorten a run), but the cosine decay is
    stretched over the new length, so the learning rate jumps at the resume step.
    """
    old_steps, o = int(saved["train"]["steps"]), cfg.optim
    if old_steps == cfg.train.steps:
        return
    before = lr_multiplier(step, o.warmup_steps, old_steps, o.min_lr_ratio) * o.lr
    after = lr_multiplier(step, o.warmup_steps, cfg.train.steps, o.min_lr_ratio) * o.lr
    if not math.isclose(before, after, rel_tol=1e-6):
        logger.warning(
            "train.steps changed from %d to %d on resume: the cosine schedule is stretched to "
            "the new length, so the learning rate jumps from %.3g to %.3g at step %d",
            old_steps, cfg.train.steps, before, after, step,
        )
