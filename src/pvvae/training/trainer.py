"""The VAE recipe of ``pvvae train`` (paper sections 3.1, 3.2 and 4.1).

One step (:func:`train_step`):

1. draw k, the dropped groups (section 3.1; always 0 in the ``image`` and ``decoder``
   stages), encode the observed prefix, pad, decode the whole clip;
2. generator update: Eq. 1, lambda_rec (MSE + Diff) + lambda_lpips LPIPS + lambda_gan
   w_adapt L_GAN + lambda_kl KL, one AdamW step on the warm-up + cosine schedule;
3. discriminator update (once the GAN is active): hinge loss (+ LeCam) on real clips and
   the detached reconstructions, its own AdamW step;
4. EMA update.

A step whose loss or gradient norm is NaN/Inf on any rank is skipped on all ranks and
counted; ``train.max_nonfinite`` consecutive ones, or a run that reaches its last step
inside a shorter streak, stop it with :class:`NonFiniteLossError` (no checkpoint is written
during such a streak, so the last one holds good weights; :mod:`pvvae.training.guards`).
:class:`VAERecipe` gives this step, the state and the data to the training engine
(:mod:`pvvae.training.engine`), which runs alone or under torchrun, logs on rank 0 and writes
atomic checkpoints; with ``train.resume`` it continues exactly from the latest one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pvvae.model.distributions import DiagonalGaussian
from pvvae.objectives.gan import (
    adaptive_weight,
    discriminator_loss,
    generator_loss,
    lecam_regularization,
    update_anchor,
)
from pvvae.objectives.losses import (
    compose_loss,
    kl_loss,
    motion_loss,
    mse_loss,
    observed_and_predicted_mse,
)
from pvvae.objectives.perceptual import lpips_loss, sample_frames
from pvvae.objectives.predictive import num_groups, sample_num_dropped
from pvvae.training import distributed, seeding
from pvvae.training.checkpoint import export_diffusers, latest_checkpoint
from pvvae.training.config import ExperimentConfig, validate
from pvvae.training.data import build_training_dataset, make_loader
from pvvae.training.distributed import resolve_device  # noqa: F401 (public re-export)
from pvvae.training.engine import (
    Recipe,
    counters,
    finish_step,
    run,
    save,  # noqa: F401 (public re-export)
    update,
    with_fp32_fallback,
)
from pvvae.training.guards import NonFiniteLossError, check_nonfinite  # noqa: F401 (re-export)
from pvvae.training.monitor import RunLogger, frame_strip
from pvvae.training.state import (  # noqa: F401 (build_model: public re-export)
    TrainState,
    build_model,
    build_state,
    drop_ratio,
    gan_active,
)

logger = logging.getLogger(__name__)
DIFFUSERS_DIR = "diffusers"  # run_dir/diffusers: a fine-tuned diffusers VAE, exported


def autocast(state: TrainState) -> torch.autocast:
    """bf16 autocast when the run's precision policy has it on (a no-op context otherwise;
    :mod:`pvvae.training.precision`)."""
    return state.precision.autocast()


def draw_k(state: TrainState, num_frames: int) -> int:
    """k ~ U{0..floor((G - 1) r)} from (seed, step): the same on every rank (equal work)."""
    groups = num_groups(num_frames, state.vae.temporal_compression)
    g = seeding.generator(state.cfg.train.seed, seeding.DROP, state.step)
    return sample_num_dropped(groups, drop_ratio(state.cfg), g)


def generator_step(state: TrainState, x: Tensor, k: int, gan_on: bool) -> tuple[dict, Tensor]:
    """The VAE update of Eq. 1 on clips x (B, 3, 1 + T, H, W). Returns (metrics, x_hat).

    A bf16 step with a finite loss and a non-finite gradient is recomputed in fp32; when that
    is finite, the failing modules stay in fp32 (:mod:`pvvae.training.precision`).
    """
    def attempt(retry: bool) -> tuple[tuple[dict, Tensor], bool]:
        metrics, x_hat = _generator_step(state, x, k, gan_on, retry)
        return (metrics, x_hat), not metrics["step/skipped"]

    (metrics, x_hat), retried = with_fp32_fallback(state, attempt)
    if retried:
        metrics["precision/fp32_retry"] = 1
    return metrics, x_hat


def _generator_step(
    state: TrainState, x: Tensor, k: int, gan_on: bool, retry: bool
) -> tuple[dict, Tensor]:
    """:func:`generator_step` once, in the policy's precision (``retry``: may raise
    :class:`~pvvae.training.precision.BF16StepFailed`)."""
    cfg, info, step = state.cfg, state.dist, state.step
    noise = seeding.generator(cfg.train.seed, seeding.NOISE, step, info.rank, device=info.device)
    with autocast(state):
        x_hat, params = state.forward(x, k, cfg.objective.sample_posterior, noise)
    x_hat = x_hat.float()  # (B, 3, 1 + T, H, W)
    terms = {
        "mse": mse_loss(x_hat, x),
        "diff": motion_loss(x_hat, x),
        "kl": kl_loss(DiagonalGaussian(params.float())),
    }
    w = cfg.objective.loss
    if state.lpips is not None:
        g = seeding.generator(cfg.train.seed, seeding.LPIPS_FRAMES, step, info.rank)
        frames = sample_frames(x.shape[2], cfg.objective.lpips.frames_per_clip, g)
        with autocast(state):
            terms["lpips"] = lpips_loss(state.lpips, x_hat, x, frames).float()
    metrics: dict[str, float] = {}
    if gan_on:
        with autocast(state):
            logits = state.discriminator(x_hat)  # frozen here: gradients reach x_hat only
        g_adv = generator_loss(logits.float(), cfg.objective.gan.loss)
        weight = _gan_weight(state, terms, g_adv)
        terms["gan"] = weight * g_adv
        metrics.update({"loss/gan_generator": float(g_adv.detach()), "gan/weight": float(weight)})
    loss = compose_loss(terms, w)
    owner = state.vae if retry else None
    norm = update(state, loss, state.optimizer, state.scheduler, owner)
    n_obs = x.shape[2] - k * state.vae.temporal_compression
    metrics.update({f"loss/{name}": float(v.detach()) for name, v in terms.items()})
    metrics.update(
        {
            f"mse/{key.removeprefix('mse_')}": v
            for key, v in observed_and_predicted_mse(x_hat.detach(), x, n_obs).items()
        }
    )
    metrics.update(
        {"loss/total": float(loss.detach()), "step/k": k, "step/skipped": int(norm is None)}
    )
    if norm is not None:
        metrics["grad_norm/vae"] = norm
    _keep_preview(state, x, x_hat, n_obs)
    return metrics, x_hat


def _gan_weight(state: TrainState, terms: dict[str, Tensor], g_adv: Tensor) -> Tensor:
    """Adaptive weight at the decoder's last layer, or 1 when disabled."""
    gcfg, w = state.cfg.objective.gan, state.cfg.objective.loss
    if not gcfg.adaptive_weight or not torch.isfinite(g_adv):
        return g_adv.new_ones(())
    rec = w.lambda_rec * (terms["mse"] + (terms["diff"] if w.motion_loss else 0.0))
    if "lpips" in terms:
        rec = rec + w.lambda_lpips * terms["lpips"]
    # read after the forward pass: under FSDP this is the unsharded weight that was used
    last_layer = state.vae.get_last_layer()
    return adaptive_weight(rec, g_adv, last_layer, gcfg.max_adaptive_weight)


def discriminator_step(state: TrainState, x: Tensor, x_hat: Tensor) -> dict[str, float]:
    """One discriminator update on real clips x and reconstructions x_hat (detached)."""
    gcfg, info = state.cfg.objective.gan, state.dist
    lr = state.disc_scheduler.get_last_lr()[0]
    state.discriminator.requires_grad_(True)
    with autocast(state):
        logits = state.disc_forward(torch.cat([x, x_hat.detach()]))  # one pass: (2B, 1, ...)
    real, fake = logits.float().chunk(2)
    loss = discriminator_loss(real, fake, gcfg.loss)
    means = distributed.all_reduce(torch.stack([real.mean(), fake.mean()]).detach(), info, "mean")
    anchors = state.lecam_anchors
    if gcfg.lecam_weight > 0:
        anchors = [update_anchor(a, float(m), gcfg.lecam_decay) for a, m in zip(anchors, means)]
        reg = lecam_regularization(real, fake, anchors[0], anchors[1])
        loss = loss + gcfg.lecam_weight * reg
    norm = update(state, loss, state.disc_optimizer, state.disc_scheduler)
    state.discriminator.requires_grad_(False)
    metrics = {
        "loss/discriminator": float(loss.detach()),
        "gan/logits_real": float(means[0]),
        "gan/logits_fake": float(means[1]),
        "step/disc_skipped": int(norm is None),
        "lr/discriminator": lr,
    }
    if norm is not None:
        state.lecam_anchors = anchors  # anchors move only with applied updates
        metrics["grad_norm/discriminator"] = norm
    return metrics


def train_step(state: TrainState, batch: dict[str, Any], k: int | None = None) -> dict[str, float]:
    """One training step (module docstring). Returns scalar metrics.

    Args:
        state: the run's state (mutated: weights, optimizers, counters, step).
        batch: ``{"video": (B, 3, 1 + T, H, W) in [-1, 1], ...}``.
        k: dropped groups; None draws it (benchmarks pass a fixed sequence).
    """
    x = batch["video"].to(state.dist.device, non_blocking=True)  # (B, 3, 1 + T, H, W)
    if k is None:
        k = draw_k(state, x.shape[2])
    gan_on = gan_active(state.cfg, state.step)
    lr = state.scheduler.get_last_lr()[0]
    metrics, x_hat = generator_step(state, x, k, gan_on)
    if gan_on:
        metrics.update(discriminator_step(state, x, x_hat))
    skipped = bool(metrics["step/skipped"] or metrics.get("step/disc_skipped", 0))
    finish_step(state, not skipped, x.shape[0], ema=not metrics["step/skipped"])
    metrics.update(counters(state))
    metrics["data/resolution"] = x.shape[-1]
    metrics["lr/vae"] = lr
    return metrics


def _keep_preview(state: TrainState, x: Tensor, x_hat: Tensor, n_obs: int) -> None:
    every = state.cfg.train.image_every
    if every > 0 and state.dist.is_main and (state.step + 1) % every == 0:
        state.preview = (x[0].detach().cpu(), x_hat[0].detach().cpu(), n_obs)


def preview_image(x: Tensor, x_hat: Tensor, n_obs: int) -> Tensor:
    """Rows: input clip, output clip; predicted (dropped) frames carry a red top bar.

    x, x_hat: (3, T, H, W) in [-1, 1] -> (3, 2H, T'W) in [0, 1].
    """
    out = x_hat.clamp(-1, 1).clone()
    bar = max(out.shape[2] // 16, 1)
    out[:, n_obs:, :bar] = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1, 1)
    return frame_strip([x, out])


# ---------------------------------------------------------------------------- the recipe
class VAERecipe(Recipe):
    """The VAE stages for :func:`pvvae.training.engine.run`: the state of
    :func:`~pvvae.training.state.build_state`, the multi-resolution loader, :func:`train_step`,
    previews, the unreadable-file bookkeeping and, for a diffusers VAE, the final export."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg, self.dataset = cfg, None

    def validate(self) -> None:
        validate(self.cfg)

    def build_state(self, info: distributed.DistInfo) -> TrainState:
        return build_state(self.cfg, info)

    def batches(self, state: TrainState):
        cfg, info = self.cfg, state.dist
        self.dataset = build_training_dataset(cfg.data, cfg.train.seed)
        self.dataset.mark_skipped(state.skipped_files)  # a resumed run does not retry them
        return make_loader(self.dataset, cfg.data, cfg.train.seed, info.rank, info.world_size,
                           state.step, state.data_position, pin_memory=info.device.type == "cuda")

    def train_step(self, state: TrainState, batch: dict[str, Any]) -> dict[str, float]:
        return train_step(state, batch)

    def log_record(self, state: TrainState, window: list[dict[str, float]]) -> dict[str, float]:
        return {**window[-1], "data/skipped_files": len(self._update_skipped(state))}

    def postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{metrics['loss/total']:.4f}", "k": metrics["step/k"]}

    def after_step(self, state: TrainState, log: RunLogger) -> None:
        if state.preview is not None:
            log.image(state.step, "samples/input_output", preview_image(*state.preview))
            state.preview = None

    def before_save(self, state: TrainState) -> None:
        self._update_skipped(state)

    def _update_skipped(self, state: TrainState) -> list[str]:
        """Set ``state.skipped_files`` to the unreadable files found so far over all ranks
        (collective; sorted) and log the new ones by name. Saved in the training state, so a
        resumed run neither retries nor forgets them. Returns the list."""
        paths = [str(p) for p in getattr(self.dataset, "skipped_paths", [])]
        found = sorted(
            set().union(state.skipped_files, *distributed.all_gather_object(paths, state.dist))
        )
        new = [p for p in found if p not in set(state.skipped_files)]
        if new and state.dist.is_main:
            logger.warning("%d unreadable file(s) skipped so far; new: %s", len(found),
                           ", ".join(new))
        state.skipped_files = found
        return found

    def finish(self, state: TrainState, run_dir: Path) -> None:
        if self.cfg.model.diffusers_target is not None and state.dist.is_main:
            _export_final(run_dir)

    def describe(self, state: TrainState) -> str:
        cfg = self.cfg
        parts = {"lpips": state.lpips is not None, "gan": state.discriminator is not None,
                 "ema": state.ema is not None}
        return f"stage {cfg.train.stage}, {_model_description(cfg)}, {json.dumps(parts)}"


def train(cfg: ExperimentConfig) -> Path:
    """Run ``cfg`` to ``cfg.train.steps`` steps. Returns the run folder ``out_dir/name``.

    Single process, or one rank of a torchrun job. With ``cfg.train.resume`` the run
    continues from its latest checkpoint (a fresh start when there is none).
    """
    return run(VAERecipe(cfg))


def _export_final(run_dir: Path) -> Path | None:
    """A fine-tuned diffusers VAE is also written as ``run_dir/diffusers`` (EMA weights
    when kept), the folder diffusers pipelines load; None when the run saved no checkpoint."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return None
    folder = export_diffusers(checkpoint, run_dir / DIFFUSERS_DIR)
    logger.info("exported %s as a diffusers folder %s", checkpoint.name, folder)
    return folder


def _model_description(cfg: ExperimentConfig) -> str:
    target = cfg.model.diffusers_target
    if target is None:
        return f"{cfg.model.preset} preset"
    new = target.startswith("new:")
    return f"{cfg.model.source}" + (f" ({cfg.model.preset} preset)" if new else "")
