"""``pvvae gen train``: the Latte recipe, rectified flow on cached VAE latents (paper s. 4.1).

Paper section 4.1 ("Training details"): Latte trained with rectified flow for 250K steps, lr
1e-4, global batch 64; class-conditional on UCF101 (label dropout 0.1 for classifier-free
guidance), unconditional on RealEstate10K (``model.num_classes: 0``). One step:

1. take this rank's ``data.batch_size`` cached clips (per rank, as in ``pvvae train``: W ranks
   make a global batch of W x ``data.batch_size``); with ``data.sample_posterior`` draw
   ``x0 = mean + std * n`` (``n ~ N(0, I)``), a fresh sample of the normalised posterior
   ``q(z|x)``, else ``x0 = mean``;
2. :func:`pvvae.gen.flow.flow_matching_loss`: ``t`` (uniform or logit-normal), ``eps``,
   ``x_t = (1 - t) x0 + t eps``, MSE to ``v = eps - x0``; labels dropped to the null class with
   probability ``class_dropout_prob`` inside the model;
3. AdamW step (gradients all-reduced by DDP), gradient clipping, EMA update.

Everything else is the training engine's (:mod:`pvvae.training.engine`), as for the VAE: the
run folder (a fresh run moves an earlier one aside, ``--resume`` continues it), atomic
checkpoints with RNG states, the non-finite guard, the bf16 -> fp32 fallback of
``train.precision=bf16``, logging. Every random draw of step ``s`` on rank ``r`` comes from a
generator seeded with ``(seed, s, r)`` and the data order is a function of (seed, position),
so a resumed run repeats the losses of an uninterrupted one (bit-exact on the CPU). A
checkpoint's model folder is a ``Latte.save_pretrained`` folder (``Latte.from_pretrained``).

The same command runs alone or under torchrun::

    pvvae gen train configs/gen/smoke.yaml
    torchrun --nproc_per_node=8 -m pvvae gen train configs/gen/ucf101_xl.yaml
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from pvvae.config import ConfigError
from pvvae.gen.cache import LatentDataset
from pvvae.gen.checkpoint import LatteMeta
from pvvae.gen.flow import flow_matching_loss
from pvvae.gen.latte import LATTE_PRESETS
from pvvae.training import distributed, parallel
from pvvae.training.config import LoopConfig, validate_loop
from pvvae.training.data import ResolutionBatchSampler
from pvvae.training.distributed import DistInfo
from pvvae.training.engine import (
    EngineState,
    Recipe,
    core_state,
    counters,
    finish_step,
    run,
    update,
    with_fp32_fallback,
)
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
    batch_size: int = 8  # per rank (the global batch is world_size x batch_size)
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
class GenTrainConfig(LoopConfig):
    """Loop length, precision, EMA, logging and checkpointing."""

    steps: int = 250_000
    log_every: int = 100
    ckpt_every: int = 5000
    ema: bool = True
    ema_decay: float = 0.9999


@dataclass
class GenExperimentConfig:
    """Everything ``pvvae gen train`` needs; saved as ``runs/NAME/config.yaml``."""

    name: str = "latte"
    model: LatteModelConfig = field(default_factory=LatteModelConfig)
    data: LatentDataConfig = field(default_factory=LatentDataConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    optim: GenOptimConfig = field(default_factory=GenOptimConfig)
    train: GenTrainConfig = field(default_factory=GenTrainConfig)


def validate(cfg: GenExperimentConfig) -> None:
    """Cross-field checks; raises :class:`ConfigError`."""
    if not cfg.data.cache:
        raise ConfigError("data.cache is required: a folder written by `pvvae gen cache`")
    if cfg.model.preset not in LATTE_PRESETS:
        raise ConfigError(f"model.preset={cfg.model.preset!r}; valid: {sorted(LATTE_PRESETS)}")
    if cfg.data.batch_size < 1:
        raise ConfigError(f"data.batch_size must be >= 1, got {cfg.data.batch_size}")
    validate_loop(cfg.train)


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


@dataclass
class LatteState(EngineState):
    """The engine's state (``model`` is the Latte) plus what its config records."""

    meta: LatteMeta | None = None
    frozen_on_resume: ClassVar[tuple[str, ...]] = ("model",)


def build_state(cfg: GenExperimentConfig, info: DistInfo, meta: LatteMeta) -> LatteState:
    """Model (seeded init), DDP wrapper, AdamW, schedule, EMA and precision policy."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        model = meta.build()
    model = model.to(info.device).train()
    forward = parallel.replicate(model, info)
    return core_state(LatteState, cfg, info, model, forward, list(model.parameters()), meta=meta)


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


def train_step(state: LatteState, batch: dict[str, Tensor]) -> dict[str, float]:
    """One rectified-flow step (module docstring). Returns this rank's scalar metrics.

    Under bf16 a step with a finite loss and a non-finite gradient is recomputed in fp32 from
    the same draws (:func:`pvvae.training.engine.with_fp32_fallback`).
    """
    cfg, info = state.cfg, state.dist
    y = batch["label"].to(info.device) if state.model.conditional else None  # (B,)

    def attempt(retry: bool) -> tuple[tuple[dict, float | None], bool]:
        g = seeded_generator(cfg.train.seed, GEN_STEP, state.step, info.rank)  # CPU, per step
        x0 = draw_x0(batch, cfg.data.sample_posterior, g).to(info.device)  # (B, C, t, h, w)

        def velocity(x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
            return state.forward(x, t, labels, generator=g)  # label dropout from the same stream

        with state.precision.autocast():
            loss, metrics = flow_matching_loss(
                velocity, x0, y, t_sampler=cfg.flow.t_sampler, generator=g
            )
        owner = state.model if retry else None
        norm = update(state, loss.float(), state.optimizer, state.scheduler, owner)
        return (metrics, norm), norm is not None

    (metrics, norm), retried = with_fp32_fallback(state, attempt)
    finish_step(state, norm is not None, len(batch["latent"]))
    out = {k: float(v) for k, v in metrics.items()}
    out["grad_norm"] = float("nan") if norm is None else norm
    out["skipped"] = float(norm is None)
    if retried:
        out["precision/fp32_retry"] = 1.0
    return out


# ----------------------------------------------------------------------------------------------
# The recipe
# ----------------------------------------------------------------------------------------------


def make_loader(data: LatentDataset, cfg: GenExperimentConfig, info: DistInfo,
                start_position: int) -> DataLoader:
    """Endless loader of this rank's batches ``{"latent", "std"?, "label", "index"}``."""
    from pvvae.data import collate

    sampler = ResolutionBatchSampler(len(data), cfg.train.seed, {0: cfg.data.batch_size},
                                     rank=info.rank, world_size=info.world_size,
                                     start_position=start_position, plain=True)
    return DataLoader(data, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                      collate_fn=collate, persistent_workers=cfg.data.num_workers > 0)


class LatteRecipe(Recipe):
    """The Latte for :func:`pvvae.training.engine.run`: its state, cached latents, the
    rectified-flow step, and log records that average the interval's steps over the ranks."""

    def __init__(self, cfg: GenExperimentConfig) -> None:
        self.cfg, self.data = cfg, None

    def validate(self) -> None:
        validate(self.cfg)

    def build_state(self, info: DistInfo) -> LatteState:
        self.data = LatentDataset(self.cfg.data.cache)
        return build_state(self.cfg, info, build_meta(self.cfg, self.data))

    def batches(self, state: LatteState) -> DataLoader:
        return make_loader(self.data, self.cfg, state.dist, state.data_position)

    def train_step(self, state: LatteState, batch: dict[str, Any]) -> dict[str, float]:
        return train_step(state, batch)

    def log_record(self, state: LatteState, window: list[dict[str, float]]) -> dict[str, float]:
        """Means over the interval and over ranks, lr and the engine's counters."""
        names = sorted({k for m in window for k in m})
        t = torch.tensor([sum(m.get(k, 0.0) for m in window) / len(window) for k in names],
                         device=state.dist.device)
        record = dict(zip(names, distributed.all_reduce(t, state.dist, "mean").tolist()))
        return {**record, "lr": state.scheduler.get_last_lr()[0], **counters(state)}

    def postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{metrics['loss']:.4f}"}

    def describe(self, state: LatteState) -> str:
        shape = "x".join(map(str, state.meta.latent_shape))
        return f"Latte {self.cfg.model.preset} on {shape} latents of {state.meta.vae}"


def train(cfg: GenExperimentConfig) -> Path:
    """Run ``cfg`` to ``cfg.train.steps`` steps (resuming when ``train.resume``). Returns the
    run folder ``out_dir/name``."""
    return run(LatteRecipe(cfg))
