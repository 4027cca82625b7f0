"""Procedural videos of bouncing shapes with ground-truth flow and point tracks.

The scene is built so that the future is predictable from the past, the property the
predictive reconstruction objective of seed section 3.1 exploits:

* Background: a smooth two-colour gradient (long-wavelength sinusoid) times a sine or soft
  checker texture, plus optional low i.i.d. pixel noise. It is a continuous function of world
  coordinates, rendered analytically at every frame.
* Camera pan (``camera_pan=True``): the background translates by a constant velocity
  ``v_bg`` pixels per frame with sub-pixel smoothness (no integer rounding: the texture is
  evaluated at the shifted continuous coordinates). Shapes move in screen coordinates and are
  not affected by the pan.
* Shapes (disc, square, triangle, ring; squares and triangles with a fixed random
  orientation, no rotation over time), each with a flat colour modulated by stripes that move
  with the shape, anti-aliased edges (one-pixel ramp of the signed distance) and drawn in
  index order (the last one on top). They move with constant velocities (optionally a small
  constant acceleration) and bounce elastically off the frame borders, so the centre stays at
  least one radius inside the frame.

All lengths are fractions of the short side ``S = min(H, W)``, so the same ``(seed, index)``
renders the same scene at any resolution of the same aspect ratio (up to sub-pixel offsets).
Coordinates are ``(x, y)`` in pixels with ``(0, 0)`` the centre of the top-left pixel
(the ``grid_sample(..., align_corners=True)`` convention).

Ground truth per clip:

* ``flow`` (2, T-1, H, W): forward motion (dx, dy) in pixels from frame ``i`` to ``i+1`` of the
  surface seen at each pixel of frame ``i``: the displacement of the topmost shape covering
  the pixel (coverage > 0.5), else the background pan velocity (zero without pan).
* ``tracks`` (N, T, 2) and ``visible`` (N, T): ``N`` points sampled at frame 0 (half on the
  shapes' interiors, half on the background, at least 1.5 px from any edge); a point is
  visible while it is inside the frame and its surface is the topmost one at its position.
* ``label``: index into :data:`SHAPE_KINDS` of the largest shape (largest radius), the class
  used by the class-conditional generation path.

Randomness: one ``numpy`` Generator seeded from ``(seed, index)`` (no global RNG); the scene,
the pixel noise and the track sampling use independent child streams, so turning annotations
or noise off does not change the rest of the clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

SHAPE_KINDS: tuple[str, ...] = ("disc", "square", "triangle", "ring")

# Scene statistics, as fractions of the short side S (speeds in S per frame).
_RADIUS_RANGE = (0.10, 0.22)  # default of SyntheticConfig.radius_range
_SPEED_RANGE = (0.01, 0.045)  # default of SyntheticConfig.speed_range
_ACCEL_MAX = 0.002
_PAN_SPEED_RANGE = (0.005, 0.025)
_STRIPE_PERIOD_RANGE = (0.12, 0.25)
_TEXTURE_PERIOD_RANGE = (0.12, 0.25)
_GRADIENT_WAVELENGTH_RANGE = (1.5, 3.0)
_TRACK_MARGIN = 1.5  # pixels between a sampled track point and any edge at frame 0


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of :func:`synthetic_clip` (the content statistics are fixed, see module doc).

    Attributes:
        num_frames: frames per clip ``1 + T`` (17 is standard; any value >= 1 works).
        height, width: frame size in pixels.
        num_shapes: inclusive range ``(lo, hi)`` of the number of shapes.
        camera_pan: translate the background with a constant sub-pixel velocity.
        acceleration: give each shape a small constant acceleration (off by default).
        noise_std: std of i.i.d. Gaussian pixel noise, in [0, 1] intensity units.
        num_tracks: number of point tracks ``N``.
        annotations: also return ``flow``, ``tracks`` and ``visible`` (cheaper when False).
        texture: modulate the background gradient by a sine / soft-checker texture.
        stripes: modulate each shape's flat colour by stripes that move with it.
        speed_range: shape speeds, in short sides per frame.
        radius_range: shape circumradii, in short sides.
    """

    num_frames: int = 17
    height: int = 64
    width: int = 64
    num_shapes: tuple[int, int] = (1, 3)
    camera_pan: bool = True
    acceleration: bool = False
    noise_std: float = 0.01
    num_tracks: int = 16
    annotations: bool = True
    texture: bool = True
    stripes: bool = True
    speed_range: tuple[float, float] = _SPEED_RANGE
    radius_range: tuple[float, float] = _RADIUS_RANGE

    def __post_init__(self) -> None:
        lo, hi = self.num_shapes
        if not 0 <= lo <= hi:
            raise ValueError(f"num_shapes must be a range 0 <= lo <= hi, got {self.num_shapes}")
        if self.num_frames < 1 or self.height < 2 or self.width < 2:
            raise ValueError(
                f"need num_frames >= 1 and a frame of at least 2x2, got "
                f"{self.num_frames}x{self.height}x{self.width}"
            )
        if self.noise_std < 0 or self.num_tracks < 0:
            raise ValueError("noise_std and num_tracks must be non-negative")
        for name in ("speed_range", "radius_range"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be 0 <= lo <= hi, got {(lo, hi)}")


# Named content settings. "textured": the generator's defaults (sine / checker backgrounds,
# striped shapes, pixel noise). "proving_ground": what a small t4s16c64 model can learn on a
# CPU within minutes while the future stays predictable from the past: low-frequency
# backgrounds (a smooth two-colour gradient, optionally panned), flat-coloured shapes with
# anti-aliased edges, constant velocities with bounces and occlusions, four shape classes,
# no pixel noise, shapes large against the 16 x 16 pixels of a latent cell and fast enough
# that copying the last frame is a weak predictor.
SYNTHETIC_PRESETS: dict[str, dict] = {
    "textured": {},
    "proving_ground": dict(
        texture=False, stripes=False, noise_std=0.0, speed_range=(0.02, 0.05),
        radius_range=(0.15, 0.3),
    ),
}


def preset_config(name: str, **fields) -> SyntheticConfig:
    """A :class:`SyntheticConfig` with preset ``name``'s settings, then ``fields`` over them."""
    if name not in SYNTHETIC_PRESETS:
        raise ValueError(f"unknown synthetic preset {name!r}; valid: {sorted(SYNTHETIC_PRESETS)}")
    return SyntheticConfig(**{**SYNTHETIC_PRESETS[name], **fields})


@dataclass(frozen=True)
class _Shapes:
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
class _Background:
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


def _sample_shapes(rng: np.random.Generator, cfg: SyntheticConfig) -> _Shapes:
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
    return _Shapes(kind, radius, angle, color, stripe_dir, stripe_period, stripe_phase, center)


def _sample_background(rng: np.random.Generator, cfg: SyntheticConfig) -> _Background:
    """Draw background colours, texture and pan velocity (drawn even without pan)."""
    size = float(min(cfg.height, cfg.width))
    colors = _hsv_to_rgb(rng.uniform(0, 1, 2), rng.uniform(0.1, 0.5, 2), rng.uniform(0.2, 0.6, 2))
    grad_angle = rng.uniform(0.0, 2.0 * math.pi)
    pan_angle = rng.uniform(0.0, 2.0 * math.pi)
    pan_speed = size * rng.uniform(*_PAN_SPEED_RANGE) * float(cfg.camera_pan)
    return _Background(
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


def _signed_distance(kind: int, radius: float, angle: float, dx: np.ndarray, dy: np.ndarray):
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


def _shape_offsets(shapes: _Shapes, k: int, xs: np.ndarray, ys: np.ndarray):
    """Float32 offsets of the pixel grid from shape ``k``'s centre: ((T, 1, W), (T, H, 1))."""
    center = shapes.center[k].astype(np.float32)  # (T, 2)
    dx = xs[None, None, :] - center[:, 0, None, None]  # (T, 1, W)
    dy = ys[None, :, None] - center[:, 1, None, None]  # (T, H, 1)
    return dx, dy


def _sin_of_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sin(a + b)`` for ``a`` (T, 1, W) and ``b`` (T, H, 1) with trig on the small arrays only."""
    return np.sin(a) * np.cos(b) + np.cos(a) * np.sin(b)  # (T, H, W)


def _render_background(bg: _Background, cfg: SyntheticConfig, xs: np.ndarray, ys: np.ndarray):
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


def _composite_shapes(
    frames: np.ndarray, shapes: _Shapes, xs: np.ndarray, ys: np.ndarray, stripes: bool = True
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
        sd = _signed_distance(int(shapes.kind[k]), shapes.radius[k], shapes.angle[k], dx, dy)
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


def _flow(owner: np.ndarray, shapes: _Shapes, bg: _Background) -> np.ndarray:
    """Forward flow (2, T-1, H, W) from the per-pixel owner map (T, H, W)."""
    num_frames = owner.shape[0]
    disp = np.empty((len(shapes.kind) + 1, max(num_frames - 1, 0), 2), dtype=np.float32)
    disp[0] = bg.pan_velocity  # background rows, broadcast over time
    disp[1:] = np.diff(shapes.center, axis=1)  # (K, T-1, 2)
    t = np.arange(num_frames - 1)[:, None, None]
    flow = disp[owner[:-1].astype(np.int64) + 1, t]  # (T-1, H, W, 2)
    return np.ascontiguousarray(np.moveaxis(flow, -1, 0))  # (2, T-1, H, W)


def _topmost_at(shapes: _Shapes, points: np.ndarray) -> np.ndarray:
    """Topmost shape index (-1 background) at continuous points (N, T, 2) over time."""
    top = np.full(points.shape[:2], -1, dtype=np.int64)
    for k in range(len(shapes.kind)):
        dx = points[..., 0] - shapes.center[k, None, :, 0]  # (N, T)
        dy = points[..., 1] - shapes.center[k, None, :, 1]
        sd = _signed_distance(int(shapes.kind[k]), shapes.radius[k], shapes.angle[k], dx, dy)
        top[sd < 0] = k
    return top


def _track_candidates(shapes: _Shapes, xs: np.ndarray, ys: np.ndarray):
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
        sd = _signed_distance(int(shapes.kind[k]), shapes.radius[k], shapes.angle[k], dx, dy)
        inner = np.flatnonzero(clear & (sd <= -_TRACK_MARGIN))
        idx.append(inner)
        ids.append(np.full(len(inner), k))
        clear &= sd >= _TRACK_MARGIN
    return np.concatenate(idx), np.concatenate(ids), np.flatnonzero(clear)


def _choose(rng: np.random.Generator, count: int, pool: int) -> np.ndarray:
    """``count`` indices into a pool of ``pool`` (without replacement when possible)."""
    return rng.choice(pool, size=count, replace=count > pool)


def _tracks(rng, shapes: _Shapes, bg: _Background, cfg: SyntheticConfig, xs, ys):
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


def _label(shapes: _Shapes) -> int:
    """Class label: kind of the largest shape (0 when the clip has no shape)."""
    return int(shapes.kind[np.argmax(shapes.radius)]) if len(shapes.kind) else 0


def synthetic_clip(
    seed: int, index: int, config: SyntheticConfig | None = None, **overrides
) -> dict[str, torch.Tensor | int]:
    """Render clip ``index`` of the synthetic stream ``seed`` (deterministic in both).

    Args:
        seed, index: non-negative integers; the clip depends on nothing else.
        config: generation parameters (default :class:`SyntheticConfig()`).
        **overrides: fields of :class:`SyntheticConfig` replacing those of ``config``
            (e.g. ``num_frames=9, camera_pan=False``); unknown names raise ``TypeError``.
    Returns:
        dict with
        ``video`` (3, T, H, W) float32 in [-1, 1];
        ``label`` int, index into :data:`SHAPE_KINDS` of the largest shape;
        and when ``config.annotations``:
        ``flow`` (2, T-1, H, W) float32 forward flow (dx, dy) in pixels from frame i to i+1;
        ``tracks`` (N, T, 2) float32 xy point tracks; ``visible`` (N, T) bool.
    """
    cfg = SyntheticConfig(**{**(config or SyntheticConfig()).__dict__, **overrides})
    scene_rng, noise_rng, track_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(3)
    )
    shapes = _sample_shapes(scene_rng, cfg)
    bg = _sample_background(scene_rng, cfg)
    xs = np.arange(cfg.width, dtype=np.float32)
    ys = np.arange(cfg.height, dtype=np.float32)
    frames = _render_background(bg, cfg, xs, ys)  # (3, T, H, W) in [0, 1]
    owner = _composite_shapes(frames, shapes, xs, ys, cfg.stripes)
    if cfg.noise_std > 0:
        frames += cfg.noise_std * noise_rng.standard_normal(frames.shape, dtype=np.float32)
    video = np.clip(frames * 2.0 - 1.0, -1.0, 1.0, out=frames)
    item: dict[str, torch.Tensor | int] = {"video": torch.from_numpy(video)}
    item["label"] = _label(shapes)
    if cfg.annotations:
        tracks, visible = _tracks(track_rng, shapes, bg, cfg, xs, ys)
        item["flow"] = torch.from_numpy(_flow(owner, shapes, bg))
        item["tracks"] = torch.from_numpy(tracks)
        item["visible"] = torch.from_numpy(visible)
    return item


def clip_objects(
    seed: int, index: int, config: SyntheticConfig | None = None, **overrides
) -> dict[str, torch.Tensor]:
    """The shapes of clip ``index`` of stream ``seed`` (the same scene as :func:`synthetic_clip`).

    Returns ``colours`` (K, 3) float32, each shape's flat fill in [-1, 1] (the stripes of the
    ``textured`` preset modulate it by up to 30%); ``masks`` (K, T, H, W) bool, where shape k
    is the topmost with coverage > 0.5 (its visible part); ``centres`` (K, T, 2) float32 xy in
    pixels. Used by :mod:`pvvae.eval.motion`.
    """
    cfg = SyntheticConfig(**{**(config or SyntheticConfig()).__dict__, **overrides})
    scene_rng = np.random.default_rng(np.random.SeedSequence([seed, index]).spawn(3)[0])
    shapes = _sample_shapes(scene_rng, cfg)
    xs = np.arange(cfg.width, dtype=np.float32)
    ys = np.arange(cfg.height, dtype=np.float32)
    frames = np.zeros((3, cfg.num_frames, cfg.height, cfg.width), dtype=np.float32)
    owner = _composite_shapes(frames, shapes, xs, ys, cfg.stripes)  # (T, H, W), -1: none
    owner = torch.from_numpy(owner.astype(np.int64))
    ids = torch.arange(len(shapes.kind))[:, None, None, None]
    return {
        "colours": torch.from_numpy(shapes.color.astype(np.float32) * 2.0 - 1.0),
        "masks": owner[None] == ids,
        "centres": torch.from_numpy(shapes.center.astype(np.float32)),
    }


class SyntheticVideoDataset(Dataset):
    """A map-style dataset of ``num_clips`` procedural clips rendered on the fly.

    Item ``i`` is ``synthetic_clip(seed, i, config)``: deterministic, no state, safe with any
    number of DataLoader workers. See the module docstring for the content and ground truth.

    Args:
        num_clips: dataset length.
        num_frames: frames per clip ``1 + T`` (17 standard).
        height, width: frame size in pixels.
        seed: stream seed; different seeds give disjoint-looking datasets.
        preset: a name in :data:`SYNTHETIC_PRESETS`: "proving_ground" (default: what the
            library trains and evaluates on) or "textured" (the generator's defaults).
        **fields: other :class:`SyntheticConfig` fields (``num_shapes``, ``camera_pan``,
            ``acceleration``, ``noise_std``, ``num_tracks``, ``annotations``, ``texture``,
            ``stripes``, ``speed_range``), applied over the preset; unknown names raise
            ``TypeError``. ``annotations=False`` makes items about twice as fast.
    """

    num_classes: int = len(SHAPE_KINDS)
    classes: tuple[str, ...] = SHAPE_KINDS  # label -> name, as in the folder datasets

    def __init__(
        self,
        num_clips: int,
        num_frames: int = 17,
        height: int = 64,
        width: int = 64,
        seed: int = 0,
        preset: str = "proving_ground",
        **fields,
    ) -> None:
        if num_clips < 0:
            raise ValueError(f"num_clips must be >= 0, got {num_clips}")
        self.num_clips = num_clips
        self.seed = seed
        if "num_shapes" in fields:
            fields["num_shapes"] = tuple(fields["num_shapes"])
        for name in ("speed_range", "radius_range"):
            if name in fields:
                fields[name] = tuple(fields[name])
        self.config = preset_config(
            preset, num_frames=num_frames, height=height, width=width, **fields
        )

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        """Clip ``index`` as a dict, see :func:`synthetic_clip` for keys and shapes."""
        if not 0 <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        return synthetic_clip(self.seed, index, self.config)

    def objects(self, index: int) -> dict[str, torch.Tensor]:
        """The shapes of clip ``index``: :func:`clip_objects` (colours, masks, centres)."""
        return clip_objects(self.seed, index, self.config)
