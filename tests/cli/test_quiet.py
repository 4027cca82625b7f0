"""Quiet by default: a CLI run's stderr holds our progress bar and nothing else."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest

from pvvae.cli.main import KNOWN_NOISE, quiet_third_party
from pvvae.data.samples import sample_video_path
from tests.conftest import make_micro_vae


def _non_progress(stderr: str, verb: str) -> str:
    """stderr without the tqdm bar of ``verb`` (redrawn with carriage returns)."""
    return re.sub(rf"{verb}:[^\r\n]*", "", stderr).replace("\r", "").strip()


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_reconstruct_prints_only_progress_and_result(tmp_path, dtype):
    make_micro_vae().save_pretrained(tmp_path / "model")
    out = tmp_path / "rec.mp4"
    command = [sys.executable, "-m", "pvvae", "reconstruct", str(tmp_path / "model"),
               str(sample_video_path("bikes")), str(out), "--size", "32", "--max-frames", "5",
               "--dtype", dtype]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "reconstruct:" in done.stderr  # the progress bar
    assert _non_progress(done.stderr, "reconstruct") == ""
    assert done.stdout.startswith(f"{out}: 5 frames, PSNR ")


@pytest.mark.parametrize(("name", "prefix"), KNOWN_NOISE)
def test_known_noise_is_dropped_unless_verbose(name, prefix):
    logger = logging.getLogger(name)
    record = logger.makeRecord(name, logging.WARNING, __file__, 1, prefix + " ...", (), None)
    try:
        quiet_third_party(verbose=False)
        assert not logger.filter(record)
        other = logger.makeRecord(name, logging.WARNING, __file__, 1, "other news", (), None)
        assert logger.filter(other)
        quiet_third_party(verbose=True)
        assert logger.filter(record)
    finally:
        quiet_third_party(verbose=True)  # leave the logger as found
