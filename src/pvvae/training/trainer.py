"""The training loop of ``pvvae train`` (single process; seed sections 3.1-3.2 and 4.1).

One step: draw k (predictive reconstruction), encode the observed prefix, pad, decode the
whole clip, compose Eq. 1, take an AdamW step on the warm-up + cosine schedule. The loop
around it logs JSON lines and a progress bar and writes atomic checkpoints under
``runs/NAME/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from pvvae.config import save_config
from pvvae.model.autoencoder import PVVAE
from pvvae.objectives.losses import (
    compose_loss,
    kl_loss,
    motion_loss,
    mse_loss,
    observed_and_predicted_mse,
)
from pvvae.objectives.predictive import num_groups, predictive_reconstruction, sample_num_dropped
from pvvae.training.checkpoint import load_model, save_checkpoint
from pvvae.training.config import ExperimentConfig
from pvvae.training.data import build_dataset, make_loader
from pvvae.training.schedule import warmup_cosine


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class TrainState:
    """Everything a training step reads or updates."""

    model: PVVAE
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    cfg: ExperimentConfig
    rng_k: torch.Generator  # draws k, on the CPU
    rng_noise: torch.Generator  # posterior / padding noise, on the model's device
    step: int = 0


def build_model(cfg: ExperimentConfig) -> PVVAE:
    """The VAE of ``cfg.model``, initialised from ``init_from`` when given."""
    model = PVVAE(**cfg.model.build_kwargs())
    if cfg.model.init_from:
        source = load_model(cfg.model.init_from)
        try:
            model.load_state_dict(source.state_dict())
        except RuntimeError as e:
            raise ValueError(
                f"model.init_from={cfg.model.init_from} holds a model of another configuration "
                f"than model.preset={cfg.model.preset!r} with {cfg.model.overrides}: {e}"
            ) from e
    return model


def train_step(state: TrainState, batch: dict[str, Any]) -> dict[str, float]:
    """One optimisation step of predictive reconstruction. Returns scalar metrics."""
    model, cfg = state.model, state.cfg
    x = batch["video"].to(next(model.parameters()).device, non_blocking=True)  # (B, 3, 1+T, H, W)
    groups = num_groups(x.shape[2], model.temporal_compression)
    k = sample_num_dropped(groups, cfg.objective.max_drop_ratio, state.rng_k)
    out = predictive_reconstruction(model, x, k, cfg.objective.sample_posterior, state.rng_noise)
    terms = {
        "mse": mse_loss(out.x_hat, x),
        "diff": motion_loss(out.x_hat, x),
        "kl": kl_loss(out.posterior),
    }
    loss = compose_loss(terms, cfg.objective.loss)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
    state.optimizer.step()
    state.scheduler.step()
    state.step += 1
    metrics = {f"loss_{name}": float(v.detach()) for name, v in terms.items()}
    metrics.update(observed_and_predicted_mse(out.x_hat.detach(), x, out.num_observed_frames))
    metrics.update(loss=float(loss.detach()), grad_norm=float(grad_norm), k=k)
    return metrics


def _make_state(cfg: ExperimentConfig, device: torch.device) -> TrainState:
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg).to(device).train()
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.optim.lr,
        betas=tuple(cfg.optim.betas),
        weight_decay=cfg.optim.weight_decay,
    )
    scheduler = warmup_cosine(
        optimizer, cfg.optim.warmup_steps, cfg.train.steps, cfg.optim.min_lr_ratio
    )
    rng_k = torch.Generator().manual_seed(cfg.train.seed)
    rng_noise = torch.Generator(device).manual_seed(cfg.train.seed + 1)
    return TrainState(model, optimizer, scheduler, cfg, rng_k, rng_noise)


def train(cfg: ExperimentConfig) -> Path:
    """Run ``cfg`` to ``cfg.train.steps`` steps. Returns the run folder ``out_dir/name``."""
    device = resolve_device(cfg.train.device)
    run_dir = Path(cfg.train.out_dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    state = _make_state(cfg, device)
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    loader = make_loader(dataset, cfg.data, seed=cfg.train.seed)
    bar = tqdm(total=cfg.train.steps, desc=cfg.name, disable=not cfg.train.progress)
    with open(run_dir / "log.jsonl", "a") as log:
        start = time.perf_counter()
        for batch in loader:
            if state.step >= cfg.train.steps:
                break
            metrics = train_step(state, batch)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", k=metrics["k"])
            if state.step % cfg.train.log_every == 0 or state.step == cfg.train.steps:
                elapsed = time.perf_counter() - start
                record = {"step": state.step, "lr": state.scheduler.get_last_lr()[0], **metrics}
                record["steps_per_s"] = state.step / max(elapsed, 1e-9)
                log.write(json.dumps(record) + "\n")
                log.flush()
            if state.step % cfg.train.ckpt_every == 0 or state.step == cfg.train.steps:
                save_checkpoint(
                    run_dir, state.step, state.model, _train_state(state), cfg.train.keep_last
                )
    bar.close()
    return run_dir


def _train_state(state: TrainState) -> dict[str, Any]:
    return {
        "step": state.step,
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "rng_k": state.rng_k.get_state(),
        "rng_noise": state.rng_noise.get_state(),
        "rng_torch": torch.get_rng_state(),
    }
