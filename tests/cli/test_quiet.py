"""Quiet by default: a CLI run's stderr holds our progress bar and nothing else, a Python
user's loading prints nothing, and ``-v`` shows the third-party warnings again."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest

from pvvae._warnings import KNOWN_NOISE, quiet_third_party
from pvvae.cli.main import main
from pvvae.data.samples import sample_video_path
from tests.conftest import make_micro_vae


def _non_progress(stderr: str, verb: str) -> str:
    """stderr without the tqdm bar of ``verb`` (redrawn with carriage returns)."""
    return re.sub(rf"{verb}:[^\r\n]*", "", stderr).replace("\r", "").strip()


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_reconstruct_prints_only_progress_and_result(tmp_path, dtype):
    make_micro_vae().save_pretrained(tmp_path / "model")
    out = tmp_path / "rec.mp4"
    command = [sys.executable, "-m", "pvvae", "reconstruct", str(tmp_path / "model"),
               str(sample_video_path("bikes")), str(out), "--size", "32", "--max-frames", "5",
               "--dtype", dtype]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "reconstruct:" in done.stderr  # the progress bar
    assert _non_progress(done.stderr, "reconstruct") == ""
    assert done.stdout.startswith(f"{out}: 5 frames, PSNR ")


# one message each of KNOWN_NOISE, as diffusers words it
NOISE_SAMPLES = (
    "Cannot initialize model with low cpu memory usage because `accelerate` was not found in "
    "the environment. Defaulting to `low_cpu_mem_usage=False`. ...\n```\npip install "
    "accelerate\n```\n.",
    "There are modules in PVVAE that should be kept in float32: []. Casting directly with "
    "`to()` can lead to inconsistent results; ...",
)


@pytest.mark.parametrize(("known", "message"), list(zip(KNOWN_NOISE, NOISE_SAMPLES, strict=True)))
def test_known_noise_is_dropped_unless_verbose(known, message):
    name = known[0]
    logger = logging.getLogger(name)

    def passes(text: str) -> bool:
        return logger.filter(logger.makeRecord(name, logging.WARNING, __file__, 1, text, (), None))

    try:
        quiet_third_party(verbose=False)
        assert not passes(message)
        assert passes("other news")
        # a non-empty float32 list is news: only the empty one is noise
        assert passes("There are modules in PVVAE that should be kept in float32: ['norm'].")
        quiet_third_party(verbose=True)
        assert passes(message)
    finally:
        quiet_third_party(verbose=False)  # as `import pvvae` leaves it


def test_python_loading_prints_nothing(tmp_path):
    """``PVVAE.from_pretrained``, ``pvvae.load_model`` and ``.to(bf16)`` in a fresh process:
    stderr is empty (diffusers' accelerate notice and empty float32 list are filtered by
    ``import pvvae``); after ``quiet_third_party(verbose=True)`` both come back."""
    make_micro_vae().save_pretrained(tmp_path / "model")
    script = f"""
import torch
import pvvae
from pvvae import PVVAE
vae = PVVAE.from_pretrained({str(tmp_path / "model")!r}).to(torch.bfloat16)
vae = pvvae.load_model({str(tmp_path / "model")!r}).to(torch.bfloat16)
print("loaded", flush=True)
from pvvae._warnings import quiet_third_party
quiet_third_party(verbose=True)
vae = PVVAE.from_pretrained({str(tmp_path / "model")!r}).to(torch.bfloat16)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "loaded\n"
    # all of stderr comes from the last load, after verbose=True: the two known warnings
    assert done.stderr.startswith("Cannot initialize model with low cpu memory usage")
    assert "should be kept in float32: []" in done.stderr


@pytest.mark.parametrize("flag", ["-v", "--verbose"])
def test_verbose_cli_lets_the_third_party_warnings_through(flag, capsys):
    """``-v`` anywhere on the line removes the filters (the CLI's own loading avoids both
    warnings, so this checks the wiring: the filters are off during the command)."""
    def shown() -> list[bool]:
        return [
            logging.getLogger(name).filter(
                logging.getLogger(name).makeRecord(name, logging.WARNING, __file__, 1, text, (),
                                                   None)
            )
            for (name, _), text in zip(KNOWN_NOISE, NOISE_SAMPLES, strict=True)
        ]

    try:
        for argv in ([flag, "encode"], ["encode", flag]):
            with pytest.raises(SystemExit):
                main(argv)
            assert all(shown())
        with pytest.raises(SystemExit):
            main(["encode"])
        assert not any(shown())
    finally:
        quiet_third_party(verbose=False)  # as `import pvvae` leaves it
    capsys.readouterr()
