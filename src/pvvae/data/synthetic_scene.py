"""The scenes of :mod:`pvvae.data.synthetic`: sampling, rendering and ground truth.

A scene is a :class:`Background` and a stack of :class:`Shapes` drawn from one
``numpy`` Generator; :func:`render_background` and :func:`composite_shapes` draw its frames,
:func:`flow_field` and :func:`point_tracks` its ground truth. The content (what is drawn, the
coordinate convention) is described in :mod:`pvvae.data.synthetic`; lengths here are in
pixels, with the scene statistics below as fractions of the short side ``S``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the config lives with the public API, which imports this module
    from pvvae.data.synthetic import SyntheticConfig

SHAPE_KINDS: tuple[str, ...] = ("disc", "square", "triangle", "ring")

# Scene statistics, as fractions of the short side S (speeds in S per frame).
_ACCEL_MAX = 0.002
_PAN_SPEED_RANGE = (0.005, 0.025)
_STRIPE_PERIOD_RANGE = (0.12, 0.25)
_TEXTURE_PERIOD_RANGE = (0.12, 0.25)
_GRADIENT_WAVELENGTH_RANGE = (1.5, 3.0)
_TRACK_MARGIN = 1.5  # pixels between a sampled track point and any edge at frame 0


@dataclass(frozen=True)
class Shapes:
    """Sampled shape parameters, arrays over shapes ``K`` (bottom to top)."""

    kind: np.ndarray  # (K,) int index into SHAPE_KINDS
    radius: np.ndarray  # (K,) circumradius in pixels
    angle: np.ndarray  # (K,) orientation in radians
    color: np.ndarray  # (K, 3) RGB in [0, 1]
    stripe_dir: np.ndarray  # (K, 2) unit vector
    stripe_period: np.ndarray  # (K,) pixels
    stripe_phase: np.ndarray  # (K,)
    center: np.ndarray  # (K, T, 2) xy centre per frame (after bounces)


@dataclass(frozen=True)
class Background:
    """Sampled background parameters."""

    color0: np.ndarray  # (3,)
    color1: np.ndarray  # (3,)
    gradient_dir: np.ndarray  # (2,)
    gradient_wavelength: float
    gradient_phase: float
    texture_checker: bool
    texture_angle: float
    texture_period: float
    texture_amplitude: float
    pan_velocity: np.ndarray  # (2,) pixels per frame (zero without pan)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs (K,) in [0, 1]; returns (K, 3) in [0, 1]."""
    k = (np.array([5.0, 3.0, 1.0]) + h[:, None] * 6.0) % 6.0  # (K, 3)
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _fold(raw: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Reflect unbounded coordinates into ``[low, high]`` (elastic bounces off both walls).

    Args:
        raw: (K, T) unconstrained positions.
        low, high: (K, 1) bounds; where ``high <= low`` the midpoint is returned.
    Returns:
        (K, T) positions inside the bounds.
    """
    span = high - low
    safe = np.maximum(span, 1e-6)
    u = np.mod(raw - low, 2.0 * safe)
    folded = low + safe - np.abs(u - safe)
    return np.where(span > 0, folded, 0.5 * (low + high))


def sample_shapes(rng: np.random.Generator, cfg: SyntheticConfig) -> Shapes:
    """Draw shape parameters and their bouncing trajectories over ``cfg.num_frames`` frames."""
    size = float(min(cfg.height, cfg.width))
    k = int(rng.integers(cfg.num_shapes[0], cfg.num_shapes[1] + 1))
    kind = rng.integers(0, len(SHAPE_KINDS), size=k)
    radius = size * rng.uniform(*cfg.radius_range, size=k)
    angle = rng.uniform(0.0, 2.0 * math.pi, size=k)
    color = _hsv_to_rgb(rng.uniform(0, 1, k), rng.uniform(0.6, 1.0, k), rng.uniform(0.75, 1.0, k))
    stripe_angle = rng.uniform(0.0, 2.0 * math.pi, size=k)
    stripe_period = size * rng.uniform(*_STRIPE_PERIOD_RANGE, size=k)
    stripe_phase = rng.uniform(0.0, 2.0 * math.pi, size=k)
    high = np.array([cfg.width - 1.0, cfg.height - 1.0])  # (2,)
    start = radius[:, None] + rng.uniform(0, 1, (k, 2)) * (high - 2.0 * radius[:, None])
    speed = size * rng.uniform(*cfg.speed_range, size=k)
    heading = rng.uniform(0.0, 2.0 * math.pi, size=k)
    velocity = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)  # (K, 2)
    accel = size * _ACCEL_MAX * rng.uniform(-1, 1, (k, 2)) * float(cfg.acceleration)
    t = np.arange(cfg.num_frames, dtype=np.float64)[None, :, None]  # (1, T, 1)
    raw = start[:, None] + velocity[:, None] * t + 0.5 * accel[:, None] * t**2  # (K, T, 2)
    center = np.stack(
        [_fold(raw[..., i], radius[:, None], high[i] - radius[:, None]) for i in range(2)], axis=-1
    )  # (K, T, 2)
    stripe_dir = np.stack([np.cos(stripe_angle), np.sin(stripe_angle)], axis=1)
    return Shapes(kind, radius, angle, color, stripe_dir, stripe_period, stripe_phase, center)


def sample_background(rng: np.random.Generator, cfg: SyntheticConfig) -> Background:
    """Draw background colours, texture and pan velocity (drawn even without pan)."""
    size = float(min(cfg.height, cfg.width))
    colors = _hsv_to_rgb(rng.uniform(0, 1, 2), rng.uniform(0.1, 0.5, 2), rng.uniform(0.2, 0.6, 2))
    grad_angle = rng.uniform(0.0, 2.0 * math.pi)
    pan_angle = rng.uniform(0.0, 2.0 * math.pi)
    pan_speed = size * rng.uniform(*_PAN_SPEED_RANGE) * float(cfg.camera_pan)
    return Background(
        color0=colors[0],
        color1=colors[1],
        gradient_dir=np.array([math.cos(grad_angle), math.sin(grad_angle)]),
        gradient_wavelength=size * rng.uniform(*_GRADIENT_WAVELENGTH_RANGE),
        gradient_phase=rng.uniform(0.0, 2.0 * math.pi),
        texture_checker=bool(rng.integers(0, 2)),
        texture_angle=rng.uniform(0.0, 0.5 * math.pi),
        texture_period=size * rng.uniform(*_TEXTURE_PERIOD_RANGE),
        texture_amplitude=rng.uniform(0.1, 0.25),
        pan_velocity=pan_speed * np.array([math.cos(pan_angle), math.sin(pan_angle)]),
    )


def signed_distance(kind: int, radius: float, angle: float, dx: np.ndarray, dy: np.ndarray):
    """Signed distance in pixels (negative inside) to a shape centred at the origin.

    Args:
        kind: index into :data:`SHAPE_KINDS`.
        radius: circumradius in pixels; angle: orientation in radians.
        dx, dy: broadcastable arrays of offsets from the shape centre.
    Returns:
        Array of the broadcast shape of ``dx`` and ``dy``.
    """
    name = SHAPE_KINDS[kind]
    if name == "disc":
        return np.sqrt(dx * dx + dy * dy) - radius
    if name == "ring":  # outer radius r, inner radius r / 2
        return np.abs(np.sqrt(dx * dx + dy * dy) - 0.75 * radius) - 0.25 * radius
    c, s = math.cos(angle), math.sin(angle)
    if name == "square":  # half side r / sqrt(2): Chebyshev distance (exact along edges)
        lx, ly = c * dx + s * dy, -s * dx + c * dy
        return np.maximum(np.abs(lx), np.abs(ly)) - radius / math.sqrt(2.0)
    # equilateral triangle, inradius r / 2: distance to the farthest edge line
    normals = [(math.cos(angle + a), math.sin(angle + a)) for a in (0.0, 2.094395, 4.188790)]
    dist = [nx * dx + ny * dy for nx, ny in normals]
    return np.maximum(np.maximum(dist[0], dist[1]), dist[2]) - 0.5 * radius


def _shape_offsets(shapes: Shapes, k: int, xs: np.ndarray, ys: np.ndarray):
    """Float32 offsets of the pixel grid from shape ``k``'s centre: ((T, 1, W), (T, H, 1))."""
    center = shapes.center[k].astype(np.float32)  # (T, 2)
    dx = xs[None, None, :] - center[:, 0, None, None]  # (T, 1, W)
    dy = ys[None, :, None] - center[:, 1, None, None]  # (T, H, 1)
    return dx, dy


def _sin_of_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sin(a + b)`` for ``a`` (T, 1, W) and ``b`` (T, H, 1) with trig on the small arrays only."""
    return np.sin(a) * np.cos(b) + np.cos(a) * np.sin(b)  # (T, H, W)


def render_background(bg: Background, cfg: SyntheticConfig, xs: np.ndarray, ys: np.ndarray):
    """Background frames (3, T, H, W) in [0, 1] (before noise), panned by ``bg.pan_velocity``.

    Every term is a sinusoid of a linear function of the world coordinates ``(u, v)``, so it
    splits into a function of ``u`` (T, 1, W) and one of ``v`` (T, H, 1) (see ``_sin_of_sum``).
    """
    f32 = np.float32
    shift = (np.arange(cfg.num_frames)[:, None] * bg.pan_velocity).astype(f32)  # (T, 2)
    u = xs[None, None, :] - shift[:, 0, None, None]  # (T, 1, W) world x
    v = ys[None, :, None] - shift[:, 1, None, None]  # (T, H, 1) world y
    k = f32(2 * math.pi / bg.gradient_wavelength) * bg.gradient_dir.astype(f32)  # (2,)
    g = 0.5 + 0.5 * _sin_of_sum(k[0] * u + f32(bg.gradient_phase), k[1] * v)  # (T, H, W)
    w = 2 * math.pi / bg.texture_period
    c, s = f32(w * math.cos(bg.texture_angle)), f32(w * math.sin(bg.texture_angle))
    tu, tv = _sin_of_sum(c * u, s * v), _sin_of_sum(-s * u, c * v)  # (T, H, W) each
    texture = np.tanh(2.5 * tu * tv) / f32(math.tanh(2.5)) if bg.texture_checker else (tu + tv) / 2
    amplitude = f32(bg.texture_amplitude) if cfg.texture else f32(0.0)
    shade = 1.0 + amplitude * texture  # (T, H, W)
    color0 = bg.color0.astype(f32)[:, None, None, None]
    delta = (bg.color1 - bg.color0).astype(f32)[:, None, None, None]
    return (color0 + delta * g) * shade  # (3, T, H, W)


def composite_shapes(
    frames: np.ndarray, shapes: Shapes, xs: np.ndarray, ys: np.ndarray, stripes: bool = True
):
    """Alpha-composite the shapes over ``frames`` (3, T, H, W) in place, bottom to top.

    Only the pixels a shape touches (coverage > 0) are shaded, which keeps this cheap.

    Returns:
        owner: (T, H, W) int16, index of the topmost shape with coverage > 0.5, -1 background.
    """
    owner = np.full(frames.shape[1:], -1, dtype=np.int16)
    flat = frames.reshape(3, -1)  # (3, T*H*W) view
    for k in range(len(shapes.kind)):
        dx, dy = _shape_offsets(shapes, k, xs, ys)
        sd = signed_distance(int(shapes.kind[k]), shapes.radius[k], shapes.angle[k], dx, dy)
        owner[sd < 0] = k
        touched = np.flatnonzero(sd < 0.5)  # coverage > 0
        alpha = np.clip(0.5 - sd.reshape(-1)[touched], 0.0, 1.0)  # one-pixel anti-aliasing ramp
        t_idx, rest = np.divmod(touched, len(xs) * len(ys))
        y_idx, x_idx = np.divmod(rest, len(xs))
        center = shapes.center[k].astype(np.float32)
        along = (shapes.stripe_dir[k, 0] * (xs[x_idx] - center[t_idx, 0])
                 + shapes.stripe_dir[k, 1] * (ys[y_idx] - center[t_idx, 1]))  # moves with shape
        wave = 0.5 + 0.5 * np.sin(2 * math.pi * along / shapes.stripe_period[k]
                                  + shapes.stripe_phase[k])
        fill = shapes.color[k][:, None] * (1.0 - 0.3 * wave * float(stripes))  # (3, P)
        flat[:, touched] += alpha * (fill - flat[:, touched])
    return owner


def flow_field(owner: np.ndarray, shapes: Shapes, bg: Background) -> np.ndarray:
    """Forward flow (2, T-1, H, W) from the per-pixel owner map (T, H, W)."""
    num_frames = owner.shape[0]
    disp = np.empty((len(shapes.kind) + 1, max(num_frames - 1, 0), 2), dtype=np.float32)
    disp[0] = bg.pan_velocity  # background rows, broadcast over time
    disp[1:] = np.diff(shapes.center, axis=1)  # (K, T-1, 2)
    t = np.arange(num_frames - 1)[:, None, None]
    flow = disp[owner[:-1].astype(np.int64) + 1, t]  # (T-1, H, W, 2)
    return np.ascontiguousarray(np.moveaxis(flow, -1, 0))  # (2, T-1, H, W)


def _topmost_at(shapes: Shapes, points: np.ndarray) -> np.ndarray:
    """Topmost shape index (-1 background) at continuous points (N, T, 2) over time."""
    top = np.full(points.shape[:2], -1, dtype=np.int64)
    for k in range(len(shapes.kind)):
        dx = points[..., 0] - shapes.center[k, None, :, 0]  # (N, T)
        dy = points[..., 1] - shapes.center[k, None, :, 1]
        sd = signed_distance(int(shapes.kind[k]), shapes.radius[k], shapes.angle[k], dx, dy)
        top[sd < 0] = k
    return top


def _track_candidates(shapes: Shapes, xs: np.ndarray, ys: np.ndarray):
    """Frame-0 pixels at least ``_TRACK_MARGIN`` from any edge.

    Returns:
        (shape_pixels, shape_ids, background_pixels): flat pixel indices of shape interiors with
        their owner, and flat indices of clear background pixels.
    """
    clear = np.ones((len(ys), len(xs)), dtype=bool)  # nothing above within the margin
    idx, ids = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for k in reversed(range(len(shapes.kind))):
        dx = xs[None, :] - shapes.center[k, 0, 0]
        dy = ys[:, None] - shapes.center[k, 0, 1]
        sd = signed_distance(int(shapes.kind[k]), shapes.radius[k], shapes.angle[k], dx, dy)
        inner = np.flatnonzero(clear & (sd <= -_TRACK_MARGIN))
        idx.append(inner)
        ids.append(np.full(len(inner), k))
        clear &= sd >= _TRACK_MARGIN
    return np.concatenate(idx), np.concatenate(ids), np.flatnonzero(clear)


def _choose(rng: np.random.Generator, count: int, pool: int) -> np.ndarray:
    """``count`` indices into a pool of ``pool`` (without replacement when possible)."""
    return rng.choice(pool, size=count, replace=count > pool)


def point_tracks(rng, shapes: Shapes, bg: Background, cfg: SyntheticConfig, xs, ys):
    """Point tracks (N, T, 2) float32 xy and visibility (N, T) bool, sampled at frame 0."""
    n = cfg.num_tracks
    shape_px, shape_ids, bg_px = _track_candidates(shapes, xs, ys)
    n_shape = n // 2 if len(shape_px) else 0
    n_shape = n if len(bg_px) == 0 and len(shape_px) else n_shape
    sel = _choose(rng, n_shape, len(shape_px)) if n_shape else np.zeros(0, dtype=np.int64)
    if len(bg_px):
        bg_sel = bg_px[_choose(rng, n - n_shape, len(bg_px))]
    else:  # degenerate frame with no clear pixel: any pixel, background surface
        bg_sel = rng.choice(len(xs) * len(ys), size=n - n_shape)
    flat = np.concatenate([shape_px[sel], bg_sel])
    obj = np.concatenate([shape_ids[sel], np.full(n - n_shape, -1)])  # (N,)
    start = np.stack([xs[flat % len(xs)], ys[flat // len(xs)]], axis=-1).astype(np.float64)
    t = np.arange(cfg.num_frames, dtype=np.float64)
    pan = bg.pan_velocity[None, :] * t[:, None]  # (T, 2)
    moves = np.concatenate([pan[None], shapes.center - shapes.center[:, :1]])  # (K+1, T, 2)
    points = start[:, None, :] + moves[obj + 1]  # (N, T, 2)
    inside = (
        (points[..., 0] >= 0) & (points[..., 0] <= len(xs) - 1)
        & (points[..., 1] >= 0) & (points[..., 1] <= len(ys) - 1)
    )
    visible = inside & (_topmost_at(shapes, points) == obj[:, None])
    return points.astype(np.float32), visible


def largest_kind(shapes: Shapes) -> int:
    """Class label: kind of the largest shape (0 when the clip has no shape)."""
    return int(shapes.kind[np.argmax(shapes.radius)]) if len(shapes.kind) else 0
