"""``pvvae gen train``: rectified-flow training of Latte on cached VAE latents (issue 5, s. 4).

Seed section 4.1 ("Training details"): Latte trained with rectified flow for 250K steps, lr
1e-4, global batch 64; class-conditional on UCF101 (label dropout 0.1 for classifier-free
guidance), unconditional on RealEstate10K (``model.num_classes: 0``). One step:

1. take this rank's ``global_batch_size / world_size`` cached clips; with
   ``data.sample_posterior`` draw ``x0 = mean + std * n`` (``n ~ N(0, I)``), a fresh sample of
   the normalised posterior ``q(z|x)``, else ``x0 = mean``;
2. :func:`pvvae.gen.flow.flow_matching_loss`: ``t`` (uniform or logit-normal), ``eps``,
   ``x_t = (1 - t) x0 + t eps``, MSE to ``v = eps - x0``; labels dropped to the null class with
   probability ``class_dropout_prob`` inside the model;
3. AdamW step (gradients all-reduced by DDP), gradient clipping, EMA update. A step with a
   NaN/Inf loss or gradient norm is skipped on all ranks and counted, no checkpoint is
   written during such a streak, and ``train.max_nonfinite`` consecutive ones (or a run ending
   inside a streak) stop the run (:mod:`pvvae.training.guards`).

Infrastructure reused from :mod:`pvvae.training`: ``distributed`` (torchrun / single process),
``parallel.replicate`` (DDP), ``ema.EMA``, ``checkpoint.save_checkpoint`` (atomic, EMA in
``ema/``), ``monitor.RunLogger`` (JSON lines, TensorBoard, progress bar), ``seeding`` and
``data.GlobalOrder``. Exact resume: the data order is a pure function of (seed, global
position) and every random draw of step ``s`` on rank ``r`` comes from a generator seeded with
``(seed, s, r)``; weights, EMA, optimizer and scheduler states are restored from the latest
checkpoint, so a resumed run repeats the losses of an uninterrupted one (bit-exact on the CPU;
on GPUs up to the non-determinism of the kernels).

The same command runs alone or under torchrun::

    pvvae gen train configs/gen/smoke.yaml
    torchrun --nproc_per_node=8 -m pvvae gen train configs/gen/ucf101_xl.yaml
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Sampler

from pvvae.config import ConfigError, save_config, to_dict
from pvvae.gen.cache import LatentDataset
from pvvae.gen.checkpoint import LatteMeta
from pvvae.gen.flow import flow_matching_loss
from pvvae.gen.latte import LATTE_PRESETS, Latte
from pvvae.training import distributed, parallel
from pvvae.training.checkpoint import (
    EMA_DIR,
    WEIGHTS_FILE,
    latest_checkpoint,
    load_train_state,
    save_checkpoint,
)
from pvvae.training.data import GlobalOrder
from pvvae.training.distributed import DistInfo
from pvvae.training.ema import EMA
from pvvae.training.guards import check_nonfinite
from pvvae.training.monitor import RunLogger, peak_memory_gib
from pvvae.training.schedule import warmup_cosine
from pvvae.training.seeding import generator as seeded_generator

logger = logging.getLogger(__name__)

GEN_STEP = 201  # seeding purpose tag of the per-step generation draws


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------


@dataclass
class LatteModelConfig:
    """Which Latte to build: a preset of :data:`pvvae.gen.LATTE_PRESETS` plus overrides.

    ``in_channels`` always comes from the cache. ``num_classes``: ``None`` takes the cache's
    number of classes (class-conditional), ``0`` is unconditional.
    """

    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)  # LatteConfig fields
    num_classes: int | None = None
    class_dropout_prob: float = 0.1


@dataclass
class LatentDataConfig:
    """The latent cache (``pvvae gen cache``) and how clips are drawn from it."""

    cache: str = ""
    sample_posterior: bool = True  # z ~ q(z|x) per visit (needs a cache with std)
    num_workers: int = 0


@dataclass
class FlowConfig:
    """Rectified-flow time distribution (``uniform`` or ``logit_normal``)."""

    t_sampler: Literal["uniform", "logit_normal"] = "uniform"


@dataclass
class GenOptimConfig:
    """AdamW; constant lr by default (``min_lr_ratio: 1``), cosine decay when below 1."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_ratio: float = 1.0
    grad_clip: float = 1.0  # <= 0: no clipping


@dataclass
class GenTrainConfig:
    """Loop length, batch, precision, EMA, logging and checkpointing."""

    steps: int = 250_000
    global_batch_size: int = 64
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)
    out_dir: str = "runs"
    log_every: int = 100
    ckpt_every: int = 5000
    keep_last: int = 2
    progress: bool = True
    resume: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast of the forward pass
    ema: bool = True
    ema_decay: float = 0.9999
    tensorboard: bool = True
    max_nonfinite: int = 20  # stop after this many consecutive NaN/Inf steps (all skipped)


@dataclass
class GenExperimentConfig:
    """Everything ``pvvae gen train`` needs; saved as ``runs/NAME/config.yaml``."""

    name: str = "latte"
    model: LatteModelConfig = field(default_factory=LatteModelConfig)
    data: LatentDataConfig = field(default_factory=LatentDataConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    optim: GenOptimConfig = field(default_factory=GenOptimConfig)
    train: GenTrainConfig = field(default_factory=GenTrainConfig)


def validate(cfg: GenExperimentConfig, world_size: int = 1) -> None:
    """Cross-field checks; raises :class:`ConfigError`."""
    if not cfg.data.cache:
        raise ConfigError("data.cache is required: a folder written by `pvvae gen cache`")
    if cfg.model.preset not in LATTE_PRESETS:
        raise ConfigError(f"model.preset={cfg.model.preset!r}; valid: {sorted(LATTE_PRESETS)}")
    if cfg.train.global_batch_size % world_size:
        raise ConfigError(
            f"train.global_batch_size={cfg.train.global_batch_size} is not divisible by the "
            f"{world_size} ranks"
        )
    if cfg.train.steps < 0 or cfg.train.log_every < 1 or cfg.train.ckpt_every < 1:
        raise ConfigError("train.steps must be >= 0, log_every and ckpt_every >= 1")
    if not 0.0 <= cfg.train.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {cfg.train.ema_decay}")
    if cfg.train.max_nonfinite < 1:
        raise ConfigError(f"train.max_nonfinite must be >= 1, got {cfg.train.max_nonfinite}")


# ----------------------------------------------------------------------------------------------
# Model and data
# ----------------------------------------------------------------------------------------------


def build_meta(cfg: GenExperimentConfig, data: LatentDataset) -> LatteMeta:
    """The Latte architecture for the cache (channels, classes) and what sampling needs."""
    num_classes = data.num_classes if cfg.model.num_classes is None else cfg.model.num_classes
    try:
        config = replace(
            LATTE_PRESETS[cfg.model.preset],
            **{
                **cfg.model.overrides,
                "in_channels": data.latent_shape[0],
                "num_classes": num_classes,
                "class_dropout_prob": cfg.model.class_dropout_prob,
            },
        )
    except TypeError as e:
        raise ConfigError(f"model.overrides: {e}") from e
    classes = tuple(data.classes) if num_classes else ()
    vae = str(data.manifest["spec"]["vae"])
    return LatteMeta(config, tuple(data.latent_shape), classes, vae)


class StepBatchSampler(Sampler[list[int]]):
    """This rank's dataset indices for every step from ``start_step`` on (endless).

    Step ``s`` consumes the global positions ``[s G, (s + 1) G)`` (``G`` the global batch) of
    :class:`pvvae.training.data.GlobalOrder`; rank ``r`` takes positions ``s G + r + W j``.
    """

    def __init__(
        self, num_items: int, seed: int, global_batch: int, info: DistInfo, start_step: int = 0
    ) -> None:
        self.order = GlobalOrder(num_items, seed)
        self.global_batch, self.info, self.start_step = global_batch, info, start_step

    def batch_at(self, step: int) -> list[int]:
        """Indices of this rank's clips at ``step``."""
        first = step * self.global_batch + self.info.rank
        per_rank = self.global_batch // self.info.world_size
        return [self.order[first + self.info.world_size * j] for j in range(per_rank)]

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.batch_at(step)
            step += 1


@dataclass
class GenTrainState:
    """Everything a training step reads or updates."""

    cfg: GenExperimentConfig
    dist: DistInfo
    model: Latte
    forward: nn.Module  # the model, DDP-wrapped under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: EMA | None
    meta: LatteMeta
    step: int = 0
    nonfinite_total: int = 0  # skipped NaN/Inf steps (pvvae.training.guards)
    nonfinite_consecutive: int = 0


def build_state(cfg: GenExperimentConfig, info: DistInfo, meta: LatteMeta) -> GenTrainState:
    """Model (seeded init), DDP wrapper, AdamW, schedule and EMA."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        model = meta.build()
    model = model.to(info.device).train()
    opt = cfg.optim
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=opt.lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay
    )
    scheduler = warmup_cosine(optimizer, opt.warmup_steps, cfg.train.steps, opt.min_lr_ratio)
    ema = EMA(model, cfg.train.ema_decay) if cfg.train.ema else None
    forward = parallel.replicate(model, info)
    return GenTrainState(cfg, info, model, forward, optimizer, scheduler, ema, meta)


# ----------------------------------------------------------------------------------------------
# One step
# ----------------------------------------------------------------------------------------------


def draw_x0(batch: dict[str, Tensor], sample_posterior: bool, g: torch.Generator) -> Tensor:
    """Clean latents of a batch: ``mean + std * n`` (a posterior sample) or ``mean``.

    Args:
        batch: ``{"latent": (B, C, t, h, w), "std": (B, C, t, h, w) (optional)}``.
        sample_posterior: draw from ``q(z|x)`` (needs ``std``).
        g: CPU generator of ``n``.

    Returns:
        (B, C, t, h, w) on the CPU.
    """
    mean = batch["latent"]
    if not sample_posterior:
        return mean
    if "std" not in batch:
        raise ConfigError(
            "data.sample_posterior=true needs a cache with the posterior std (made without "
            "--mean-only); set data.sample_posterior=false to train on the means"
        )
    return mean + batch["std"] * torch.randn(mean.shape, generator=g)


def train_step(state: GenTrainState, batch: dict[str, Tensor]) -> dict[str, float]:
    """One rectified-flow step (module docstring). Returns this rank's scalar metrics."""
    cfg, info = state.cfg, state.dist
    g = seeded_generator(cfg.train.seed, GEN_STEP, state.step, info.rank)  # CPU, per step
    x0 = draw_x0(batch, cfg.data.sample_posterior, g).to(info.device)  # (B, C, t, h, w)
    y = batch["label"].to(info.device) if state.model.conditional else None  # (B,)

    def velocity(x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        return state.forward(x, t, labels, generator=g)  # label dropout from the same stream

    autocast = (
        torch.autocast(info.device.type, dtype=torch.bfloat16)
        if cfg.train.precision == "bf16"
        else nullcontext()
    )
    with autocast:
        loss, metrics = flow_matching_loss(
            velocity, x0, y, t_sampler=cfg.flow.t_sampler, generator=g
        )
    state.optimizer.zero_grad(set_to_none=True)
    grad_norm = float("nan")
    finite = distributed.all_true(bool(torch.isfinite(loss.detach())), info)
    if finite:
        loss.backward()
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(state.model.parameters(), clip))
        finite = math.isfinite(grad_norm)  # the same on all ranks: reduced gradients
    if finite:
        state.optimizer.step()
        if state.ema is not None:
            state.ema.update(state.model)
        state.nonfinite_consecutive = 0
    else:  # skipped on every rank: no update of weights or EMA
        state.optimizer.zero_grad(set_to_none=True)
        state.nonfinite_total += 1
        state.nonfinite_consecutive += 1
    state.scheduler.step()  # the schedule follows the step counter, skipped steps included
    state.step += 1
    out = {k: float(v) for k, v in metrics.items()}
    out["grad_norm"] = grad_norm
    out["skipped"] = float(not finite)
    return out


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def save(state: GenTrainState, run_dir: Path) -> None:
    """Atomic checkpoint of weights, EMA and training state (rank 0 writes; all ranks wait)."""
    if state.dist.is_main:
        train_state = {
            "step": state.step,
            "data_position": state.step * state.cfg.train.global_batch_size,
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "config": to_dict(state.cfg),
            "nonfinite": [state.nonfinite_total, state.nonfinite_consecutive],
        }
        ema = state.ema.state_dict() if state.ema is not None else None
        save_checkpoint(
            run_dir, state.step, state.model, train_state, state.cfg.train.keep_last,
            weights=state.model.state_dict(), ema_weights=ema,
        )
    distributed.barrier(state.dist)


def restore(state: GenTrainState, checkpoint: Path) -> None:
    """Load weights, EMA, optimizer, scheduler and step from ``checkpoint``."""
    from safetensors.torch import load_file

    saved = load_train_state(checkpoint)
    saved_model = saved.get("config", {}).get("model")
    if saved_model is not None and saved_model != to_dict(state.cfg)["model"]:
        raise ConfigError(
            f"{checkpoint} was trained with model={saved_model}, the config now says "
            f"model={to_dict(state.cfg)['model']}: resume with the same model section"
        )
    state.model.load_state_dict(load_file(checkpoint / WEIGHTS_FILE, device=str(state.dist.device)))
    if state.ema is not None:
        ema_file = checkpoint / EMA_DIR / WEIGHTS_FILE
        source = ema_file if ema_file.is_file() else checkpoint / WEIGHTS_FILE
        state.ema.load_state_dict(load_file(source, device=str(state.dist.device)))
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.step = int(saved["step"])
    state.nonfinite_total, state.nonfinite_consecutive = saved.get("nonfinite", [0, 0])


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------


def make_loader(
    data: LatentDataset, cfg: GenExperimentConfig, info: DistInfo, start_step: int
) -> DataLoader:
    """Endless loader of this rank's batches ``{"latent", "std"?, "label", "index"}``."""
    from pvvae.data import collate

    sampler = StepBatchSampler(
        len(data), cfg.train.seed, cfg.train.global_batch_size, info, start_step
    )
    return DataLoader(
        data,
        batch_sampler=sampler,
        num_workers=cfg.data.num_workers,
        collate_fn=collate,
        persistent_workers=cfg.data.num_workers > 0,
    )


def _log_metrics(
    state: GenTrainState, sums: dict[str, float], count: int, seconds: float
) -> dict[str, float]:
    """Means over the logging interval (and over ranks), lr, speed and peak memory."""
    names = sorted(sums)
    t = torch.tensor([sums[k] / max(count, 1) for k in names], device=state.dist.device)
    t = distributed.all_reduce(t, state.dist, "mean")
    record = dict(zip(names, t.tolist()))
    record["lr"] = state.scheduler.get_last_lr()[0]
    record["steps_per_s"] = count / max(seconds, 1e-9)
    record["peak_memory_gib"] = peak_memory_gib(state.dist.device)
    return record


def train(cfg: GenExperimentConfig) -> Path:
    """Run ``cfg`` to ``cfg.train.steps`` steps (resuming when ``train.resume``). Returns the
    run folder ``out_dir/name``."""
    info = distributed.setup(cfg.train.device)
    try:
        return _train(cfg, info)
    finally:
        distributed.teardown(info)


def _train(cfg: GenExperimentConfig, info: DistInfo) -> Path:
    validate(cfg, info.world_size)
    run_dir = Path(cfg.train.out_dir) / cfg.name
    data = LatentDataset(cfg.data.cache)
    state = build_state(cfg, info, build_meta(cfg, data))
    checkpoint = latest_checkpoint(run_dir) if cfg.train.resume else None
    if checkpoint is not None:
        restore(state, checkpoint)
        logger.info("resumed from %s (step %d)", checkpoint, state.step)
    elif latest_checkpoint(run_dir) is not None:
        raise ValueError(f"{run_dir} already has checkpoints: pass --resume or another name")
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    log = RunLogger(run_dir, info.is_main, cfg.train.steps, state.step, cfg.train.tensorboard,
                    cfg.train.progress, desc=cfg.name)
    try:
        _loop(state, make_loader(data, cfg, info, state.step), log, run_dir)
    finally:
        log.close()
    return run_dir


def _loop(state: GenTrainState, loader: DataLoader, log: RunLogger, run_dir: Path) -> None:
    cfg = state.cfg.train
    sums: dict[str, float] = {}
    count, start = 0, time.perf_counter()
    batches = iter(loader)
    while state.step < cfg.steps:
        metrics = train_step(state, next(batches))
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        log.progress(1, loss=f"{metrics['loss']:.4f}")
        if state.step % cfg.log_every == 0 or state.step == cfg.steps:
            log.scalars(state.step, _log_metrics(state, sums, count, time.perf_counter() - start))
            sums, count, start = {}, 0, time.perf_counter()
        final = state.step == cfg.steps
        check_nonfinite(
            state.nonfinite_consecutive,
            state.nonfinite_total,
            cfg.max_nonfinite,
            state.step,
            final,
            run_dir,
        )
        if (state.step % cfg.ckpt_every == 0 or final) and state.nonfinite_consecutive == 0:
            save(state, run_dir)  # never inside a NaN streak: the last checkpoint stays good
