"""Two-process gloo runs: DDP keeps ranks identical on different data, FSDP2 matches DDP,
and ``torchrun -m pvvae train`` matches a single process over the same global batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from pvvae.config import save_config
from pvvae.training import distributed
from pvvae.training.checkpoint import checkpoint_dirs, load_model, load_train_state
from pvvae.training.data import build_training_dataset, make_loader
from pvvae.training.engine import restore
from pvvae.training.state import build_model, build_state
from pvvae.training.trainer import save, train, train_step

from .conftest import (
    REPO,
    free_port,
    micro_config,
    read_log,
    run_on_two_ranks,
    subprocess_env,
)

# GAN from step 1 (adaptive weight, LeCam), EMA, two resolutions: all state is distributed.
DIST = [
    "train.device=cpu",
    "data.batch_sizes={32: 2, 48: 1}",
    "objective.loss.lambda_gan=0.5",
    "objective.gan.start_step=1",
    "objective.gan.lecam_weight=0.01",
    "objective.gan.channels=8",
    "train.ema=true",
    "train.ema_decay=0.5",
    "train.steps=3",
]


def _run_parallel(cfg, info, steps: int):
    """``steps`` training steps; returns the state and this rank's first batch."""
    state = build_state(cfg, info)
    dataset = build_training_dataset(cfg.data, cfg.train.seed)
    loader = iter(make_loader(dataset, cfg.data, cfg.train.seed, info.rank, info.world_size))
    first = None
    for _ in range(steps):
        batch = next(loader)
        first = batch["video"] if first is None else first
        train_step(state, batch)
    return state, first


def _worker(info, out_dir: str) -> dict:
    results = {}
    for mode in ("ddp", "fsdp"):
        cfg = micro_config(out_dir, f"name={mode}", f"train.parallel={mode}", *DIST)
        state, first = _run_parallel(cfg, info, steps=3)
        vae = distributed.full_state_dict(state.vae.state_dict())
        disc = distributed.full_state_dict(state.discriminator.state_dict())
        flat = torch.cat([v.flatten().double() for v in [*vae.values(), *disc.values()]])
        results[mode] = {
            "params": distributed.all_gather_object(flat, info),
            "first_batch": distributed.all_gather_object(first, info),
            "step": state.step,
        }
        save(state, Path(out_dir) / mode)
    # FSDP resume: a fresh sharded state restores the gathered checkpoint and steps on
    cfg = micro_config(out_dir, "name=fsdp", "train.parallel=fsdp", *DIST)
    fresh = build_state(cfg, info)
    restore(fresh, checkpoint_dirs(os.path.join(out_dir, "fsdp"))[-1])
    loader = make_loader(
        build_training_dataset(cfg.data, 0),
        cfg.data,
        0,
        info.rank,
        info.world_size,
        fresh.step,
        fresh.data_position,
    )
    results["fsdp_resumed_loss"] = train_step(fresh, next(iter(loader)))["loss/total"]
    return results


def test_ddp_and_fsdp_on_two_gloo_processes(tmp_path):
    results = run_on_two_ranks(_worker, tmp_path)
    ddp, fsdp = results["ddp"], results["fsdp"]
    # DDP: every rank holds the same weights after the steps, trained on different clips
    assert torch.equal(ddp["params"][0], ddp["params"][1])
    assert not torch.equal(ddp["first_batch"][0], ddp["first_batch"][1])
    assert torch.equal(fsdp["first_batch"][0], ddp["first_batch"][0])  # same data order
    # FSDP2 is the same data-parallel optimisation: same weights up to float rounding
    # (atol: a different reduction order moves a handful of zero-initialised biases, whose
    # gradients are ~0, by a fraction of one Adam step; measured 1.7e-5 for lr 2e-3)
    assert torch.allclose(fsdp["params"][0], ddp["params"][0], rtol=1e-4, atol=1e-4)
    assert ddp["step"] == fsdp["step"] == 3
    assert torch.isfinite(torch.tensor(results["fsdp_resumed_loss"]))
    # rank 0 wrote full (unsharded) checkpoints that load in a single process
    for mode in ("ddp", "fsdp"):
        folder = checkpoint_dirs(tmp_path / mode)[-1]
        assert load_train_state(folder)["world_size"] == 2
        model = load_model(folder, use_ema=False)
        assert sum(p.numel() for p in model.parameters()) > 0


def test_torchrun_matches_a_single_process_over_the_same_global_batches(tmp_path):
    """W = 2 ranks of batch 1 and one process of batch 2 see the same clips per step: with
    deterministic latents (posterior mean) the weights agree up to float rounding."""
    common = [
        "train.device=cpu",
        "objective.sample_posterior=false",
        "train.steps=3",
        "data.num_frames=5",
    ]
    ddp = micro_config(tmp_path, "name=ddp", "data.batch_size=1", *common)
    save_config(ddp, tmp_path / "ddp.yaml")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(free_port()),
        "-m",
        "pvvae",
        "train",
        str(tmp_path / "ddp.yaml"),
    ]
    proc = subprocess.Popen(
        cmd,
        env=subprocess_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    train(micro_config(tmp_path, "name=single", "data.batch_size=2", *common))  # meanwhile
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    ddp_log, single_log = read_log(tmp_path / "ddp"), read_log(tmp_path / "single")
    assert [r["step"] for r in ddp_log] == [1, 2, 3]  # rank 0 logs, once per step
    # the norm of the all-reduced gradient equals that of the single process's batch of 2
    for r_ddp, r_single in zip(ddp_log, single_log):
        assert abs(r_ddp["grad_norm/vae"] / r_single["grad_norm/vae"] - 1) < 1e-4
    a = load_model(tmp_path / "ddp").state_dict()
    b = load_model(tmp_path / "single").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=5e-4) for k in a)
    torch.manual_seed(0)
    initial = build_model(ddp).state_dict()
    assert sum(not torch.allclose(initial[k], b[k], atol=5e-4) for k in b) > 10  # trained
