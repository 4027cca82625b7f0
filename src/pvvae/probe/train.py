"""Training and evaluation of a probing head on frozen diffusion features (paper section 4.3).

The DiT (and the VAE) are frozen, so features are computed once per clip
(:func:`extract_features`) and the head trains on the stored tensors: a plain AdamW loop
(:func:`train_head`) over random mini-batches. :func:`evaluate_head` scores the head and the
task's trivial baseline on the same clips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from pvvae.probe.features import FeatureExtractor

logger = logging.getLogger(__name__)

TARGET_KEYS = ("flow", "next", "tracks", "visible")


@dataclass(frozen=True)
class HeadTrainConfig:
    """Optimisation of a probing head (the paper gives none of these).

    Attributes:
        steps: AdamW steps; batch_size: clips per step; lr: learning rate (constant);
        width: stem channels of the head; seed: initialisation and batch order.

    The defaults are the measured CPU protocol (README, probing): 600 steps of 8 clips over
    1,024 synthetic clips. On 32-256 clips the heads fit their training clips and lose to
    the trivial baselines on held-out ones.
    """

    steps: int = 600
    batch_size: int = 8
    lr: float = 1e-3
    width: int = 32
    seed: int = 0


def extract_features(
    extractor: FeatureExtractor, dataset: Dataset, batch_size: int = 4
) -> dict[str, Tensor]:
    """Run the frozen model once over ``dataset`` and stack features with the targets.

    Args:
        extractor: the frozen VAE + Latte.
        dataset: items with ``video`` (3, T, H, W) and any of ``flow``, ``next``, ``tracks``,
            ``visible`` (see :mod:`pvvae.probe.data`).
        batch_size: clips per forward pass.

    Returns:
        ``features`` (M, D, t, h, w), ``last`` (M, 3, H, W) (the clips' last frames) and the
        targets the items carry, stacked over the ``M`` clips (on the CPU).
    """
    parts: dict[str, list[Tensor]] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        video = batch["video"]  # (B, 3, T, H, W)
        parts.setdefault("features", []).append(extractor(video).cpu())
        parts.setdefault("last", []).append(video[:, :, -1])  # (B, 3, H, W)
        for key in TARGET_KEYS:
            if key in batch:
                parts.setdefault(key, []).append(batch[key])
    if not parts:
        raise ValueError("extract_features: the dataset is empty")
    return {k: torch.cat(v) for k, v in parts.items()}


def select(data: dict[str, Tensor], index: Tensor, device: torch.device | str) -> dict[str, Tensor]:
    """Rows ``index`` of every stored tensor, moved to ``device``."""
    return {k: v[index].to(device) for k, v in data.items()}


def check_targets(task, data: dict[str, Tensor]) -> None:
    """One line naming what is missing when the data lacks the task's targets."""
    missing = [k for k in task.targets if k not in data]
    if missing:
        raise ValueError(
            f"task {task.name!r} needs {missing} in the data; use a dataset that has them "
            "(synthetic has all; Sintel: flow; TAP-Vid-DAVIS: tracks; video folder: next)"
        )


def train_head(
    task, head: nn.Module, data: dict[str, Tensor], cfg: HeadTrainConfig, log_every: int = 50
) -> list[float]:
    """Fit ``head`` to ``task`` on stored features (DiT frozen: only the head has gradients).

    Args:
        task: a task of :mod:`pvvae.probe.tasks`.
        head: its head (on the device to train on).
        data: output of :func:`extract_features`.
        cfg: steps, batch size, lr, seed.
        log_every: log the mean loss every this many steps.

    Returns:
        The loss of every step.
    """
    check_targets(task, data)
    device = next(head.parameters()).device
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=0.0)
    num = len(data["features"])
    order, pos, losses = torch.randperm(num, generator=generator), 0, []
    head.train()
    for step in range(cfg.steps):
        if pos + cfg.batch_size > num:  # new epoch
            order, pos = torch.randperm(num, generator=generator), 0
        batch = select(data, order[pos : pos + cfg.batch_size], device)
        pos += cfg.batch_size
        loss = task.loss(task.predict(head, batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % log_every == 0:
            recent = losses[-log_every:]
            logger.info("%s step %d: loss %.4f", task.name, step + 1, sum(recent) / len(recent))
    head.eval()
    return losses


@torch.no_grad()
def predict_all(task, head: nn.Module, data: dict[str, Tensor], batch_size: int = 4) -> Tensor:
    """Predictions of ``head`` for every stored clip (CPU tensor, clips stacked)."""
    device = next(head.parameters()).device
    head.eval()
    num = len(data["features"])
    preds = [
        task.predict(head, select(data, torch.arange(i, min(i + batch_size, num)), device)).cpu()
        for i in range(0, num, batch_size)
    ]
    return torch.cat(preds)


def evaluate_head(
    task, head: nn.Module, data: dict[str, Tensor], batch_size: int = 4
) -> dict[str, dict[str, float]]:
    """Score the head and the trivial baseline on the same clips.

    Returns:
        ``{"probe": {metric: value, ...}, "baseline": {...}}`` (see the task's ``score``).
    """
    check_targets(task, data)
    pred = predict_all(task, head, data, batch_size)
    return {"probe": task.score(pred, data), "baseline": task.score(task.baseline(data), data)}
