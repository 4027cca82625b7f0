"""Exact resume: SIGKILL + --resume reproduces an uninterrupted run; crashes mid-write and
NaN/Inf losses never cost the last good checkpoint."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading

import pytest
import torch

import pvvae.training.checkpoint as checkpoint_module
import pvvae.training.trainer as trainer_module
from pvvae.cli.main import main
from pvvae.config import save_config
from pvvae.training.checkpoint import checkpoint_dirs, load_model, load_train_state
from pvvae.training.trainer import NonFiniteLossError, train

from .conftest import micro_config, pvvae_command, read_log, subprocess_env

# GAN with LeCam from step 2 (before the first checkpoint), LPIPS on a random subset of
# frames, EMA, two resolutions: every piece of state that resume must restore is exercised.
FULL = [
    "objective.loss.lambda_lpips=0.5",
    "objective.lpips.pretrained_backbone=false",
    "objective.lpips.net=alex",
    "objective.lpips.frames_per_clip=2",
    "objective.loss.lambda_gan=0.5",
    "objective.gan.start_step=2",
    "objective.gan.lecam_weight=0.01",
    "objective.gan.channels=8",
    "train.ema=true",
    "train.ema_decay=0.9",
    "data.batch_sizes={32: 2, 48: 1}",
    "train.steps=8",
    "train.ckpt_every=3",
    "train.keep_last=5",
]


def _losses(run_dir) -> list[tuple[int, float, float]]:
    return [
        (r["step"], r["loss/total"], r.get("loss/discriminator", 0.0)) for r in read_log(run_dir)
    ]


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tmp_path):
    reference = micro_config(tmp_path, "name=reference", *FULL)
    killed = micro_config(tmp_path, "name=killed", *FULL)
    save_config(killed, tmp_path / "killed.yaml")

    # The interrupted run, in a child process killed with SIGKILL as soon as its first
    # checkpoint is written (a watcher thread reads its log; no sleeping) ...
    proc = subprocess.Popen(
        pvvae_command("train", str(tmp_path / "killed.yaml")),
        env=subprocess_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    watcher = threading.Thread(target=_kill_after_first_checkpoint, args=(proc,))
    watcher.start()
    train(reference)  # ... while the uninterrupted run trains here
    watcher.join(timeout=120)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert [d.name for d in checkpoint_dirs(tmp_path / "killed")] == ["step-0000003"]

    assert main(["train", str(tmp_path / "killed.yaml"), "--resume"]) == 0

    expected, resumed = _losses(tmp_path / "reference"), _losses(tmp_path / "killed")
    assert [s for s, *_ in resumed] == list(range(1, 9))  # no step logged twice or missing
    assert resumed == expected  # bit-identical losses, generator and discriminator
    ref_state = load_train_state(checkpoint_dirs(tmp_path / "reference")[-1])
    res_state = load_train_state(checkpoint_dirs(tmp_path / "killed")[-1])
    assert res_state["lecam_anchors"] == ref_state["lecam_anchors"]
    assert res_state["data_position"] == ref_state["data_position"]
    for use_ema in (False, True):
        a = load_model(tmp_path / "reference", use_ema=use_ema).state_dict()
        b = load_model(tmp_path / "killed", use_ema=use_ema).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def _kill_after_first_checkpoint(proc: subprocess.Popen) -> None:
    for line in proc.stderr:
        if "saved checkpoint" in line:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.stderr.read()  # drain until the pipe closes


def test_crash_during_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    cfg = micro_config(
        tmp_path, "name=crash", "train.steps=4", "train.ckpt_every=2", "train.ema=true"
    )
    real_save = checkpoint_module.torch.save

    def crash_on_second(obj, path, *args, **kwargs):
        if "step-0000004" in str(path):
            raise OSError("simulated crash inside the checkpoint write")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", crash_on_second)
    with pytest.raises(OSError, match="simulated crash"):
        train(cfg)
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)
    run_dir = tmp_path / "crash"
    assert [d.name for d in checkpoint_dirs(run_dir)] == ["step-0000002"]
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers, "the half-written checkpoint should be a hidden temporary folder"

    cfg.train.resume = True
    train(cfg)  # resumes from step 2, cleans up the temporary folder
    assert [d.name for d in checkpoint_dirs(run_dir)] == ["step-0000002", "step-0000004"]
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    assert [r["step"] for r in read_log(run_dir)] == [1, 2, 3, 4]


def _nan_on_calls(monkeypatch, bad) -> None:
    """Make the VAE loss NaN on the calls (1-based) for which ``bad(call)`` holds."""
    real_compose = trainer_module.compose_loss
    calls = {"n": 0}

    def compose(terms, weights):
        calls["n"] += 1
        loss = real_compose(terms, weights)
        return loss * float("nan") if bad(calls["n"]) else loss

    monkeypatch.setattr(trainer_module, "compose_loss", compose)


def test_nonfinite_steps_are_skipped_counted_then_stop_the_run(tmp_path, monkeypatch):
    _nan_on_calls(monkeypatch, lambda n: n == 2 or n >= 4)
    cfg = micro_config(
        tmp_path, "name=nan", "train.steps=20", "train.ckpt_every=1", "train.max_nonfinite=3"
    )
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps") as err:
        train(cfg)
    run_dir = tmp_path / "nan"
    log = read_log(run_dir)
    assert [r["step/skipped"] for r in log] == [0, 1, 0, 1, 1, 1]
    assert log[-1]["nonfinite/skipped_steps"] == 4
    # no checkpoint while NaN steps run: the last one (step 3) holds the last good weights
    assert checkpoint_dirs(run_dir)[-1].name == "step-0000003"
    assert "step-0000003" in str(err.value)
    weights = load_model(run_dir).state_dict()
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_run_ending_inside_a_nan_streak_is_an_error(tmp_path, monkeypatch):
    _nan_on_calls(monkeypatch, lambda n: n == 4)  # the last step
    cfg = micro_config(tmp_path, "name=end", "train.steps=4", "train.ckpt_every=1")
    with pytest.raises(NonFiniteLossError, match="ended"):
        train(cfg)  # before: exit 0 with no final checkpoint and no warning
    assert checkpoint_dirs(tmp_path / "end")[-1].name == "step-0000003"


def test_lr_schedule_follows_the_step_counter_through_skipped_steps(tmp_path, monkeypatch):
    clean = [
        r["lr/vae"] for r in read_log(train(micro_config(tmp_path, "name=a", "train.steps=5")))
    ]
    _nan_on_calls(monkeypatch, lambda n: n == 2)
    run = train(micro_config(tmp_path, "name=b", "train.steps=5"))
    assert [r["step/skipped"] for r in read_log(run)] == [0, 1, 0, 0, 0]
    assert [r["lr/vae"] for r in read_log(run)] == clean  # before: lagged one step from step 3


def test_resume_with_other_train_steps_warns_about_the_lr_jump(tmp_path, caplog):
    train(micro_config(tmp_path, "name=s", "train.steps=3", "train.ckpt_every=3"))
    with caplog.at_level(logging.WARNING, logger="pvvae.training.state"):
        train(micro_config(tmp_path, "name=s", "train.steps=6", "train.resume=true"))
    (message,) = [r.getMessage() for r in caplog.records if "train.steps changed" in r.getMessage()]
    assert "from 3 to 6" in message and "at step 3" in message
