"""The training loop of ``pvvae train`` (seed sections 3.1, 3.2 and 4.1).

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
during such a streak, so the last one holds good weights; :mod:`pvvae.training.guards`). The
loop (:func:`train`) runs alone or under torchrun (see :mod:`pvvae.training.distributed`),
logs on rank 0 and writes atomic checkpoints; with ``train.resume`` it continues exactly
from the latest one.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pvvae.config import save_config
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
from pvvae.training import distributed, parallel, seeding
from pvvae.training.checkpoint import export_diffusers, latest_checkpoint, save_checkpoint
from pvvae.training.config import ExperimentConfig, validate
from pvvae.training.data import build_training_dataset, make_loader
from pvvae.training.distributed import resolve_device  # noqa: F401 (public re-export)
from pvvae.training.guards import NonFiniteLossError, check_nonfinite  # noqa: F401 (re-export)
from pvvae.training.monitor import RunLogger, frame_strip, peak_memory_gib
from pvvae.training.precision import WHOLE_MODEL, BF16StepFailed, nonfinite_modules
from pvvae.training.state import (  # noqa: F401 (build_model: public re-export)
    TrainState,
    build_model,
    build_state,
    checkpoint_payload,
    drop_ratio,
    gan_active,
    restore,
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


def _apply_update(
    state: TrainState, loss: Tensor, optimizer, scheduler, owner: torch.nn.Module | None = None
) -> float | None:
    """Backward and a clipped optimizer step on all ranks; None (nothing done) when the loss
    or the gradient norm is not finite on some rank.

    ``owner``: the model behind ``optimizer`` when a bf16 failure may be retried in fp32;
    then a finite loss with a non-finite gradient under bf16 raises
    :class:`~pvvae.training.precision.BF16StepFailed` before anything is updated.
    """
    if not distributed.all_true(bool(torch.isfinite(loss.detach())), state.dist):
        if owner is not None and state.precision.active:
            raise BF16StepFailed([WHOLE_MODEL])
        _advance(scheduler)
        return None
    params = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads)
    norm = parallel.to_float(total)
    if math.isfinite(norm):  # identical on all ranks: computed from reduced gradients
        torch.nn.utils.clip_grads_with_norm_(params, state.cfg.optim.grad_clip, total)
        optimizer.step()
    else:
        retry = owner is not None and state.precision.active
        # read before zero_grad: the gradients are not clipped, so only the failing ones are bad
        failing = _union(nonfinite_modules(owner), state.dist) if retry else []
        optimizer.zero_grad(set_to_none=True)
        if retry:
            raise BF16StepFailed(failing or [WHOLE_MODEL])
    _advance(scheduler)
    return norm if math.isfinite(norm) else None


def _advance(scheduler) -> None:
    """One schedule step: it follows the step counter, skipped steps included (so a skipped
    first step deliberately steps it before any optimizer step; PyTorch's warning about
    that order is silenced here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
        scheduler.step()


def _union(names: list[str], info: distributed.DistInfo) -> list[str]:
    """The sorted union of every rank's ``names`` (collective)."""
    return sorted(set().union(*distributed.all_gather_object(names, info)))


def generator_step(state: TrainState, x: Tensor, k: int, gan_on: bool) -> tuple[dict, Tensor]:
    """The VAE update of Eq. 1 on clips x (B, 3, 1 + T, H, W). Returns (metrics, x_hat).

    A bf16 step with a finite loss and a non-finite gradient is recomputed in fp32; when that
    is finite, the failing modules stay in fp32 (:mod:`pvvae.training.precision`).
    """
    try:
        return _generator_step(state, x, k, gan_on, retry=True)
    except BF16StepFailed as failed:
        with state.precision.fp32():
            metrics, x_hat = _generator_step(state, x, k, gan_on, retry=False)
        if not metrics["step/skipped"]:
            state.precision.pin(failed.modules, state.step, state.dist.device)
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
    norm = _apply_update(state, loss, state.optimizer, state.scheduler, owner)
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
    norm = _apply_update(state, loss, state.disc_optimizer, state.disc_scheduler)
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
    if not metrics["step/skipped"] and state.ema is not None:
        state.ema.update(state.vae)
    if metrics["step/skipped"] or metrics.get("step/disc_skipped", 0):
        state.nonfinite_total += 1
        state.nonfinite_consecutive += 1
    else:
        state.nonfinite_consecutive = 0
    metrics["nonfinite/skipped_steps"] = state.nonfinite_total
    metrics["precision/fp32_modules"] = len(state.precision.pinned)
    metrics["data/resolution"] = x.shape[-1]
    metrics["lr/vae"] = lr
    state.step += 1
    state.data_position += state.dist.world_size * x.shape[0]
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


# ---------------------------------------------------------------------------- the loop
def train(cfg: ExperimentConfig) -> Path:
    """Run ``cfg`` to ``cfg.train.steps`` steps. Returns the run folder ``out_dir/name``.

    Single process, or one rank of a torchrun job. With ``cfg.train.resume`` the run
    continues from its latest checkpoint (a fresh start when there is none).
    """
    validate(cfg)
    info = distributed.setup(cfg.train.device)
    try:
        return _train(cfg, info)
    finally:
        distributed.teardown(info)


def _train(cfg: ExperimentConfig, info: distributed.DistInfo) -> Path:
    run_dir = Path(cfg.train.out_dir) / cfg.name
    resume_from = _prepare_run_dir(run_dir, cfg, info)
    state = build_state(cfg, info)
    if resume_from is not None:
        restore(state, resume_from)
        if info.is_main:
            logger.info("resumed %s at step %d", resume_from, state.step)
    if info.is_main:
        _log_summary(state)
    if state.step >= cfg.train.steps:
        return run_dir
    dataset = build_training_dataset(cfg.data, cfg.train.seed)
    dataset.mark_skipped(state.skipped_files)  # a resumed run does not retry them
    loader = make_loader(
        dataset,
        cfg.data,
        cfg.train.seed,
        info.rank,
        info.world_size,
        state.step,
        state.data_position,
        pin_memory=info.device.type == "cuda",
    )
    log = RunLogger(
        run_dir,
        info.is_main,
        cfg.train.steps,
        state.step,
        cfg.train.tensorboard,
        cfg.train.progress,
        cfg.name,
    )
    try:
        _loop(state, loader, dataset, log, run_dir)
    finally:
        log.close()
    if cfg.model.diffusers_target is not None and info.is_main:
        _export_final(run_dir)
    return run_dir


def _export_final(run_dir: Path) -> Path | None:
    """A fine-tuned diffusers VAE is also written as ``run_dir/diffusers`` (EMA weights
    when kept), the folder diffusers pipelines load; None when the run saved no checkpoint."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return None
    folder = export_diffusers(checkpoint, run_dir / DIFFUSERS_DIR)
    logger.info("exported %s as a diffusers folder %s", checkpoint.name, folder)
    return folder


def _loop(state: TrainState, loader, dataset, log: RunLogger, run_dir: Path) -> None:
    cfg, info = state.cfg, state.dist
    tick, tick_step, samples = time.perf_counter(), state.step, 0
    for batch in loader:
        metrics = train_step(state, batch)
        samples += info.world_size * batch["video"].shape[0]
        step = state.step
        log.progress(1, loss=f"{metrics['loss/total']:.4f}", k=metrics["step/k"])
        if step % cfg.train.log_every == 0 or step == cfg.train.steps:
            elapsed = max(time.perf_counter() - tick, 1e-9)
            metrics["perf/steps_per_s"] = (step - tick_step) / elapsed
            metrics["perf/samples_per_s"] = samples / elapsed
            metrics["perf/peak_memory_gib"] = peak_memory_gib(info.device)
            metrics["data/skipped_files"] = len(_update_skipped(state, dataset))
            log.scalars(step, metrics)
            tick, tick_step, samples = time.perf_counter(), step, 0
        if state.preview is not None:
            log.image(step, "samples/input_output", preview_image(*state.preview))
            state.preview = None
        _check_nonfinite(state, run_dir)
        due = step % cfg.train.ckpt_every == 0 or step == cfg.train.steps
        if due and state.nonfinite_consecutive == 0:
            _update_skipped(state, dataset)
            save(state, run_dir)
        if step >= cfg.train.steps:
            break


def save(state: TrainState, run_dir: Path) -> Path | None:
    """Write a checkpoint of ``state`` (collective; rank 0 writes). Returns its folder."""
    payload = checkpoint_payload(state)
    folder = None
    if state.dist.is_main:
        folder = save_checkpoint(
            run_dir, state.step, state.vae, keep_last=state.cfg.train.keep_last, **payload
        )
        logger.info("saved checkpoint %s", folder)
    distributed.barrier(state.dist)
    return folder


def _check_nonfinite(state: TrainState, run_dir: Path) -> None:
    check_nonfinite(
        state.nonfinite_consecutive,
        state.nonfinite_total,
        state.cfg.train.max_nonfinite,
        state.step,
        state.step >= state.cfg.train.steps,
        run_dir,
    )


def _update_skipped(state: TrainState, dataset) -> list[str]:
    """Set ``state.skipped_files`` to the unreadable files found so far over all ranks
    (collective; sorted) and log the new ones by name. Saved in the training state, so a
    resumed run neither retries nor forgets them. Returns the list."""
    paths = [str(p) for p in getattr(dataset, "skipped_paths", [])]
    found = sorted(
        set().union(state.skipped_files, *distributed.all_gather_object(paths, state.dist))
    )
    new = [p for p in found if p not in set(state.skipped_files)]
    if new and state.dist.is_main:
        logger.warning("%d unreadable file(s) skipped so far; new: %s", len(found), ", ".join(new))
    state.skipped_files = found
    return found


def _prepare_run_dir(run_dir: Path, cfg: ExperimentConfig, info) -> Path | None:
    """Create the run folder, save the config; returns the checkpoint to resume or None.

    A fresh run into a folder that already holds a run moves the old checkpoints, log and
    TensorBoard events aside to ``superseded-<time>/`` (nothing is deleted).
    """
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (cfg.train.resume and latest_checkpoint(run_dir) is not None):
            _supersede(run_dir)
        save_config(cfg, run_dir / "config.yaml")
    distributed.barrier(info)
    return latest_checkpoint(run_dir) if cfg.train.resume else None


def _supersede(run_dir: Path) -> None:
    names = ("checkpoints", "log.jsonl", "tb", DIFFUSERS_DIR)
    old = [run_dir / name for name in names if (run_dir / name).exists()]
    if not old:
        return
    dest = run_dir / time.strftime("superseded-%Y%m%d-%H%M%S")
    dest.mkdir(exist_ok=True)
    for p in old:
        p.rename(dest / p.name)
    logger.warning(
        "fresh run in %s: the previous run's files moved to %s (use --resume to "
        "continue a run instead)",
        run_dir,
        dest,
    )


def _model_description(cfg: ExperimentConfig) -> str:
    target = cfg.model.diffusers_target
    if target is None:
        return f"{cfg.model.preset} preset"
    new = target.startswith("new:")
    return f"{cfg.model.source}" + (f" ({cfg.model.preset} preset)" if new else "")


def _log_summary(state: TrainState) -> None:
    total = sum(p.numel() for p in state.vae.parameters())
    trainable = sum(p.numel() for p in state.vae.parameters() if p.requires_grad)
    cfg = state.cfg
    logger.info(
        "%s: stage %s, %s (%.1fM parameters, %.1fM trained), %d rank(s) on %s, %s, %s",
        cfg.name,
        cfg.train.stage,
        _model_description(cfg),
        total / 1e6,
        trainable / 1e6,
        state.dist.world_size,
        state.dist.device.type,
        cfg.train.precision,
        json.dumps(
            {
                "lpips": state.lpips is not None,
                "gan": state.discriminator is not None,
                "ema": state.ema is not None,
            }
        ),
    )
