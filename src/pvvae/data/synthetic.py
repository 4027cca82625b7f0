"""Procedural videos of bouncing shapes with ground-truth flow and point tracks.

The scene is built so that the future is predictable from the past, the property the
predictive reconstruction objective of paper section 3.1 exploits:

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

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from pvvae.data.synthetic_scene import (
    SHAPE_KINDS,
    composite_shapes,
    flow_field,
    largest_kind,
    point_tracks,
    render_background,
    sample_background,
    sample_shapes,
)


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
    speed_range: tuple[float, float] = (0.01, 0.045)
    radius_range: tuple[float, float] = (0.10, 0.22)

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


def _with_overrides(config: SyntheticConfig | None, overrides: dict) -> SyntheticConfig:
    """``config`` (default :class:`SyntheticConfig()`) with the fields in ``overrides``."""
    return SyntheticConfig(**{**(config or SyntheticConfig()).__dict__, **overrides})


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
    cfg = _with_overrides(config, overrides)
    scene_rng, noise_rng, track_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(3)
    )
    shapes = sample_shapes(scene_rng, cfg)
    bg = sample_background(scene_rng, cfg)
    xs = np.arange(cfg.width, dtype=np.float32)
    ys = np.arange(cfg.height, dtype=np.float32)
    frames = render_background(bg, cfg, xs, ys)  # (3, T, H, W) in [0, 1]
    owner = composite_shapes(frames, shapes, xs, ys, cfg.stripes)
    if cfg.noise_std > 0:
        frames += cfg.noise_std * noise_rng.standard_normal(frames.shape, dtype=np.float32)
    video = np.clip(frames * 2.0 - 1.0, -1.0, 1.0, out=frames)
    item: dict[str, torch.Tensor | int] = {"video": torch.from_numpy(video)}
    item["label"] = largest_kind(shapes)
    if cfg.annotations:
        tracks, visible = point_tracks(track_rng, shapes, bg, cfg, xs, ys)
        item["flow"] = torch.from_numpy(flow_field(owner, shapes, bg))
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
    cfg = _with_overrides(config, overrides)
    scene_rng = np.random.default_rng(np.random.SeedSequence([seed, index]).spawn(3)[0])
    shapes = sample_shapes(scene_rng, cfg)
    xs = np.arange(cfg.width, dtype=np.float32)
    ys = np.arange(cfg.height, dtype=np.float32)
    frames = np.zeros((3, cfg.num_frames, cfg.height, cfg.width), dtype=np.float32)
    owner = composite_shapes(frames, shapes, xs, ys, cfg.stripes)  # (T, H, W), -1: none
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
