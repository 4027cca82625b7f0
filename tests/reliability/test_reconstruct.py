"""Hostile inputs of ``pvvae reconstruct`` (issue 13): damaged but decodable files give a
video of all their decodable frames; undecodable or blocking ones are one line naming them."""

from __future__ import annotations

import os

import pytest

from pvvae.cli.main import main
from pvvae.data.video_io import read_video
from tests.conftest import make_micro_vae
from tests.hostile_files import lying_header_avi, size_change_video, truncated_mp4


@pytest.fixture
def model_dir(tmp_path):
    make_micro_vae().save_pretrained(tmp_path / "model")
    return tmp_path / "model"


@pytest.mark.parametrize(
    "make, suffix, frames",
    [(size_change_video, "mkv", 20), (truncated_mp4, "mp4", 21), (lying_header_avi, "avi", 17)],
    ids=["size-change", "truncated", "header-lies"],
)
def test_damaged_but_decodable_input_is_reconstructed(tmp_path, model_dir, make, suffix, frames):
    source = make(tmp_path / f"in ünï.{suffix}")
    out = tmp_path / "rec.mp4"
    # was, for the size change: "all input arrays must have the same shape"
    assert main(["reconstruct", str(model_dir), str(source), str(out), "--size", "32"]) == 0
    assert read_video(out).shape[0] >= frames - 3  # the model keeps 1 + 4k frames


@pytest.mark.parametrize("kind", ["zero-bytes", "pipe", "missing"])
def test_unreadable_input_is_one_line(tmp_path, model_dir, capsys, kind):
    source = tmp_path / "in.mp4"
    if kind == "zero-bytes":
        source.write_bytes(b"")
    elif kind == "pipe":
        os.mkfifo(source)  # before: blocked forever in open()
    args = ["reconstruct", str(model_dir), str(source), str(tmp_path / "o.mp4"), "--size", "32"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1 and str(source) in err
