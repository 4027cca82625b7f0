"""Everything a VAE training step reads or updates and how it is built (the VAE recipe's
state; :mod:`pvvae.training.engine` saves and restores it).

Stages (paper section 3.2, "Training"):

* ``image``: clips of one frame (T = 1), several resolutions; nothing is dropped (G = 1).
* ``video``: predictive reconstruction with maximum dropping ratio r (section 3.1).
* ``decoder``: the encoder is frozen (``requires_grad=False``, eval mode, absent from the
  optimizer), dropping is disabled (k = 0) and the GAN is active from step 0.

In every stage the GAN term is active from ``objective.gan.start_step`` (paper: 5,000) when
``lambda_gan > 0``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pvvae.model.autoencoder import PVVAE
from pvvae.model.causal import inflate_temporal_kernels
from pvvae.model.registry import model_class
from pvvae.objectives.gan import PatchDiscriminator3D
from pvvae.objectives.predictive import predictive_reconstruction
from pvvae.training import parallel
from pvvae.training.checkpoint import load_model, load_weights, resolve_checkpoint
from pvvae.training.config import ExperimentConfig
from pvvae.training.distributed import DistInfo
from pvvae.training.engine import EngineState, adamw, core_state
from pvvae.training.schedule import warmup_cosine

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
class TrainState(EngineState):
    """The VAE run's state: the engine's (``model`` is the VAE, ``forward`` the wrapped
    :class:`PredictiveForward`) plus the losses, the discriminator and the data bookkeeping."""

    lpips: nn.Module | None = None
    discriminator: nn.Module | None = None
    disc_forward: nn.Module | None = None  # the discriminator, DDP-wrapped under torchrun
    disc_optimizer: torch.optim.Optimizer | None = None
    disc_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    lecam_anchors: list[float] = field(default_factory=lambda: [0.0, 0.0])  # (real, fake)
    skipped_files: list[str] = field(default_factory=list)  # unreadable data files found so far
    preview: tuple[Tensor, Tensor, int] | None = None  # (x, x_hat, observed frames) to show

    @property
    def vae(self) -> PVVAE:
        """The VAE itself: weights, config, last layer."""
        return self.model

    def extra_train_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lecam_anchors": list(self.lecam_anchors),
            "skipped_files": list(self.skipped_files),
        }
        if self.discriminator is not None:
            out["disc_optimizer"] = self.disc_optimizer.state_dict()
            out["disc_scheduler"] = self.disc_scheduler.state_dict()
        return out

    def extra_weights(self) -> dict[str, dict[str, Tensor]]:
        if self.discriminator is None:
            return {}
        disc = parallel.model_state_for_save(self.discriminator, self.dist, False)
        return {"discriminator": disc}

    def load_extra(self, train_state: dict[str, Any], checkpoint: Path) -> None:
        if self.discriminator is not None:
            disc = load_weights(checkpoint, "discriminator")
            if disc is not None and "disc_optimizer" in train_state:
                parallel.load_model_state(self.discriminator, disc)
                self.disc_optimizer.load_state_dict(train_state["disc_optimizer"])
                self.disc_scheduler.load_state_dict(train_state["disc_scheduler"])
        self.lecam_anchors = [float(a) for a in train_state["lecam_anchors"]]
        self.skipped_files = [str(p) for p in train_state.get("skipped_files", [])]  # old: none


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
    opt = adamw(list(disc.parameters()), gcfg.lr or cfg.optim.lr, gcfg.betas, gcfg.weight_decay)
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
    disc, disc_forward, disc_opt, disc_sched = _build_discriminator(cfg, info)
    state = core_state(
        TrainState, cfg, info, vae, forward, [p for p in forward.parameters() if p.requires_grad],
        sharded=info.distributed and cfg.train.parallel == "fsdp", lpips=lpips,
        discriminator=disc, disc_forward=disc_forward, disc_optimizer=disc_opt,
        disc_scheduler=disc_sched,
    )
    set_train_mode(state)
    return state
