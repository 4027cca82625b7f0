"""The three probing tasks of paper Table 3, each with its head, loss, trivial baseline and metric.

A task works on *batches*: dicts of stacked tensors made by
:func:`pvvae.probe.train.extract_features`, holding ``features`` (B, D, t, h, w) and the
targets (``flow`` (B, 2, T-1, H, W); ``next`` and ``last`` (B, 3, H, W), the frame after the clip
and the clip's last frame; ``tracks`` (B, N, T, 2); ``visible`` (B, N, T)).

=========  ==========================  ==========================  ====================
task       prediction                  trivial baseline            metric
=========  ==========================  ==========================  ====================
``flow``   flow of frames 0..T-2       zero flow                   EPE (px, lower better)
``next``   frame T (after the clip)    copy of the last frame      MSE in [0, 1] units
``track``  positions in frames 0..T-1  static point (query xy)     AUC % 0-10 px (higher)
=========  ==========================  ==========================  ====================

Next-frame prediction: the head sees only features of frames ``0..T-1`` and predicts frame
``T`` from its last output frame (so the target is never in the input). The paper adapts the
flow decoder "by adjusting its output channels to three"; that is ``residual=False``. With
``residual=True`` the head predicts the change from the last frame instead (the copy baseline
plus a learned correction), an option for small models whose plain decoder cannot even
reconstruct the frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pvvae.probe.heads import DenseHead, TrackHead
from pvvae.probe.metrics import (
    endpoint_error,
    frame_mse,
    query_first,
    tracking_metrics,
)

Batch = dict[str, Tensor]


FLOW_LOSSES = ("mse", "epe")


class FlowTask:
    """Optical flow (Sintel in the paper): 2-channel :class:`DenseHead`, EPE metric.

    The training loss (the paper gives none) is ``mse``, the mean squared end-point error
    ``|pred - flow|^2``, by default, or ``epe``. Trained on the EPE itself, whose gradient
    has unit norm at every pixel whatever the error, a head that can only partly tell where
    a moving shape is stays at zero flow: the per-pixel optimum of an L1-type loss is the
    median, zero wherever the motion is uncertain. Measured on the proving ground (VAE
    latents, 1,024 clips, 600 steps): ``epe`` ends at zero flow (held-out EPE 1.2730 vs
    1.2748), ``mse`` 12% below it (1.1225). The squared loss rewards partial evidence (its
    optimum is the conditional mean), and the EPE of that mean is the lower one here.

    Args:
        loss: ``mse`` or ``epe``.
    """

    name, metric, lower_is_better, baseline_name = "flow", "epe", True, "zero flow"
    targets = ("flow",)

    def __init__(self, loss: str = "mse") -> None:
        if loss not in FLOW_LOSSES:
            raise ValueError(f"flow loss {loss!r}: use one of {FLOW_LOSSES}")
        self.train_loss = loss

    def build_head(self, channels: int, spatial: int, temporal: int, width: int) -> nn.Module:
        return DenseHead(channels, 2, spatial, temporal, width, zero_output=True)

    def predict(self, head: nn.Module, batch: Batch) -> Tensor:
        """(B, 2, T-1, H, W): the output frames 0..T-2 (flow i -> i+1)."""
        return head(batch["features"])[:, :, :-1]

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        if self.train_loss == "mse":
            return (pred - batch["flow"]).square().sum(dim=1).mean()  # squared EPE
        return endpoint_error(pred, batch["flow"])

    def baseline(self, batch: Batch) -> Tensor:
        return torch.zeros_like(batch["flow"])

    def score(self, pred: Tensor, batch: Batch) -> dict[str, float]:
        return {"epe": endpoint_error(pred, batch["flow"]).item()}


class NextFrameTask:
    """Next-frame prediction (Kinetics-400 in the paper): 3-channel head, MSE (module doc)."""

    name, metric, lower_is_better, baseline_name = "next", "mse", True, "copy last frame"
    targets = ("next", "last")

    def __init__(self, residual: bool = False) -> None:
        self.residual = residual

    def build_head(self, channels: int, spatial: int, temporal: int, width: int) -> nn.Module:
        return DenseHead(channels, 3, spatial, temporal, width, zero_output=self.residual)

    def predict(self, head: nn.Module, batch: Batch) -> Tensor:
        """(B, 3, H, W): the head's last output frame (plus the last frame if residual)."""
        out = head(batch["features"])[:, :, -1]  # (B, 3, H, W)
        return out + batch["last"] if self.residual else out

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        return frame_mse(pred, batch["next"])

    def baseline(self, batch: Batch) -> Tensor:
        return batch["last"]

    def score(self, pred: Tensor, batch: Batch) -> dict[str, float]:
        return {"mse": frame_mse(pred, batch["next"]).item()}


def query_points(batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    """TAP-Vid query-first queries of a batch.

    Returns:
        ``(query_t, query_xy, has_query)``: (B, N) first visible frame, (B, N, 2) the track's
        position there, (B, N) whether the track is ever visible.
    """
    query_t, has_query = query_first(batch["visible"])  # (B, N)
    index = query_t[..., None, None].expand(-1, -1, 1, 2)  # (B, N, 1, 2)
    query_xy = batch["tracks"].gather(2, index).squeeze(2)  # (B, N, 2)
    return query_t, query_xy, has_query


class TrackTask:
    """Point tracking (TAP-Vid-DAVIS in the paper): :class:`TrackHead`, Huber loss on visible
    frames (TAP-Net), AUC of accuracy over 0-10 px in TAP-Vid's query-first mode."""

    name, metric, lower_is_better, baseline_name = "track", "auc", False, "static points"
    targets = ("tracks", "visible")

    def __init__(self, embed_dim: int = 16) -> None:
        self.embed_dim = embed_dim

    def build_head(self, channels: int, spatial: int, temporal: int, width: int) -> nn.Module:
        return TrackHead(channels, spatial, temporal, width, self.embed_dim)

    def predict(self, head: nn.Module, batch: Batch) -> Tensor:
        """(B, N, T, 2) positions of the query-first queries."""
        query_t, query_xy, _ = query_points(batch)
        return head(batch["features"], query_t, query_xy)

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        _, _, has_query = query_points(batch)
        mask = batch["visible"] & has_query[..., None]  # (B, N, T)
        if not mask.any():
            return pred.sum() * 0.0
        return F.huber_loss(pred[mask], batch["tracks"][mask], delta=1.0)

    def baseline(self, batch: Batch) -> Tensor:
        _, query_xy, _ = query_points(batch)
        return query_xy[:, :, None].expand_as(batch["tracks"])  # (B, N, T, 2)

    def score(self, pred: Tensor, batch: Batch) -> dict[str, float]:
        h, w = batch["last"].shape[-2:]
        m = tracking_metrics(pred, batch["tracks"], batch["visible"], h, w)
        return {"auc": m["auc"], "average_pts_within_thresh": m["average_pts_within_thresh"],
                "curve": m["curve"]}


def build_task(name: str, residual_next: bool = False, flow_loss: str = "mse"):
    """The task called ``name`` (``flow``, ``next`` or ``track``); ``residual_next`` and
    ``flow_loss`` are the options of :class:`NextFrameTask` and :class:`FlowTask`."""
    if name == "flow":
        return FlowTask(flow_loss)
    if name == "next":
        return NextFrameTask(residual_next)
    if name == "track":
        return TrackTask()
    raise ValueError(f"unknown probing task {name!r}: use flow, next or track")


TASKS = ("flow", "next", "track")
