"""The error boundary of ``pvvae``: every known failure is exit code 2 and one
line naming the problem and the fix; ``--debug`` shows the traceback instead."""

from __future__ import annotations

import errno

import pytest
import torch

import pvvae.training.checkpoint as checkpoint_module
import pvvae.training.trainer as trainer_module
from pvvae.cli.main import main
from pvvae.config import ConfigError
from pvvae.training.checkpoint import checkpoint_dirs
from tests.conftest import one_error_line as _one_error_line
from tests.training.conftest import MICRO


def _train(tmp_path, *args: str) -> list[str]:
    return ["train", *MICRO, f"train.out_dir={tmp_path / 'runs'}", "train.steps=1", *args]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.steps=[1", "override 'train.steps=[1': invalid YAML"),
        ("train.log_every=0", "train.log_every=0: must be >= 1"),  # was ZeroDivisionError
        ("train.ckpt_every=0", "train.ckpt_every=0: must be >= 1"),
        ("data.batch_sizes={32: 2.7}", "data.batch_sizes[32]: expected an integer"),  # was 2
        ("data.batch_sizes={x: 2}", "data.batch_sizes key 'x'"),
        ("train.stage=imag", "train.stage"),
    ],
)
def test_bad_overrides_are_one_line(tmp_path, capsys, override, expected):
    assert main(_train(tmp_path, override)) == 2
    _one_error_line(capsys, "pvvae train: error:", expected)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  steps: [3\n")
    assert main(["train", str(config)]) == 2
    _one_error_line(capsys, str(config), "invalid YAML at line")


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_without_cuda(tmp_path, capsys):
    assert main(_train(tmp_path, "train.device=cuda")) == 2
    _one_error_line(capsys, "CUDA is not available")


def test_dataset_without_a_readable_file(tmp_path, capsys):
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "a" / "empty.mp4").write_bytes(b"")
    args = _train(tmp_path, "data.kind=video_folder", f"data.root={tmp_path / 'data'}")
    assert main(args) == 2
    _one_error_line(capsys, "all 1 files", "unreadable")


def test_damaged_init_checkpoint(tmp_path, capsys):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{oops")
    assert main(_train(tmp_path, f"model.init_from={tmp_path / 'model'}")) == 2
    _one_error_line(capsys, "config.json is not a readable JSON")


def test_refused_pickle_on_resume(tmp_path, capsys):
    assert main(_train(tmp_path, "name=p", "train.ckpt_every=1")) == 0
    (checkpoint,) = checkpoint_dirs(tmp_path / "runs" / "p")
    torch.save({"step": ConfigError("not a plain value")}, checkpoint / "train_state.pt")
    capsys.readouterr()
    assert main(_train(tmp_path, "name=p", "train.steps=2", "--resume")) == 2
    _one_error_line(capsys, "train_state.pt", "safe loading refuses")


def test_disk_full_and_nan_stop_are_one_line(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", full)
    assert main(_train(tmp_path, "name=full")) == 2
    _one_error_line(capsys, "no space left on device", "--resume")
    monkeypatch.undo()

    real = trainer_module.compose_loss
    monkeypatch.setattr(trainer_module, "compose_loss", lambda t, w: real(t, w) * float("nan"))
    assert main(_train(tmp_path, "name=nan", "train.max_nonfinite=1")) == 2
    _one_error_line(capsys, "NaN/Inf", "--resume")


def test_debug_shows_the_traceback_from_any_position(tmp_path):
    with pytest.raises(ConfigError, match="log_every"):
        main([*_train(tmp_path, "train.log_every=0"), "--debug"])
