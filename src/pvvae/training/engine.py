"""The training engine of ``pvvae train`` and ``pvvae gen train``: one loop for every recipe.

Design. A :class:`Recipe` says *what* is trained: :meth:`Recipe.build_state` returns the run's
:class:`EngineState` (the model, the module that trains it under DDP / FSDP, AdamW, the warm-up +
cosine schedule, EMA and the bf16 :class:`~pvvae.training.precision.PrecisionPolicy`, built by
:func:`core_state`, plus the recipe's own fields), :meth:`Recipe.batches` yields this rank's
batches from the state's step and data position, and :meth:`Recipe.train_step` runs one step:
it computes the loss under ``state.precision.autocast()``, applies it with :func:`update` inside
:func:`with_fp32_fallback` (a bf16 step with a finite loss and a non-finite gradient is recomputed
in fp32 and the failing modules are pinned to fp32) and ends with :func:`finish_step` (EMA of
applied steps, the non-finite counters, step and data position). The engine (:func:`run`) owns
the rest, the same for every recipe: torchrun setup; the run folder ``out_dir/name`` (a fresh run
moves an earlier run's checkpoints, logs and exports aside to ``superseded-<time>/``; ``resume``
continues from the latest checkpoint) and its config snapshot ``config.yaml``; logging on rank 0
(JSON lines, TensorBoard, progress bar; :mod:`pvvae.training.monitor`); the non-finite guard
(:mod:`pvvae.training.guards`); and atomic checkpoints (:func:`save`, :func:`restore`) holding
weights, EMA, optimizer, schedule, step, data position, precision pins, the global RNG states of
every rank and the config, never written inside a non-finite streak (so no checkpoint holds
non-finite weights and a killed write never replaces a good one). A state adds recipe parts to a
checkpoint through :meth:`EngineState.extra_train_state`, :meth:`EngineState.extra_weights` and
:meth:`EngineState.load_extra`. **Batch size is per rank** in every recipe: a step of W ranks
with batch size B consumes the next W x B positions of the global sample order
(:mod:`pvvae.training.data`), so the global batch is W x B.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from pvvae.config import save_config
from pvvae.training import distributed, parallel
from pvvae.training.checkpoint import latest_checkpoint
from pvvae.training.distributed import DistInfo
from pvvae.training.ema import EMA
from pvvae.training.guards import check_nonfinite
from pvvae.training.monitor import RunLogger, peak_memory_gib
from pvvae.training.precision import (
    WHOLE_MODEL,
    BF16StepFailed,
    PrecisionPolicy,
    nonfinite_modules,
)
from pvvae.training.resume import checkpoint_payload, restore, save  # noqa: F401 (re-exports)
from pvvae.training.schedule import warmup_cosine

logger = logging.getLogger(__name__)
T = TypeVar("T")
SUPERSEDED = ("checkpoints", "log.jsonl", "tb", "diffusers")  # moved aside by a fresh run


@dataclass
class EngineState:
    """What every recipe's step reads or updates (recipes subclass it with their own fields).

    ``cfg`` has ``name``, ``train`` (``steps``, ``seed``, ``device``, ``out_dir``, ``log_every``,
    ``ckpt_every``, ``keep_last``, ``progress``, ``resume``, ``tensorboard``, ``max_nonfinite``,
    ``precision``, ``ema``, ``ema_decay``) and ``optim`` (``lr``, ``betas``, ``weight_decay``,
    ``warmup_steps``, ``min_lr_ratio``, ``grad_clip``).
    """

    cfg: Any
    dist: DistInfo
    model: nn.Module  # the model itself: what checkpoints hold
    forward: nn.Module  # the module a step calls: the model (or a wrapper), DDP / FSDP-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: EMA | None = None
    precision: PrecisionPolicy | None = None
    sharded: bool = False  # FSDP
    step: int = 0
    data_position: int = 0  # global sample position of the next batch
    nonfinite_total: int = 0
    nonfinite_consecutive: int = 0

    # config sections a resumed run must keep (a ConfigError otherwise)
    frozen_on_resume: ClassVar[tuple[str, ...]] = ()

    def extra_train_state(self) -> dict[str, Any]:
        """Recipe values for ``train_state.pt`` (tensors and plain values; rank 0's count)."""
        return {}

    def extra_weights(self) -> dict[str, dict[str, Tensor]]:
        """Recipe weights saved as ``name.safetensors`` (collective; complete on rank 0)."""
        return {}

    def load_extra(self, train_state: dict[str, Any], checkpoint: Path) -> None:
        """Inverse of :meth:`extra_train_state` and :meth:`extra_weights`."""


class Recipe:
    """What a run trains (module docstring). Subclasses set ``cfg`` and implement
    :meth:`build_state`, :meth:`batches` and :meth:`train_step`."""

    cfg: Any

    def validate(self) -> None:
        """Cross-field checks before any work (raise :class:`~pvvae.config.ConfigError`)."""

    def build_state(self, info: DistInfo) -> EngineState:
        raise NotImplementedError

    def batches(self, state: EngineState) -> Iterable[dict[str, Any]]:
        """This rank's batches from ``state.step`` / ``state.data_position`` on (endless)."""
        raise NotImplementedError

    def train_step(self, state: EngineState, batch: dict[str, Any]) -> dict[str, float]:
        """One step (ends with :func:`finish_step`); returns this rank's scalar metrics."""
        raise NotImplementedError

    def log_record(self, state: EngineState, window: list[dict[str, float]]) -> dict[str, float]:
        """What to log for the steps since the last record (collective); default: the last."""
        return dict(window[-1])

    def postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        """The progress bar's postfix after a step."""
        return {}

    def after_step(self, state: EngineState, log: RunLogger) -> None:
        """Called after every step (e.g. preview images)."""

    def before_save(self, state: EngineState) -> None:
        """Called on every rank before a checkpoint is written (collective)."""

    def finish(self, state: EngineState, run_dir: Path) -> None:
        """Called once the run has reached ``train.steps``."""

    def describe(self, state: EngineState) -> str:
        """Words for the start-up log line (after the name and parameter counts)."""
        return ""


# ---------------------------------------------------------------------------- building
def adamw(params: list[nn.Parameter], lr: float, betas, weight_decay: float):
    """AdamW over ``params`` (an error when there are none)."""
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def core_state(
    cls: type[EngineState], cfg, info: DistInfo, model: nn.Module, forward: nn.Module,
    params: list[nn.Parameter], **fields: Any,
) -> EngineState:
    """``cls`` with AdamW over ``params``, the schedule, EMA and precision policy of ``cfg``."""
    o = cfg.optim
    optimizer = adamw(params, o.lr, o.betas, o.weight_decay)
    scheduler = warmup_cosine(optimizer, o.warmup_steps, cfg.train.steps, o.min_lr_ratio)
    ema = EMA(model, cfg.train.ema_decay) if cfg.train.ema else None  # of shards under FSDP
    precision = PrecisionPolicy(model, info.device.type, cfg.train.precision == "bf16")
    return cls(cfg=cfg, dist=info, model=model, forward=forward, optimizer=optimizer,
               scheduler=scheduler, ema=ema, precision=precision, **fields)


# ---------------------------------------------------------------------------- one step
def update(
    state: EngineState, loss: Tensor, optimizer, scheduler, owner: nn.Module | None = None
) -> float | None:
    """Backward and a clipped optimizer step on all ranks (``optim.grad_clip``; <= 0: no
    clipping); None (nothing done) when the loss or the gradient norm is not finite on some rank.
    The schedule steps either way: it follows the step counter, skipped steps included.

    ``owner``: the model behind ``optimizer`` when a bf16 failure may be retried in fp32; then
    a non-finite loss, or a finite loss with a non-finite gradient, under bf16 raises
    :class:`~pvvae.training.precision.BF16StepFailed` before anything is updated.
    """
    retry = owner is not None and state.precision.active
    if not distributed.all_true(bool(torch.isfinite(loss.detach())), state.dist):
        if retry:
            raise BF16StepFailed([WHOLE_MODEL])
        _advance(scheduler)
        return None
    params = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    total = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    norm = parallel.to_float(total)
    if math.isfinite(norm):  # identical on all ranks: computed from reduced gradients
        clip = state.cfg.optim.grad_clip
        torch.nn.utils.clip_grads_with_norm_(params, clip if clip > 0 else math.inf, total)
        optimizer.step()
    else:
        # read before zero_grad: the gradients are not clipped, so only the failing ones are bad
        failing = _union(nonfinite_modules(owner), state.dist) if retry else []
        optimizer.zero_grad(set_to_none=True)
        if retry:
            raise BF16StepFailed(failing or [WHOLE_MODEL])
    _advance(scheduler)
    return norm if math.isfinite(norm) else None


def _advance(scheduler) -> None:
    """One schedule step (a skipped first step deliberately steps it before any optimizer
    step; PyTorch's warning about that order is silenced here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
        scheduler.step()


def _union(names: list[str], info: DistInfo) -> list[str]:
    """The sorted union of every rank's ``names`` (collective)."""
    return sorted(set().union(*distributed.all_gather_object(names, info)))


def with_fp32_fallback(
    state: EngineState, attempt: Callable[[bool], tuple[T, bool]]
) -> tuple[T, bool]:
    """``attempt(retry=True)``; when it raises :class:`BF16StepFailed`, the same step again in
    fp32 (``attempt(False)``), and when that one is applied the failing modules stay in fp32.

    ``attempt(retry)`` computes and applies one update (passing ``owner`` to :func:`update`
    only when ``retry``) and returns ``(result, applied)``; it must draw its randomness afresh
    from the step's seeded generators, so the recomputation sees the same batch and noise.
    Returns ``(result, retried)``.
    """
    try:
        return attempt(True)[0], False
    except BF16StepFailed as failed:
        with state.precision.fp32():
            result, applied = attempt(False)
        if applied:
            state.precision.pin(failed.modules, state.step, state.dist.device)
        return result, True


def finish_step(
    state: EngineState, applied: bool, batch_size: int, ema: bool | None = None
) -> None:
    """End of a step: the EMA follows ``state.model`` when the update was applied (``ema``,
    default ``applied``), a non-applied step counts as non-finite, the step counter and the
    data position (``world_size * batch_size`` samples) advance."""
    if (applied if ema is None else ema) and state.ema is not None:
        state.ema.update(state.model)
    if applied:
        state.nonfinite_consecutive = 0
    else:
        state.nonfinite_total += 1
        state.nonfinite_consecutive += 1
    state.step += 1
    state.data_position += state.dist.world_size * batch_size


def counters(state: EngineState) -> dict[str, float]:
    """The engine's per-step metrics: skipped steps so far and modules pinned to fp32."""
    return {"nonfinite/skipped_steps": state.nonfinite_total,
            "precision/fp32_modules": len(state.precision.pinned)}


# ---------------------------------------------------------------------------- the run
def run(recipe: Recipe) -> Path:
    """Run ``recipe.cfg`` to ``train.steps`` steps. Returns the run folder ``out_dir/name``.

    Single process, or one rank of a torchrun job. With ``train.resume`` the run continues
    from its latest checkpoint (a fresh start when there is none).
    """
    recipe.validate()
    cfg = recipe.cfg
    info = distributed.setup(cfg.train.device)
    try:
        run_dir = Path(cfg.train.out_dir) / cfg.name
        resume_from = prepare_run_dir(run_dir, cfg, info)
        state = recipe.build_state(info)
        if resume_from is not None:
            restore(state, resume_from)
            if info.is_main:
                logger.info("resumed %s at step %d", resume_from, state.step)
        if info.is_main:
            _log_summary(recipe, state)
        if state.step >= cfg.train.steps:
            return run_dir
        log = RunLogger(run_dir, info.is_main, cfg.train.steps, state.step,
                        cfg.train.tensorboard, cfg.train.progress, cfg.name)
        try:
            _loop(recipe, state, log, run_dir)
        finally:
            log.close()
        recipe.finish(state, run_dir)
        return run_dir
    finally:
        distributed.teardown(info)


def _loop(recipe: Recipe, state: EngineState, log: RunLogger, run_dir: Path) -> None:
    cfg = state.cfg.train
    batches = iter(recipe.batches(state))
    window: list[dict[str, float]] = []
    tick, tick_step, tick_position = time.perf_counter(), state.step, state.data_position
    while state.step < cfg.steps:
        window.append(recipe.train_step(state, next(batches)))
        step, final = state.step, state.step >= cfg.steps
        log.progress(1, **recipe.postfix(window[-1]))
        if step % cfg.log_every == 0 or final:
            elapsed = max(time.perf_counter() - tick, 1e-9)
            record = recipe.log_record(state, window)
            record["perf/steps_per_s"] = (step - tick_step) / elapsed
            record["perf/samples_per_s"] = (state.data_position - tick_position) / elapsed
            record["perf/peak_memory_gib"] = peak_memory_gib(state.dist.device)
            log.scalars(step, record)
            window, tick = [], time.perf_counter()
            tick_step, tick_position = step, state.data_position
        recipe.after_step(state, log)
        check_nonfinite(state.nonfinite_consecutive, state.nonfinite_total, cfg.max_nonfinite,
                        step, final, run_dir)
        if (step % cfg.ckpt_every == 0 or final) and state.nonfinite_consecutive == 0:
            recipe.before_save(state)
            save(state, run_dir)  # never inside a NaN streak: the last checkpoint stays good


def _log_summary(recipe: Recipe, state: EngineState) -> None:
    total = sum(p.numel() for p in state.model.parameters())
    trainable = sum(p.numel() for p in state.model.parameters() if p.requires_grad)
    logger.info("%s: %s (%.1fM parameters, %.1fM trained), %d rank(s) on %s, %s",
                state.cfg.name, recipe.describe(state) or type(state.model).__name__,
                total / 1e6, trainable / 1e6, state.dist.world_size, state.dist.device.type,
                state.cfg.train.precision)


def prepare_run_dir(run_dir: Path, cfg, info: DistInfo) -> Path | None:
    """Create the run folder, save the config; returns the checkpoint to resume or None.

    A fresh run into a folder that already holds a run moves the old checkpoints, log,
    TensorBoard events and export aside to ``superseded-<time>/`` (nothing is deleted).
    """
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (cfg.train.resume and latest_checkpoint(run_dir) is not None):
            _supersede(run_dir)
        save_config(cfg, run_dir / "config.yaml")
    distributed.barrier(info)
    return latest_checkpoint(run_dir) if cfg.train.resume else None


def _supersede(run_dir: Path) -> None:
    old = [run_dir / name for name in SUPERSEDED if (run_dir / name).exists()]
    if not old:
        return
    dest = run_dir / time.strftime("superseded-%Y%m%d-%H%M%S")
    n = 1
    while dest.exists():  # two fresh runs within a second
        dest, n = dest.with_name(f"{dest.name.split('.')[0]}.{n}"), n + 1
    dest.mkdir()
    for p in old:
        p.rename(dest / p.name)
    logger.warning("fresh run in %s: the previous run's files moved to %s (use --resume to "
                   "continue a run instead)", run_dir, dest)
