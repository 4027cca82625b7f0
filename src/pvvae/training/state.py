"""Everything a VAE training step reads or updates, how it is built and how it is saved.

Stages (seed section 3.2, "Training"):

* ``image``: clips of one frame (T = 1), several resolutions; nothing is dropped (G = 1).
* ``video``: predictive reconstruction with maximum dropping ratio r (section 3.1).
* ``decoder``: the encoder is frozen (``requires_grad=False``, eval mode, absent from the
  optimizer), dropping is disabled (k = 0) and the GAN is active from step 0.

In every stage the GAN term is active from ``objective.gan.start_step`` (seed: 5,000) when
``lambda_gan > 0``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pvvae.config import to_dict
from pvvae.model.autoencoder import PVVAE
from pvvae.model.causal import inflate_temporal_kernels
from pvvae.model.registry import model_class
from pvvae.objectives.gan import PatchDiscriminator3D
from pvvae.objectives.predictive import predictive_reconstruction
from pvvae.training import distributed, parallel
from pvvae.training.checkpoint import (
    EMA_DIR,
    WEIGHTS_FILE,
    load_model,
    load_train_state,
    load_weights,
    read_weights,
    resolve_checkpoint,
)
from pvvae.training.config import ExperimentConfig
from pvvae.training.distributed import DistInfo
from pvvae.training.ema import EMA
from pvvae.training.precision import PrecisionPolicy
from pvvae.training.schedule import lr_multiplier, warmup_cosine

logger = logging.getLogger(__name__)


class PredictiveForward(nn.Module):
    """The VAE's training forward pass as one module call, the unit DDP / FSDP wrap.

    ``forward(x, k, sample_posterior, generator) -> (x_hat, posterior_parameters)`` runs
    :func:`pvvae.objectives.predictive.predictive_reconstruction`: x (B, 3, 1 + T, H, W) ->
    x_hat (B, 3, 1 + T, H, W) and posterior parameters (B, 2 Cz, G - k, h, w).
    """

    def __init__(self, vae: PVVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(
        self, x: Tensor, k: int, sample_posterior: bool, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        out = predictive_reconstruction(self.vae, x, k, sample_posterior, generator)
        return out.x_hat, out.posterior.parameters


@dataclass
class TrainState:
    """The models, optimizers and counters of a run (``train_step`` mutates it)."""

    cfg: ExperimentConfig
    dist: DistInfo
    vae: PVVAE  # the model itself: weights, config, last layer
    forward: nn.Module  # PredictiveForward, wrapped by DDP / FSDP under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    lpips: nn.Module | None = None
    discriminator: nn.Module | None = None
    disc_forward: nn.Module | None = None  # the discriminator, DDP-wrapped under torchrun
    disc_optimizer: torch.optim.Optimizer | None = None
    disc_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    ema: EMA | None = None
    sharded: bool = False  # FSDP
    step: int = 0
    data_position: int = 0  # global sample position of the next batch
    lecam_anchors: list[float] = field(default_factory=lambda: [0.0, 0.0])  # (real, fake)
    nonfinite_total: int = 0
    nonfinite_consecutive: int = 0
    skipped_files: list[str] = field(default_factory=list)  # unreadable data files found so far
    preview: tuple[Tensor, Tensor, int] | None = None  # (x, x_hat, observed frames) to show
    precision: PrecisionPolicy | None = None  # autocast and the bf16 fallback (set by build_state)


def drop_ratio(cfg: ExperimentConfig) -> float:
    """r of the stage: the configured one in ``video``, 0 in ``image`` and ``decoder``."""
    return cfg.objective.max_drop_ratio if cfg.train.stage == "video" else 0.0


def gan_active(cfg: ExperimentConfig, step: int) -> bool:
    """Whether step ``step`` (0-based) uses the GAN: from start_step, from 0 in ``decoder``."""
    if cfg.objective.loss.lambda_gan <= 0:
        return False
    return cfg.train.stage == "decoder" or step >= cfg.objective.gan.start_step


def build_model(cfg: ExperimentConfig) -> PVVAE:
    """The VAE of ``cfg.model``, initialised from ``init_from`` (EMA weights preferred).

    ``model.source`` picks a PV-VAE (``pvvae``) or a diffusers VAE wrapped for predictive
    reconstruction (``diffusers:FOLDER``, ``diffusers:new:AutoencoderKLWan``; see
    :class:`~pvvae.training.config.ModelConfig`).
    """
    model = _new_model(cfg)
    if cfg.model.init_from:
        source = load_model(cfg.model.init_from, use_ema=cfg.model.init_from_ema)
        try:
            model.load_state_dict(source.state_dict())
        except RuntimeError as e:
            raise ValueError(
                f"model.init_from={cfg.model.init_from} holds a model of another configuration "
                f"than model.source={cfg.model.source!r}, model.preset={cfg.model.preset!r} "
                f"with {cfg.model.overrides}: {e}"
            ) from e
        if cfg.model.inflate_temporal:
            inflate_temporal_kernels(model)
    return model


def _new_model(cfg: ExperimentConfig) -> PVVAE:
    """The model of ``cfg.model.source`` before ``init_from``."""
    target = cfg.model.diffusers_target
    if target is None:
        return model_class(cfg.model.arch)(**cfg.model.build_kwargs())
    from pvvae.model.diffusers_vae import NEW_PREFIX, DiffusersPVVAE, diffusers_model_folder

    if target.startswith(NEW_PREFIX):
        return DiffusersPVVAE.new(cfg.model.preset, **cfg.model.overrides)
    try:
        diffusers_model_folder(target)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"model.source={cfg.model.source}: no diffusers VAE in {target} (no config.json "
            f"there or in its vae/); set model.source=diffusers:/path/to/your/vae"
        ) from e
    return DiffusersPVVAE.from_diffusers(target)


def freeze_for_stage(vae: PVVAE, cfg: ExperimentConfig) -> None:
    """Stage freezing: the encoder in ``decoder``; the learnable padding token whenever it
    cannot be used (k always 0, or Gaussian padding)."""
    if cfg.train.stage == "decoder":
        for module in vae.encoder_modules():
            module.requires_grad_(False)
    if drop_ratio(cfg) == 0.0 or vae.config.pad_mode != "learnable":
        vae.pad_token.requires_grad_(False)


def set_train_mode(state: TrainState) -> None:
    """Train mode, except the frozen encoder of the ``decoder`` stage (kept in eval)."""
    state.forward.train()
    if state.cfg.train.stage == "decoder":
        for module in state.vae.encoder_modules():
            module.eval()
    if state.discriminator is not None:
        state.discriminator.train()


def _adamw(params: list[nn.Parameter], lr: float, betas, weight_decay: float):
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def _wrap_vae(vae: PVVAE, cfg: ExperimentConfig, info: DistInfo) -> nn.Module:
    """Checkpointing, DDP / FSDP and compile around the VAE's training forward pass.

    The units of checkpointing and of FSDP are the blocks the model class names in
    diffusers' ``_repeated_blocks``; a wrapped diffusers VAE, whose blocks share a mutable
    causal cache, is checkpointed per temporal chunk instead (it does it itself).
    """
    blocks = tuple({type(m) for m in vae.modules() if type(m).__name__ in vae._repeated_blocks})
    forward = PredictiveForward(vae)
    if cfg.train.gradient_checkpointing and cfg.model.diffusers_target is not None:
        vae.gradient_checkpointing = True
    elif cfg.train.gradient_checkpointing:
        parallel.checkpoint_blocks(vae, blocks)
    if info.distributed and cfg.train.parallel == "fsdp":
        forward = parallel.shard(forward, lambda m: isinstance(m, blocks), info)
    else:
        # k = 0 leaves the learnable padding token unused: DDP must be told when that varies.
        varies = drop_ratio(cfg) > 0 and vae.pad_token.requires_grad
        forward = parallel.replicate(forward, info, find_unused_parameters=varies)
    if cfg.train.compile:
        for module in vae.encoder_modules() + vae.decoder_modules():
            module.compile()
    return forward


def _build_discriminator(cfg: ExperimentConfig, info: DistInfo):
    """Discriminator, its DDP wrapper, optimizer and scheduler (None x 4 without a GAN)."""
    gcfg = cfg.objective.gan
    if cfg.objective.loss.lambda_gan <= 0:
        return None, None, None, None
    disc = PatchDiscriminator3D(3, gcfg.channels, gcfg.num_layers)
    if cfg.model.init_from and gcfg.load_from_init:
        state = load_weights(resolve_checkpoint(cfg.model.init_from), "discriminator")
        if state is not None:
            disc.load_state_dict(state)
            logger.info("discriminator initialised from %s", cfg.model.init_from)
    disc = disc.to(info.device)
    opt = _adamw(list(disc.parameters()), gcfg.lr or cfg.optim.lr, gcfg.betas, gcfg.weight_decay)
    start = 0 if cfg.train.stage == "decoder" else gcfg.start_step
    sched = warmup_cosine(
        opt, cfg.optim.warmup_steps, max(cfg.train.steps - start, 1), cfg.optim.min_lr_ratio
    )
    wrapped = parallel.replicate(disc, info)
    if cfg.train.compile:
        disc.compile()
    disc.requires_grad_(False)  # enabled only inside the discriminator update
    return disc, wrapped, opt, sched


def build_lpips(cfg: ExperimentConfig, device: torch.device) -> nn.Module | None:
    """The frozen LPIPS network when ``lambda_lpips > 0`` (errors clearly if weights miss)."""
    if cfg.objective.loss.lambda_lpips <= 0:
        return None
    from pvvae.objectives.lpips import LPIPS

    lc = cfg.objective.lpips
    return LPIPS(
        lc.net,
        backbone_path=lc.backbone_path,
        pretrained_backbone=lc.pretrained_backbone,
        allow_download=lc.allow_download,
    ).to(device)


def build_state(cfg: ExperimentConfig, info: DistInfo) -> TrainState:
    """Model, losses, optimizers and schedulers of ``cfg`` on ``info.device`` (step 0)."""
    torch.manual_seed(cfg.train.seed)  # same initial weights on every rank and every run
    lpips = build_lpips(cfg, info.device)  # first: a missing backbone fails before any work
    vae = build_model(cfg)
    freeze_for_stage(vae, cfg)
    vae = vae.to(info.device)
    forward = _wrap_vae(vae, cfg, info)
    sharded = info.distributed and cfg.train.parallel == "fsdp"
    ema = EMA(vae, cfg.train.ema_decay) if cfg.train.ema else None  # of shards under FSDP
    params = [p for p in forward.parameters() if p.requires_grad]
    o = cfg.optim
    optimizer = _adamw(params, o.lr, o.betas, o.weight_decay)
    scheduler = warmup_cosine(optimizer, o.warmup_steps, cfg.train.steps, o.min_lr_ratio)
    disc, disc_forward, disc_opt, disc_sched = _build_discriminator(cfg, info)
    state = TrainState(
        cfg,
        info,
        vae,
        forward,
        optimizer,
        scheduler,
        lpips,
        disc,
        disc_forward,
        disc_opt,
        disc_sched,
        ema,
        sharded,
    )
    state.precision = PrecisionPolicy(vae, info.device.type, cfg.train.precision == "bf16")
    set_train_mode(state)
    return state


# ---------------------------------------------------------------------------- checkpoints
def checkpoint_payload(state: TrainState) -> dict[str, Any]:
    """Arguments of :func:`pvvae.training.checkpoint.save_checkpoint` beyond the model.

    Collective (all ranks call it: FSDP shards and per-rank RNG states are gathered); the
    tensors are complete on rank 0 only.
    """
    info, sharded = state.dist, state.sharded
    rng = distributed.all_gather_object(distributed.rng_state(), info)
    train_state: dict[str, Any] = {
        "step": state.step,
        "data_position": state.data_position,
        "world_size": info.world_size,
        "optimizer": parallel.optimizer_state_for_save(
            state.forward, state.optimizer, info, sharded
        ),
        "scheduler": state.scheduler.state_dict(),
        "lecam_anchors": list(state.lecam_anchors),
        "nonfinite": [state.nonfinite_total, state.nonfinite_consecutive],
        "skipped_files": list(state.skipped_files),
        "precision": state.precision.state_dict(),
        "rng": rng,
        "config": to_dict(state.cfg),
    }
    extra: dict[str, dict[str, Tensor]] = {}
    if state.discriminator is not None:
        train_state["disc_optimizer"] = state.disc_optimizer.state_dict()
        train_state["disc_scheduler"] = state.disc_scheduler.state_dict()
        extra["discriminator"] = parallel.model_state_for_save(state.discriminator, info, False)
    ema = None
    if state.ema is not None:
        ema = state.ema.state_dict()
        ema = distributed.full_state_dict(ema) if sharded or info.is_main else {}
    return {
        "train_state": train_state,
        "weights": parallel.model_state_for_save(state.vae, info, sharded),
        "ema_weights": ema,
        "extra_weights": extra,
    }


def restore(state: TrainState, checkpoint: Path) -> None:
    """Load a checkpoint written by :func:`checkpoint_payload` into ``state`` (every rank)."""
    ts = load_train_state(checkpoint)
    if state.dist.is_main:
        _warn_config_changes(ts["config"], to_dict(state.cfg))
        _warn_schedule_change(ts["config"], state.cfg, int(ts["step"]))
    parallel.load_model_state(state.vae, read_weights(checkpoint / WEIGHTS_FILE))  # finite
    parallel.load_optimizer_state(state.forward, state.optimizer, ts["optimizer"], state.sharded)
    state.scheduler.load_state_dict(ts["scheduler"])
    if state.ema is not None:
        ema_file = checkpoint / EMA_DIR / WEIGHTS_FILE
        state.ema.load_state_dict(
            read_weights(ema_file) if ema_file.is_file() else _vae_full(state)
        )
    if state.discriminator is not None:
        disc = load_weights(checkpoint, "discriminator")
        if disc is not None and "disc_optimizer" in ts:
            parallel.load_model_state(state.discriminator, disc)
            state.disc_optimizer.load_state_dict(ts["disc_optimizer"])
            state.disc_scheduler.load_state_dict(ts["disc_scheduler"])
    state.step, state.data_position = int(ts["step"]), int(ts["data_position"])
    state.lecam_anchors = [float(a) for a in ts["lecam_anchors"]]
    state.nonfinite_total, state.nonfinite_consecutive = (int(n) for n in ts["nonfinite"])
    state.skipped_files = [str(p) for p in ts.get("skipped_files", [])]  # absent in old ones
    state.precision.load_state_dict(ts.get("precision", {}))
    if int(ts["world_size"]) == state.dist.world_size:
        distributed.set_rng_state(ts["rng"][state.dist.rank])
    else:
        logger.warning(
            "checkpoint written by %d ranks, resumed on %d: global RNG states not restored "
            "(training draws are keyed by step and rank, so this only matters for code that "
            "uses the global RNG)",
            int(ts["world_size"]),
            state.dist.world_size,
        )


# keys that may change between a run and its resumption without breaking exactness
_RESUME_FREE = {
    "train.resume",
    "train.steps",
    "train.progress",
    "train.log_every",
    "train.ckpt_every",
    "train.keep_last",
    "train.image_every",
    "train.tensorboard",
    "data.num_workers",
}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) and k != "overrides" else {key: v})
    return out


def _warn_config_changes(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Log the config keys that differ from the checkpoint's (the resume may not be exact)."""
    a, b = _flatten(saved), _flatten(current)
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in _RESUME_FREE)
    if changed:
        logger.warning(
            "resuming with a config that differs from the checkpoint's in %s: the run "
            "continues, but not exactly as the original would have",
            ", ".join(f"{k} ({a.get(k)!r} -> {b.get(k)!r})" for k in changed),
        )


def _warn_schedule_change(saved: dict[str, Any], cfg: ExperimentConfig, step: int) -> None:
    """Warn when a new ``train.steps`` moves the learning rate of the resumed step.

    ``train.steps`` may change on resume (extend or shorten a run), but the cosine decay is
    stretched over the new length, so the learning rate jumps at the resume step.
    """
    old_steps, o = int(saved["train"]["steps"]), cfg.optim
    if old_steps == cfg.train.steps:
        return
    before = lr_multiplier(step, o.warmup_steps, old_steps, o.min_lr_ratio) * o.lr
    after = lr_multiplier(step, o.warmup_steps, cfg.train.steps, o.min_lr_ratio) * o.lr
    if not math.isclose(before, after, rel_tol=1e-6):
        logger.warning(
            "train.steps changed from %d to %d on resume: the cosine schedule is stretched to "
            "the new length, so the learning rate jumps from %.3g to %.3g at step %d",
            old_steps,
            cfg.train.steps,
            before,
            after,
            step,
        )


def _vae_full(state: TrainState) -> dict[str, Tensor]:
    """The current weights as a full state dict (EMA start when a checkpoint has none)."""
    return distributed.full_state_dict(state.vae.state_dict())
