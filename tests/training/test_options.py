"""Scale-out options on one process: gradient checkpointing changes no number, bf16
autocast trains, and the state-dict names stay those of the plain model."""

from __future__ import annotations

import torch

from pvvae.training.distributed import DistInfo
from pvvae.training.state import build_state
from pvvae.training.trainer import train_step

from .conftest import micro_config


def _steps(cfg, n=2):
    state = build_state(cfg, DistInfo())
    g = torch.Generator().manual_seed(0)
    batch = {"video": torch.rand(2, 3, 9, 32, 32, generator=g) * 2 - 1}
    return state, [train_step(state, batch, k=k) for k in (1, 0)[:n]]


def test_gradient_checkpointing_gives_the_same_training(tmp_path):
    plain_state, plain = _steps(micro_config(tmp_path))
    ckpt_state, ckpt = _steps(micro_config(tmp_path, "train.gradient_checkpointing=true"))
    wrapped = [m for m in ckpt_state.vae.modules() if type(m).__name__ == "CheckpointWrapper"]
    assert wrapped, "no block was wrapped for activation checkpointing"
    for a, b in zip(plain, ckpt):
        assert a["loss/total"] == b["loss/total"]
        assert abs(a["grad_norm/vae"] / b["grad_norm/vae"] - 1) < 1e-5
    assert ckpt_state.vae.state_dict().keys() == plain_state.vae.state_dict().keys()


def test_bf16_autocast_trains(tmp_path):
    _, history = _steps(micro_config(tmp_path, "train.precision=bf16"))
    assert all(torch.isfinite(torch.tensor(m["loss/total"])) for m in history)
    assert all(m["step/skipped"] == 0 for m in history)
