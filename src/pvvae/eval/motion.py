"""Motion metrics from the proving ground's known content: do the shapes keep their place,
extent and motion? (paper Figure 6 and section 4.3 ask whether latents carry motion; PSNR
alone cannot tell a moving shape from a blur of its old place).

* :func:`blurred_copy_last_psnr`: the baseline a blurry predictor must beat. The last observed
  frame, Gaussian-blurred at each sigma of a small grid, copied onto every predicted frame; the
  best PSNR over the grid. A prediction that only fades the last frame into a blur scores
  about this, not more.
* :func:`object_errors`: for every shape of every clip (colours and per-frame masks from
  :func:`pvvae.data.synthetic.clip_objects`), the shape's colour mask in the frames under test
  (pixels within ``COLOUR_TOLERANCE`` of its flat colour, nearest to it among the clip's shape
  colours) against its true visible mask: the centroid distance in pixels (``position``) and
  the intersection over union (``iou``: extent and outline; a ring drawn as a disc loses its
  hole). A shape that vanished (fewer than ``MIN_PIXELS`` mask pixels) counts as missed, with
  the position error ``MISSED_ERROR`` short sides (errors are capped there, so one far-off
  detection weighs no more than a miss).

The same measure applied to copy-last (the shapes standing still where they were last seen)
is the baseline of a prediction's position error; applied to reconstructions it tells whether
each shape keeps its place and extent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pvvae.eval.metrics.psnr_ssim import video_psnr

BLUR_SIGMAS = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)  # pixels
COLOUR_TOLERANCE = 0.3  # RGB distance in model units ([-1, 1]): 0.15 on a [0, 1] scale
MIN_PIXELS = 4
MISSED_ERROR = 0.25  # short sides: 16 px on 64-pixel frames


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Per-frame separable Gaussian blur, reflect padding. (N, C, T, H, W) -> same shape."""
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    n, c, frames, h, w = x.shape
    flat = x.permute(0, 2, 1, 3, 4).reshape(n * frames * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return flat.reshape(n, frames, c, h, w).permute(0, 2, 1, 3, 4)


def copy_last_psnr_by_sigma(
    x: Tensor, observed: int, sigmas: tuple[float, ...] = BLUR_SIGMAS
) -> Tensor:
    """Per-clip PSNR (dB) of frame ``observed - 1``, unblurred then blurred at each sigma,
    on frames ``observed..``. x: (N, 3, T, H, W) in [-1, 1] -> (N, 1 + len(sigmas))."""
    target = x[:, :, observed:]
    last = x[:, :, observed - 1 : observed]
    columns = [video_psnr(last.expand_as(target), target)]
    for s in sigmas:
        blurred = gaussian_blur(last, s).clamp(-1, 1)
        columns.append(video_psnr(blurred.expand_as(target), target))
    return torch.stack(columns, dim=1)


def best_blur(per_clip: Tensor, sigmas: tuple[float, ...] = BLUR_SIGMAS) -> dict:
    """The best column of :func:`copy_last_psnr_by_sigma` rows (N, 1 + S) pooled over clips:
    ``{"psnr": dB, "sigma": px (0: no blur), "psnr_by_sigma": {sigma: dB}}``."""
    means = per_clip.double().mean(dim=0).tolist()
    scores = dict(zip((0.0, *map(float, sigmas)), means))
    best = max(scores, key=scores.get)
    return {"psnr": scores[best], "sigma": best, "psnr_by_sigma": scores}


def blurred_copy_last_psnr(
    x: Tensor, observed: int, sigmas: tuple[float, ...] = BLUR_SIGMAS
) -> dict:
    """The best mean PSNR of a blurred copy of frame ``observed - 1`` on frames
    ``observed..`` over the sigma grid (0 included). x: (N, 3, T, H, W) in [-1, 1].
    Returns :func:`best_blur`'s dict."""
    return best_blur(copy_last_psnr_by_sigma(x, observed, sigmas), sigmas)


def colour_masks(frames: Tensor, colours: Tensor, tolerance: float = COLOUR_TOLERANCE) -> Tensor:
    """Which pixels show each shape colour. frames (3, T, H, W), colours (K, 3), both in
    [-1, 1] -> (K, T, H, W) bool: within ``tolerance`` of colour k and nearest to it."""
    dist = torch.linalg.vector_norm(frames[None] - colours[:, :, None, None, None], dim=1)
    nearest = dist.argmin(dim=0)  # (T, H, W)
    ids = torch.arange(len(colours), device=frames.device)[:, None, None, None]
    return (dist < tolerance) & (nearest[None] == ids)


def mask_centroids(masks: Tensor) -> tuple[Tensor, Tensor]:
    """masks (K, T, H, W) bool -> centroids (K, T, 2) xy in pixels and pixel counts (K, T)."""
    _, _, h, w = masks.shape
    m = masks.float()
    count = m.sum(dim=(2, 3))
    ys = torch.arange(h, dtype=m.dtype, device=m.device)
    xs = torch.arange(w, dtype=m.dtype, device=m.device)
    cx = (m.sum(dim=2) * xs).sum(dim=-1) / count.clamp(min=1)
    cy = (m.sum(dim=3) * ys).sum(dim=-1) / count.clamp(min=1)
    return torch.stack([cx, cy], dim=-1), count


def clip_object_errors(frames: Tensor, objects: dict) -> dict[str, Tensor]:
    """Per shape and frame errors of one clip's ``frames`` (3, T, H, W) against ``objects``
    (``colours`` (K, 3), ``masks`` (K, T, H, W) bool, the true visible masks of the same
    frames). Returns flat tensors over the (shape, frame) pairs where the shape is visible:
    ``position`` (px, capped), ``iou``, ``missed`` (bool)."""
    true = objects["masks"].to(frames.device)
    found = colour_masks(frames, objects["colours"].to(frames))
    c_true, n_true = mask_centroids(true)
    c_found, n_found = mask_centroids(found)
    visible = n_true >= MIN_PIXELS
    missed = n_found < MIN_PIXELS
    cap = MISSED_ERROR * min(frames.shape[-2:])
    position = torch.linalg.vector_norm(c_found - c_true, dim=-1).clamp(max=cap)
    position = torch.where(missed, torch.full_like(position, cap), position)
    inter = (true & found).sum(dim=(2, 3)).float()
    union = (true | found).sum(dim=(2, 3)).float().clamp(min=1)
    return {"position": position[visible], "iou": (inter / union)[visible],
            "missed": missed[visible]}


def object_errors(frames: Tensor, objects: list[dict]) -> dict[str, float]:
    """:func:`clip_object_errors` pooled over clips: ``frames`` (N, 3, T, H, W) and one
    ``objects`` dict per clip (masks of the same T frames). Returns the mean ``position``
    error (px), mean ``iou``, ``missed`` fraction and the number of (shape, frame) pairs."""
    parts = [clip_object_errors(f, o) for f, o in zip(frames, objects)]
    pooled = {k: torch.cat([p[k] for p in parts]) for k in ("position", "iou", "missed")}
    n = len(pooled["position"])
    if n == 0:
        return {"position": float("nan"), "iou": float("nan"), "missed": float("nan"), "pairs": 0}
    return {
        "position": pooled["position"].mean().item(),
        "iou": pooled["iou"].mean().item(),
        "missed": pooled["missed"].float().mean().item(),
        "pairs": n,
    }


def slice_objects(objects: list[dict], start: int, stop: int | None = None) -> list[dict]:
    """The same shapes restricted to frames ``start:stop`` (e.g. the predicted ones)."""
    return [{**o, "masks": o["masks"][:, start:stop]} for o in objects]


def observed_frames(num_frames: int, temporal_compression: int) -> int:
    """Frames the encoder sees in the prediction test: ``1 + t_factor * floor((G - 1) / 2)``.

    For 17 frames and a t4 VAE: G = 5 groups, the first 9 frames are observed, 8 predicted.
    """
    groups_after_first = (num_frames - 1) // temporal_compression
    return 1 + temporal_compression * (groups_after_first // 2)


def copy_last(x: Tensor, observed: int) -> Tensor:
    """Frame ``observed - 1`` on every later frame. (N, 3, T, H, W) -> (N, 3, T - observed,
    H, W): the prediction of a model whose shapes stand still."""
    return x[:, :, observed - 1 : observed].expand(-1, -1, x.shape[2] - observed, -1, -1)
