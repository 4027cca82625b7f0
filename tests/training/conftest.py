"""Shared helpers of the training tests: micro configs (seconds per run) and run readers.

Every test runs with one intra-op thread: on a 2-core machine shared with other jobs, two
OpenMP threads per process are slower (spinning barriers) and make timings erratic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pvvae.config import load_config
from pvvae.training.config import ExperimentConfig

REPO = Path(__file__).resolve().parents[2]
# The MICRO model of tests/conftest.py on 9x32x32 synthetic clips (deep path only, like
# `paper`; with the patch shortcut on, DDP and FSDP2 agree to 6e-7 after 3 steps too).
MICRO_MODEL = (
    "model.overrides={latent_channels: 8, encoder_channels: [8, 8, 16, 16, 16], "
    "decoder_channels: [8, 8, 16, 16, 16], patch_shortcut: false}"
)
MICRO = [
    MICRO_MODEL,
    "data.num_frames=9",
    "data.size=32",
    "data.batch_size=2",
    "data.num_clips=64",
    "optim.lr=2.0e-3",
    "optim.warmup_steps=2",
    "train.progress=false",
    "train.log_every=1",
    "train.ckpt_every=1000",
]


def micro_config(out_dir: Path, *overrides: str) -> ExperimentConfig:
    """The micro config writing runs under ``out_dir``, with extra ``key=value`` overrides."""
    return load_config(ExperimentConfig, None, [*MICRO, f"train.out_dir={out_dir}", *overrides])


def read_log(run_dir: Path) -> list[dict]:
    """The JSON lines of a run."""
    return [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]


def subprocess_env() -> dict[str, str]:
    """Environment for ``python -m pvvae`` children: one thread, the package importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def pvvae_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pvvae", *args]


def run_pvvae(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m pvvae ARGS`` to completion; fails the test with its output on error."""
    proc = subprocess.run(
        pvvae_command(*args),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def free_port() -> int:
    """A TCP port free on localhost (for a gloo process group)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_gloo_group(rank: int, world: int, port: int):
    """In a spawned test process: torchrun's environment for ``rank``, one thread, and
    :func:`pvvae.training.distributed.setup` on the CPU (gloo). Returns its ``DistInfo``."""
    import torch

    from pvvae.training import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    return distributed.setup("cpu")


def run_on_two_ranks(worker, out_dir) -> dict:
    """Run ``worker(info, out_dir) -> dict`` on two gloo ranks (``torch.multiprocessing``);
    returns the main rank's dict. ``worker`` must be a module-level function."""
    import torch
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, args=(worker, free_port(), str(out_dir)), nprocs=2, join=True)
    return torch.load(Path(out_dir) / "results.pt", weights_only=False)


def _rank_main(rank: int, worker, port: int, out_dir: str) -> None:
    import torch

    from pvvae.training import distributed

    info = join_gloo_group(rank, 2, port)
    try:
        results = worker(info, out_dir)
        if info.is_main:
            torch.save(results, Path(out_dir) / "results.pt")
        distributed.barrier(info)
    finally:
        distributed.teardown(info)
