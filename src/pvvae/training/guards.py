"""The non-finite guard shared by ``pvvae train`` and ``pvvae gen train``.

A step whose loss or gradient norm is NaN/Inf is skipped (no optimizer, scheduler or EMA
update) and counted; no checkpoint is written during a streak of such steps, so the last
checkpoint holds good weights. :func:`check_nonfinite` stops the run with
:class:`NonFiniteLossError` after ``limit`` consecutive ones, and also when the run reaches its
last step inside a shorter streak (its final weights were never saved: exiting normally would
hide that). Nothing here knows about the model being trained.
"""

from __future__ import annotations

from pathlib import Path

from pvvae.training.checkpoint import latest_checkpoint


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps with a NaN/Inf loss or gradient, or a run that ended in
    such a streak."""


def check_nonfinite(
    consecutive: int, total: int, limit: int, step: int, final: bool, run_dir: Path
) -> None:
    """Raise :class:`NonFiniteLossError` when the run must stop (module docstring).

    Args:
        consecutive, total: skipped non-finite steps in the current streak and in the run.
        limit: ``train.max_nonfinite``.
        step: steps done so far.
        final: ``step`` is the run's last step.
        run_dir: the run folder (its latest checkpoint is named in the message).
    """
    if consecutive < limit and not (final and consecutive > 0):
        return
    last = latest_checkpoint(run_dir)
    what = (
        f"{limit} consecutive steps (up to step {step})"
        if consecutive >= limit
        else f"the run ended (step {step}) inside a streak of {consecutive} steps that"
    )
    raise NonFiniteLossError(
        f"{what} had a NaN/Inf loss or gradient and were skipped ({total} in total); the "
        f"final weights were not saved. The last good checkpoint is {last}. Lower optim.lr, "
        "raise optim.warmup_steps, use train.precision=fp32 or check the data, then resume "
        "with --resume."
    )
