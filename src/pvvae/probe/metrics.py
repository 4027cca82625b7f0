"""Metrics of the three probing tasks of paper Table 3 (section 4.3, "Probing video
understanding in the latent space").

* Optical flow: average end-point error (EPE), the mean over valid pixels of
  ``||f_pred - f_gt||_2`` in pixels (Sintel's convention: pixels of every frame pooled).
* Next-frame prediction: mean squared error of pixels in ``[0, 1]`` (the paper's 0.03 range fits
  ``[0, 1]`` units; our videos live in ``[-1, 1]``, so the error is divided by 4).
* Point tracking, TAP-Vid conventions (Doersch et al. 2022, the ``compute_tapvid_metrics`` of the
  tapnet repository):

  - *query-first* mode: each track is queried at its first visible frame; only frames strictly
    after the query frame are evaluated, and only where the point is visible in the ground truth
    (occluded ground truth counts neither as hit nor as miss, so occlusion prediction is not
    scored here: the probe predicts positions only; TAP-Vid's occlusion accuracy and Average
    Jaccard are not reported);
  - positions are compared after scaling both to a 256 x 256 frame (``x * 256 / W``,
    ``y * 256 / H``), so a threshold in pixels means the same at every input size;
  - counts are pooled over the points and frames of one video, then averaged over videos.

  The paper reports "the AUC of tracking accuracy across error thresholds from 0 to 10 pixels"
  without saying how it is integrated. We use the exact area:
  ``AUC = (1/10) \\int_0^10 acc(delta) d delta`` with ``acc(delta)`` the fraction of evaluated
  points with error ``< delta``. Since ``\\int_0^10 1[e < delta] d delta = max(0, 10 - e)``,
  the area is the mean of ``max(0, 1 - e / 10)`` over evaluated points: no grid, no
  quadrature error. The curve itself is also reported at ``delta = 0, 1, ..., 10`` for plots,
  with TAP-Vid's ``< delta^x_avg`` (mean accuracy at 1, 2, 4, 8, 16 px) beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

TAPVID_SIZE = 256  # TAP-Vid evaluates positions in a 256 x 256 frame
TAPVID_THRESHOLDS = (1, 2, 4, 8, 16)  # thresholds of TAP-Vid's < delta^x_avg
AUC_MAX_PX = 10.0  # the paper's AUC range, 0..10 px


def endpoint_error(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Average end-point error of optical flow.

    Args:
        pred, target: (B, 2, T, H, W) flow ``(dx, dy)`` in pixels.
        valid: optional (B, T, H, W) bool mask of pixels with ground truth.

    Returns:
        Scalar: mean of ``||pred - target||_2`` over (valid) pixels of every frame.
    """
    # vector_norm: its gradient at a zero difference is 0 (sqrt of a sum of squares gives NaN)
    epe = torch.linalg.vector_norm((pred - target).float(), dim=1)  # (B, T, H, W)
    if valid is None:
        return epe.mean()
    if not valid.any():
        raise ValueError("endpoint_error: the valid mask selects no pixel")
    return epe[valid].mean()


def frame_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of frames given in ``[-1, 1]``, measured in ``[0, 1]`` units.

    Args:
        pred, target: tensors of the same shape, e.g. (B, 3, H, W), pixels in ``[-1, 1]``.

    Returns:
        Scalar ``mean(((pred - target) / 2) ** 2)``.
    """
    return ((pred.float() - target.float()) / 2).pow(2).mean()


def query_first(visible: Tensor) -> tuple[Tensor, Tensor]:
    """TAP-Vid's query-first sampling: the first frame where each track is visible.

    Args:
        visible: (..., N, T) bool ground-truth visibility.

    Returns:
        ``(query_t, has_query)``: (..., N) int64 first visible frame (0 where the track is never
        visible) and (..., N) bool, False for tracks never visible (they are not evaluated).
    """
    has_query = visible.any(dim=-1)  # (..., N)
    query_t = visible.int().argmax(dim=-1)  # (..., N): argmax returns the first maximum
    return query_t, has_query


def evaluation_mask(visible: Tensor, query_t: Tensor, has_query: Tensor) -> Tensor:
    """Frames scored in query-first mode: strictly after the query frame, visible in the truth.

    Args:
        visible: (..., N, T) bool; query_t, has_query: (..., N) from :func:`query_first`.

    Returns:
        (..., N, T) bool mask.
    """
    frames = torch.arange(visible.shape[-1], device=visible.device)  # (T,)
    after = frames > query_t[..., None]  # (..., N, T)
    return visible & after & has_query[..., None]


def tracking_errors(pred: Tensor, tracks: Tensor, height: int, width: int) -> Tensor:
    """Distances between predicted and true positions in TAP-Vid's 256 x 256 frame.

    Args:
        pred, tracks: (..., N, T, 2) positions ``(x, y)`` in pixels of an ``height x width``
            frame.

    Returns:
        (..., N, T) errors in 256-scale pixels.
    """
    scale = torch.tensor(
        [TAPVID_SIZE / width, TAPVID_SIZE / height], device=pred.device, dtype=torch.float32
    )  # (2,)
    return ((pred.float() - tracks.float()) * scale).pow(2).sum(dim=-1).sqrt()


def tracking_metrics(
    pred: Tensor,
    tracks: Tensor,
    visible: Tensor,
    height: int,
    width: int,
    curve_thresholds: Sequence[float] = tuple(range(11)),
) -> dict[str, float | list[float]]:
    """Position accuracy of point tracks (TAP-Vid query-first conventions, module docstring).

    Args:
        pred: (B, N, T, 2) predicted ``(x, y)`` pixel positions (videos ``B``, tracks ``N``).
        tracks: (B, N, T, 2) ground-truth positions; visible: (B, N, T) bool ground truth.
        height, width: frame size the positions refer to.
        curve_thresholds: thresholds (256-scale px) of the reported accuracy curve.

    Returns:
        ``auc`` (percent, exact area over 0..10 px), ``curve`` (percent at each threshold),
        ``curve_thresholds``, ``average_pts_within_thresh`` (percent, TAP-Vid's
        ``< delta^x_avg``), ``num_points`` (evaluated point-frames), ``num_videos`` (videos with
        at least one evaluated point; the averages run over these).
    """
    query_t, has_query = query_first(visible)  # (B, N)
    mask = evaluation_mask(visible, query_t, has_query).float()  # (B, N, T)
    err = tracking_errors(pred, tracks, height, width)  # (B, N, T)
    count = mask.sum(dim=(1, 2))  # (B,)
    scored = count > 0  # (B,)
    if not scored.any():
        raise ValueError("tracking_metrics: no track is visible after its query frame")

    def video_mean(values: Tensor) -> float:
        per_video = (values * mask).sum(dim=(1, 2))[scored] / count[scored]  # (B',)
        return 100.0 * per_video.mean().item()

    auc = video_mean((1.0 - err / AUC_MAX_PX).clamp(min=0.0))
    curve = [video_mean((err < d).float()) for d in curve_thresholds]
    tapvid = [video_mean((err < d).float()) for d in TAPVID_THRESHOLDS]
    return {
        "auc": auc,
        "curve": curve,
        "curve_thresholds": [float(d) for d in curve_thresholds],
        "average_pts_within_thresh": sum(tapvid) / len(tapvid),
        "num_points": int(count.sum().item()),
        "num_videos": int(scored.sum().item()),
    }
