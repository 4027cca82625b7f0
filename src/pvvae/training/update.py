"""One training step's update, shared by every recipe of :mod:`pvvae.training.engine`.

:func:`update` applies a loss (backward, clipping, optimizer and schedule step) or skips it
when the loss or the gradient norm is NaN/Inf on some rank; :func:`with_fp32_fallback` runs
a step under the bf16 fallback of :mod:`pvvae.training.precision`; :func:`finish_step` ends
a step (EMA, non-finite counters, step and data position). Nothing here knows the model.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor, nn

from pvvae.training import distributed, parallel
from pvvae.training.distributed import DistInfo
from pvvae.training.precision import WHOLE_MODEL, BF16StepFailed, nonfinite_modules

if TYPE_CHECKING:
    from pvvae.training.engine import EngineState

T = TypeVar("T")


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


