"""Object-motion coherence of proving-ground clips without labels: do the bright shapes of a
clip move like rigid bodies, keep their mass and bounce off the walls? Works on any clip of
the ``proving_ground`` look (generated samples, reconstructions, corrupted real clips);
:mod:`pvvae.eval.motion` is the labelled counterpart (true masks and positions).

Pipeline per clip (``frames`` (3, T, H, W) in [-1, 1]):

1. **Foreground** (:func:`foreground`): pixels whose HSV value is above ``FG_VALUE`` and
   saturation above ``FG_SATURATION`` (on the [0, 1] scale). The proving ground draws shapes
   with value >= 0.75 and saturation >= 0.6 on backgrounds of value <= 0.6 and saturation
   <= 0.5 (:mod:`pvvae.data.synthetic`), so the thresholds sit between the two; the
   anti-aliased rims (mixtures with the background) mostly fall out.
2. **Objects** (:func:`object_colours`): the foreground pixels of all frames are split by
   colour, greedily: the densest cell of an RGB grid of side ``COLOUR_TOLERANCE`` gives a seed
   colour, refined twice by the mean of the pixels within ``COLOUR_TOLERANCE``; those pixels
   form an object and are removed; repeat while a cluster holds at least ``MIN_SHARE`` of the
   clip's foreground and ``MIN_PIXELS`` pixels per frame on average (at most ``MAX_OBJECTS``).
   Each object's per-frame mask is then :func:`pvvae.eval.motion.colour_masks` within the
   foreground. Two shapes of nearly the same colour count as one object (their joint centroid
   still moves smoothly between bounces).
3. **Tracks**: each object's centroid and pixel count per frame
   (:func:`pvvae.eval.motion.mask_centroids`); it is present where it has ``MIN_PIXELS``.

Per-clip measures (:func:`clip_coherence`):

* ``speed`` (px/frame): median centroid displacement between consecutive frames where the
  object is present in both (0 for a frozen clip);
* ``acceleration`` (px/frame^2): median norm of the centroid's second difference over
  triples of frames where it is present in all three (constant velocity gives 0; bounces
  and occlusions are rare enough not to move the median);
* ``persistence``: per object, the fraction of all T frames in which it keeps at least half
  of its median area (median over the frames where it is present); mean over objects;
* ``objects``: number of colour objects; ``foreground``: foreground fraction of all pixels;
* ``bounce``: of the large accelerations (norm above ``BOUNCE_ACCEL``), the fraction that a
  wall explains: the object's mask comes within ``BORDER_MARGIN`` px plus ``WALL_REACH`` of
  its equivalent radius (``sqrt(area / pi)``: a triangle or a rotated square bounces before
  its outline touches the border) of a frame border, and the acceleration points away from
  that border (its component along the inward normal is at least ``BOUNCE_COSINE`` of its
  norm). NaN when a clip has no large acceleration. Occlusions also make large accelerations
  of the visible centroid, so real clips score about 0.6, not 1 (docs/evaluation.md).

:func:`video_coherence` averages the per-clip values over clips (NaNs, e.g. clips without objects,
left out) and counts the clips.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from pvvae.eval.motion import COLOUR_TOLERANCE, MIN_PIXELS, colour_masks, mask_centroids

FG_VALUE = 0.675  # HSV value on [0, 1]: shapes >= 0.75, backgrounds <= 0.6
FG_SATURATION = 0.4  # HSV saturation: shapes >= 0.6, background colours <= 0.5
MIN_SHARE = 0.05  # of a clip's foreground pixels, for a colour cluster to be an object
MAX_OBJECTS = 8
BOUNCE_ACCEL = 1.0  # px / frame^2: a "large" acceleration (a bounce or an implausible jump)
BORDER_MARGIN = 2.0  # px
WALL_REACH = 0.4  # of an object's equivalent radius, added to BORDER_MARGIN
BOUNCE_COSINE = 0.8  # a wall's inward normal within about 37 degrees of the acceleration
METRICS = ("speed", "acceleration", "persistence", "objects", "foreground", "bounce")


def foreground(frames: Tensor) -> Tensor:
    """Bright, saturated pixels. frames (3, T, H, W) in [-1, 1] -> (T, H, W) bool."""
    rgb = (frames.float() + 1) / 2
    value = rgb.amax(dim=0)
    saturation = (value - rgb.amin(dim=0)) / value.clamp(min=1e-6)
    return (value > FG_VALUE) & (saturation > FG_SATURATION)


def _densest_colour(pixels: Tensor, width: float) -> Tensor:
    """Mean colour of the most populated cell of an RGB grid of side ``width``.
    pixels (M, 3) in [-1, 1] -> (3,)."""
    bins = math.ceil(2 / width) + 1
    cells = ((pixels + 1) / width).floor().long().clamp(0, bins - 1)
    key = (cells[:, 0] * bins + cells[:, 1]) * bins + cells[:, 2]
    best = torch.bincount(key, minlength=bins**3).argmax()
    return pixels[key == best].mean(dim=0)


def _near(pixels: Tensor, colour: Tensor, tolerance: float) -> Tensor:
    """(M,) bool: pixels (M, 3) within ``tolerance`` of ``colour`` (3,)."""
    return torch.linalg.vector_norm(pixels - colour, dim=1) < tolerance


def object_colours(
    frames: Tensor, fg: Tensor, tolerance: float = COLOUR_TOLERANCE
) -> Tensor:
    """The clip's object colours by greedy colour clustering (module docstring, step 2).
    frames (3, T, H, W) in [-1, 1], fg (T, H, W) bool -> (K, 3) in [-1, 1], K <= MAX_OBJECTS."""
    pixels = frames.float().permute(1, 2, 3, 0)[fg]  # (M, 3)
    least = max(MIN_SHARE * len(pixels), MIN_PIXELS * frames.shape[1])
    colours = []
    while len(pixels) >= least and len(colours) < MAX_OBJECTS:
        colour = _densest_colour(pixels, tolerance)
        for _ in range(2):
            near = _near(pixels, colour, tolerance)
            colour = pixels[near].mean(dim=0) if near.any() else colour
        near = _near(pixels, colour, tolerance)
        if near.sum() < least:
            break
        colours.append(colour)
        pixels = pixels[~near]
    return torch.stack(colours) if colours else frames.new_zeros(0, 3).float()


def object_masks(frames: Tensor, fg: Tensor | None = None) -> Tensor:
    """Per-object masks of one clip. frames (3, T, H, W) in [-1, 1], ``fg`` its
    :func:`foreground` (computed when None) -> (K, T, H, W) bool."""
    fg = foreground(frames) if fg is None else fg
    colours = object_colours(frames, fg)
    if len(colours) == 0:
        return torch.zeros(0, *fg.shape, dtype=torch.bool, device=fg.device)
    return colour_masks(frames.float(), colours) & fg[None]


def _differences(centres: Tensor, present: Tensor, order: int) -> tuple[Tensor, Tensor]:
    """Finite differences of centroid tracks where every frame involved is present.
    centres (K, T, 2), present (K, T) bool -> (vectors (P, 2), (object, middle frame) (P, 2))."""
    d, ok = centres, present
    for _ in range(order):
        d, ok = d[:, 1:] - d[:, :-1], ok[:, 1:] & ok[:, :-1]
    index = ok.nonzero()  # (P, 2): object, first frame of the window
    index[:, 1] += order // 2
    return d[ok], index


def _persistence(counts: Tensor, present: Tensor) -> Tensor:
    """Per object, the fraction of frames with at least half its median present area.
    counts, present (K, T) -> (K,)."""
    ref = torch.stack([c[p].median() if p.any() else c.new_tensor(0.0)
                       for c, p in zip(counts, present)])
    return ((counts >= 0.5 * ref[:, None]) & present).float().mean(dim=1)


def _walls(masks: Tensor, counts: Tensor) -> Tensor:
    """Which borders each object touches in each frame, as inward normals.
    masks (K, T, H, W) bool, counts (K, T) -> (K, T, 4, 2): a zero row where not touching
    (borders left, right, top, bottom)."""
    _, _, h, w = masks.shape
    cols, rows = masks.any(dim=2), masks.any(dim=3)  # (K, T, W), (K, T, H)
    gaps = torch.stack([cols.float().argmax(-1), cols.flip(-1).float().argmax(-1),
                        rows.float().argmax(-1), rows.flip(-1).float().argmax(-1)], dim=-1)
    radius = (counts.float().median(dim=1).values / math.pi).sqrt()  # (K,)
    touching = gaps <= (BORDER_MARGIN + WALL_REACH * radius)[:, None, None]  # (K, T, 4)
    normals = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    return touching[..., None].float() * normals.to(masks.device)


def _bounce(accel: Tensor, where: Tensor, walls: Tensor) -> float:
    """Fraction of the large accelerations a wall explains (module docstring); NaN if none.
    accel (P, 2), where (P, 2) (object, frame), walls (K, T, 4, 2)."""
    norm = torch.linalg.vector_norm(accel, dim=1)
    large = norm > BOUNCE_ACCEL
    if not large.any():
        return math.nan
    normals = walls[where[large, 0], where[large, 1]]  # (L, 4, 2)
    along = (normals * accel[large, None]).sum(-1)  # (L, 4)
    return (along >= BOUNCE_COSINE * norm[large, None]).any(dim=1).float().mean().item()


def _median(values: Tensor) -> float:
    return values.median().item() if len(values) else math.nan


def _tracks(masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """masks (K, T, H, W) -> centroids (K, T, 2), pixel counts (K, T), present (K, T) bool."""
    centres, counts = mask_centroids(masks)
    return centres, counts, counts >= MIN_PIXELS


def clip_coherence(frames: Tensor) -> dict[str, float]:
    """The module docstring's measures for one clip. frames (3, T, H, W) in [-1, 1] ->
    ``{speed, acceleration, persistence, objects, foreground, bounce}``."""
    fg = foreground(frames)
    masks = object_masks(frames, fg)
    fg_fraction = fg.float().mean().item()
    if len(masks) == 0:
        return {**dict.fromkeys(METRICS, math.nan), "objects": 0.0, "foreground": fg_fraction}
    centres, counts, present = _tracks(masks)
    velocity, _ = _differences(centres, present, 1)
    accel, where = _differences(centres, present, 2)
    return {
        "speed": _median(torch.linalg.vector_norm(velocity, dim=1)),
        "acceleration": _median(torch.linalg.vector_norm(accel, dim=1)),
        "persistence": _persistence(counts, present).mean().item(),
        "objects": float(len(masks)),
        "foreground": fg_fraction,
        "bounce": _bounce(accel, where, _walls(masks, counts)),
    }


def per_clip_coherence(videos: Tensor) -> dict[str, Tensor]:
    """:func:`clip_coherence` of every clip. videos (N, 3, T, H, W) in [-1, 1] ->
    ``{metric: (N,) float64}`` (NaN where a clip has no value)."""
    rows = [clip_coherence(v) for v in videos]
    return {k: torch.tensor([r[k] for r in rows], dtype=torch.float64) for k in METRICS}


def summarise(parts: Iterable[dict[str, Tensor]]) -> dict[str, float]:
    """Pool :func:`per_clip_coherence` results of several batches: the mean over clips of
    each measure, NaNs left out (NaN if every clip is NaN), and ``clips``."""
    parts = list(parts)
    per_clip = {k: torch.cat([p[k] for p in parts]) for k in METRICS}
    return {**{k: v.nanmean().item() for k, v in per_clip.items()},
            "clips": len(per_clip["speed"])}


def video_coherence(videos: Tensor | Iterable[Tensor]) -> dict[str, float]:
    """:func:`summarise` of every clip's measures. videos (N, 3, T, H, W) in [-1, 1], or an
    iterable of such batches -> ``{speed, acceleration, persistence, objects, foreground,
    bounce, clips}``."""
    batches = [videos] if isinstance(videos, Tensor) else videos
    return summarise(per_clip_coherence(b) for b in batches)


def acceleration_profile(videos: Tensor, reference: Tensor | None = None) -> Tensor:
    """Median object acceleration at each frame: where in the clip do the centroids jump?

    A video VAE that maps 4 frames to one latent (paper section 3.1: frame 0 alone, then
    groups 1-4, 5-8, ...) and jumps between groups shows peaks at the frames that end a
    group (4, 8, 12: their second difference spans two groups), the "flashing at chunk
    boundaries" its users report; jitter within groups raises every frame.

    Args:
        videos: (N, 3, T, H, W) in [-1, 1].
        reference: (N, 3, T, H, W) clips whose object colours to track in ``videos`` (the
            real clips that ``videos`` reconstruct: a reconstruction's colour drift then
            cannot split a shape into two objects); None: each clip's own colours.

    Returns:
        (T,) float64 px/frame^2: the median over every object and clip of the second
        difference centred on that frame; NaN at the first and last frames.
    """
    per_frame: list[list[float]] = [[] for _ in range(videos.shape[2])]
    for i, frames in enumerate(videos):
        fg = foreground(frames)
        source = frames if reference is None else reference[i]
        colours = object_colours(source, foreground(source))
        if len(colours) == 0:
            continue
        centres, _, present = _tracks(colour_masks(frames.float(), colours) & fg[None])
        accel, where = _differences(centres, present, 2)
        for norm, t in zip(torch.linalg.vector_norm(accel, dim=1).tolist(), where[:, 1].tolist()):
            per_frame[t].append(norm)
    return torch.tensor([_median(torch.tensor(v)) for v in per_frame], dtype=torch.float64)


def boundary_ratio(profile: Tensor, group: int = 4) -> float:
    """Median of an :func:`acceleration_profile` at the frames that end a latent group
    (``t % group == 0``, t > 0) over its median at the other frames: about 1 for a clip with
    no group structure, above 1 where the decoder jumps between groups. profile (T,)."""
    t = torch.arange(len(profile))
    inner = (t > 0) & (t < len(profile) - 1) & ~profile.isnan()
    ends = inner & (t % group == 0)
    if not ends.any() or not (inner & ~ends).any():
        return math.nan
    return (profile[ends].median() / profile[inner & ~ends].median()).item()
