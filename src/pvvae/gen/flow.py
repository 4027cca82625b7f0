"""Rectified flow (Liu et al. 2022, "Flow straight and fast", arXiv:2209.03003).

The paper trains Latte with rectified flow and samples with 100 Euler steps (section 4.1).
Conventions (the project notes on generation, "Rectified flow"):

* straight path ``x_t = (1 - t) x0 + t eps`` with ``eps ~ N(0, I)``; ``t = 1`` is pure noise;
* regression target ``v = dx_t/dt = eps - x0`` and loss ``E ||v_theta(x_t, t) - v||^2`` (MSE);
* ``t`` drawn ``uniform`` on ``[0, 1)`` or ``logit_normal``: ``t = sigmoid(n)``,
  ``n ~ N(mean, std)`` (Esser et al. 2024);
* sampling integrates ``dx/dt = v`` from ``t = 1`` down to ``t = 0``.

Models are plain callables ``model(x, t, y) -> v`` (:data:`VelocityFn`): ``x`` (B, C, t, h, w),
``t`` (B,) in ``[0, 1]``, ``y`` (B,) labels or ``None``. A :class:`pvvae.gen.latte.Latte` is
one; any wrapper (EMA copy, guidance, preconditioning) can be another. All samplers follow the
:class:`Sampler` signature ``sampler(model, x, *, num_steps, **kwargs) -> x0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

import torch
from torch import Tensor

__all__ = [
    "SAMPLERS",
    "T_SAMPLERS",
    "Sampler",
    "TSampler",
    "VelocityFn",
    "flow_matching_loss",
    "guided_velocity",
    "interpolate",
    "sample_euler",
    "sample_heun",
    "sample_t_logit_normal",
    "sample_t_uniform",
    "target_velocity",
    "time_grid",
]

VelocityFn = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]
"""``model(x, t, y) -> v``: x (B, C, t, h, w), t (B,) in [0, 1], y (B,) or None -> v like x."""


class TSampler(Protocol):
    """Draws flow times: ``t_sampler(n, *, generator=None, device=None) -> (n,) float32``."""

    def __call__(
        self, n: int, *, generator: torch.Generator | None = None, device=None
    ) -> Tensor: ...


class Sampler(Protocol):
    """The one signature shared by every ODE/SDE solver of this module.

    ``sampler(model, x, *, num_steps, guidance_scale=1.0, y=None, y_null=None, generator=None,
    progress=False, **kwargs) -> x0``

    Args:
        model: a :data:`VelocityFn`.
        x: (B, C, t, h, w) pure noise at ``t = 1``.
        num_steps: number of steps from ``t = 1`` to ``t = 0``.
        guidance_scale: classifier-free guidance weight ``w`` (1 disables guidance).
        y: (B,) labels, or ``None`` for unconditional models.
        y_null: (B,) null labels for guidance; defaults to ``model.null_label`` when present.
        generator: randomness of stochastic solvers (deterministic ones ignore it).
        progress: show a tqdm bar.

    Returns:
        (B, C, t, h, w) the sample at ``t = 0``.
    """

    def __call__(self, model: VelocityFn, x: Tensor, *, num_steps: int, **kwargs) -> Tensor: ...


# ----------------------------------------------------------------------------------------------
# Training: path, target, time sampling, loss
# ----------------------------------------------------------------------------------------------


def interpolate(x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """Point of the straight path ``x_t = (1 - t) x0 + t eps``.

    Args:
        x0: (B, ...) data latents.
        eps: (B, ...) Gaussian noise.
        t: (B,) flow times in ``[0, 1]``.

    Returns:
        (B, ...) ``x_t``.
    """
    t = t.to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))  # (B, 1, ..., 1)
    return (1 - t) * x0 + t * eps


def target_velocity(x0: Tensor, eps: Tensor) -> Tensor:
    """Velocity of the straight path, ``v = d x_t / dt = eps - x0`` (constant in ``t``)."""
    return eps - x0


def _draw_device(generator: torch.Generator | None, device) -> torch.device | str | None:
    """A generator only draws on its own device; the draw is then moved to ``device``."""
    return generator.device if generator is not None else device


def sample_t_uniform(n: int, *, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``t ~ U[0, 1)``.

    Args:
        n: number of times.
        generator: randomness (global RNG when ``None``); may live on another device.
        device: device of the result.

    Returns:
        (n,) float32.
    """
    t = torch.rand(n, generator=generator, device=_draw_device(generator, device))  # (n,)
    return t.to(device) if device is not None else t


def sample_t_logit_normal(
    n: int,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device=None,
) -> Tensor:
    """Logit-normal times ``t = sigmoid(mean + std * N(0, 1))`` (Esser et al. 2024, SD3).

    They lie in ``(0, 1)``, with median ``sigmoid(mean)``; ``mean = 0, std = 1`` is the
    default of the notes.

    Args:
        n: number of times.
        mean, std: parameters of the underlying normal.
        generator: randomness (global RNG when ``None``); may live on another device.
        device: device of the result.

    Returns:
        (n,) float32.
    """
    z = torch.randn(n, generator=generator, device=_draw_device(generator, device))  # (n,)
    t = torch.sigmoid(mean + std * z)  # (n,)
    return t.to(device) if device is not None else t


T_SAMPLERS: Mapping[str, TSampler] = MappingProxyType(
    {"uniform": sample_t_uniform, "logit_normal": sample_t_logit_normal}
)
"""Read-only registry of the time samplers by name."""


def flow_matching_loss(
    model: VelocityFn,
    x0: Tensor,
    y: Tensor | None = None,
    *,
    t_sampler: TSampler | str = "uniform",
    generator: torch.Generator | None = None,
    t: Tensor | None = None,
    eps: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Rectified-flow (conditional flow matching) loss ``E ||model(x_t, t, y) - (eps - x0)||^2``.

    Args:
        model: a :data:`VelocityFn`. Label dropout is the model's business; to drive it by the
            same generator wrap the model, e.g. ``lambda x, t, y: latte(x, t, y, generator=g)``.
        x0: (B, C, t, h, w) clean latents (already normalised by the VAE).
        y: (B,) labels or ``None``.
        t_sampler: ``"uniform"``, ``"logit_normal"`` (``sigmoid(N(0, 1))``) or any
            :class:`TSampler`, e.g. ``functools.partial(sample_t_logit_normal, mean=0.5)``.
        generator: randomness of ``t`` and ``eps`` (global RNG when ``None``).
        t: (B,) fixed times instead of drawing them (tests, evaluation on a grid).
        eps: (B, C, t, h, w) fixed noise instead of drawing it.

    Returns:
        ``(loss, metrics)``: the scalar loss (mean over all elements) with grad, and detached
        scalars ``{"loss", "t_mean", "v_target_sq", "v_pred_sq"}`` (mean squares of target and
        prediction, handy to spot a collapsed model).
    """
    b = x0.shape[0]
    if t is None:
        sampler = T_SAMPLERS[t_sampler] if isinstance(t_sampler, str) else t_sampler
        t = sampler(b, generator=generator, device=x0.device)  # (B,)
    if eps is None:
        draw = _draw_device(generator, x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=draw, dtype=x0.dtype)
        eps = eps.to(x0.device)  # (B, C, t, h, w)
    v = target_velocity(x0, eps)  # (B, C, t, h, w)
    v_pred = model(interpolate(x0, eps, t), t, y)  # (B, C, t, h, w)
    loss = (v_pred.float() - v.float()).pow(2).mean()
    metrics = {
        "loss": loss.detach(),
        "t_mean": t.float().mean().detach(),
        "v_target_sq": v.float().pow(2).mean().detach(),
        "v_pred_sq": v_pred.detach().float().pow(2).mean(),
    }
    return loss, metrics


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------


def time_grid(num_steps: int, *, shift: float = 1.0, device=None) -> Tensor:
    """Decreasing times ``1 = t_0 > t_1 > ... > t_N = 0`` for ``N = num_steps``.

    Uniform by default; ``shift != 1`` applies the SD3 resolution shift
    ``t' = s t / (1 + (s - 1) t)`` (``s > 1`` spends more steps near noise).

    Returns:
        (num_steps + 1,) float32.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    t = torch.linspace(1.0, 0.0, num_steps + 1, device=device)  # (N+1,)
    return shift * t / (1 + (shift - 1) * t)


def guided_velocity(
    model: VelocityFn,
    x: Tensor,
    t: Tensor,
    y: Tensor | None,
    y_null: Tensor | None,
    guidance_scale: float,
) -> Tensor:
    """Velocity with classifier-free guidance ``v = v_u + w (v_c - v_u)`` (Ho & Salimans 2022).

    With ``w == 1`` (or no labels) the model is called once on the conditional batch; otherwise
    the conditional and null-label passes are batched into one call of size ``2B``.

    Args:
        model: a :data:`VelocityFn`.
        x: (B, C, t, h, w) current state.
        t: (B,) current times.
        y: (B,) labels or ``None``.
        y_null: (B,) null labels (required when guidance is active).
        guidance_scale: ``w``.

    Returns:
        (B, C, t, h, w) velocity.
    """
    if guidance_scale == 1.0 or y is None:
        return model(x, t, y)
    if y_null is None:
        raise ValueError("classifier-free guidance needs y_null (or a model.null_label)")
    v = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, y_null]))  # (2B, C, ...)
    v_c, v_u = v.chunk(2)  # 2 x (B, C, t, h, w)
    return v_u + guidance_scale * (v_c - v_u)


def _resolve_null(model: VelocityFn, y: Tensor | None, y_null: Tensor | None, w: float):
    """Null labels for guidance: ``y_null`` if given, else ``model.null_label`` when defined."""
    if y is None or w == 1.0 or y_null is not None:
        return y_null
    null = getattr(model, "null_label", None)
    if null is None:
        raise ValueError("guidance_scale != 1 needs y_null or a model with a null_label")
    return torch.full_like(y, int(null))  # (B,)


def _steps(times: Tensor, progress: bool, name: str):
    """Pairs ``(t, t_next)`` of the grid, optionally wrapped in a tqdm bar."""
    pairs = list(zip(times[:-1].tolist(), times[1:].tolist()))
    if progress:
        from tqdm.auto import tqdm

        return tqdm(pairs, desc=name)
    return pairs


@torch.no_grad()
def sample_euler(
    model: VelocityFn,
    x: Tensor,
    *,
    num_steps: int = 100,
    guidance_scale: float = 1.0,
    y: Tensor | None = None,
    y_null: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    shift: float = 1.0,
) -> Tensor:
    """Euler integration of ``dx/dt = v(x, t)`` from ``t = 1`` (noise) to ``t = 0`` (data).

    ``x <- x + (t_next - t) v(x, t, y)`` on :func:`time_grid`; the paper uses 100 steps
    (section 4.1). Follows the :class:`Sampler` signature; ``generator`` is unused (the
    solver is deterministic) and accepted for uniformity. For a straight path with the exact
    velocity ``eps - x0`` any number of steps returns ``x0`` exactly.

    Args:
        model: a :data:`VelocityFn`.
        x: (B, C, t, h, w) noise at ``t = 1``.
        num_steps: number of model evaluations (doubled batch under guidance).
        guidance_scale: CFG weight ``w``, ``v = v_u + w (v_c - v_u)``.
        y: (B,) labels or ``None``.
        y_null: (B,) null labels; defaults to ``model.null_label``.
        generator: unused.
        progress: show a tqdm bar.
        shift: time-grid shift (1 = uniform grid).

    Returns:
        (B, C, t, h, w) sample at ``t = 0``.
    """
    del generator
    y_null = _resolve_null(model, y, y_null, guidance_scale)
    times = time_grid(num_steps, shift=shift)
    b = x.shape[0]
    for t, t_next in _steps(times, progress, "euler"):
        t_batch = torch.full((b,), t, device=x.device)  # (B,)
        v = guided_velocity(model, x, t_batch, y, y_null, guidance_scale)  # (B, C, t, h, w)
        x = x + (t_next - t) * v
    return x


@torch.no_grad()
def sample_heun(
    model: VelocityFn,
    x: Tensor,
    *,
    num_steps: int = 50,
    guidance_scale: float = 1.0,
    y: Tensor | None = None,
    y_null: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    shift: float = 1.0,
) -> Tensor:
    """Heun's second-order method (explicit trapezoid; Karras et al. 2022, Alg. 1 without
    churn) for ``dx/dt = v(x, t)`` from ``t = 1`` to ``t = 0``.

    ``x' = x + h v(x, t)``; ``x <- x + h (v(x, t) + v(x', t_next)) / 2`` with
    ``h = t_next - t``. The velocity is finite at ``t = 0``, so the correction is applied on
    every step (2 model evaluations per step). Same :class:`Sampler` signature and arguments
    as :func:`sample_euler`.

    Returns:
        (B, C, t, h, w) sample at ``t = 0``.
    """
    del generator
    y_null = _resolve_null(model, y, y_null, guidance_scale)
    times = time_grid(num_steps, shift=shift)
    b = x.shape[0]
    for t, t_next in _steps(times, progress, "heun"):
        h = t_next - t
        t_batch = torch.full((b,), t, device=x.device)  # (B,)
        v = guided_velocity(model, x, t_batch, y, y_null, guidance_scale)  # (B, C, t, h, w)
        x_pred = x + h * v
        t_next_batch = torch.full((b,), t_next, device=x.device)  # (B,)
        v_next = guided_velocity(model, x_pred, t_next_batch, y, y_null, guidance_scale)
        x = x + h * 0.5 * (v + v_next)
    return x


SAMPLERS: Mapping[str, Sampler] = MappingProxyType({"euler": sample_euler, "heun": sample_heun})
"""Read-only registry of the solvers by name; all follow :class:`Sampler`."""
