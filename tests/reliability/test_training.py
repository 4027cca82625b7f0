"""Hostile data in ``pvvae train`` (issue 13): damaged files are skipped by name, readable
ones keep every decodable frame, and a killed run resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

import pvvae.training.engine as engine
from pvvae.training.checkpoint import checkpoint_dirs, load_train_state
from pvvae.training.trainer import train
from tests.hostile_files import hostile_video_tree
from tests.training.conftest import micro_config, read_log


def _folder_run(tmp_path: Path, name: str, *extra: str):
    return micro_config(
        tmp_path,
        f"name={name}",
        "data.kind=video_folder",
        f"data.root={tmp_path / 'data'}",
        "train.steps=6",
        "train.ckpt_every=3",
        "train.keep_last=5",
        *extra,
    )


def _trace(run_dir: Path) -> list[tuple[int, float, int]]:
    return [(r["step"], r["loss/total"], r["data/skipped_files"]) for r in read_log(run_dir)]


def test_killed_run_on_corrupt_folder_resumes_exactly(tmp_path, monkeypatch):
    files = hostile_video_tree(tmp_path / "data")  # 10 files: 12 samples see all of them
    train(_folder_run(tmp_path, "reference"))

    real_save = engine.save

    def save_then_die(state, run_dir):
        real_save(state, run_dir)
        raise KeyboardInterrupt  # the process dies right after its first checkpoint

    monkeypatch.setattr(engine, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_folder_run(tmp_path, "killed"))
    monkeypatch.undo()
    train(_folder_run(tmp_path, "killed", "train.resume=true"))

    reference, resumed = _trace(tmp_path / "reference"), _trace(tmp_path / "killed")
    assert [step for step, *_ in resumed] == list(range(1, 7))
    assert resumed == reference  # same losses and the same skipped-file count at every step
    state = load_train_state(checkpoint_dirs(tmp_path / "killed")[-1])
    assert sorted(Path(p).name for p in state["skipped_files"]) == files["unreadable"]
