"""Shared fixtures: a micro PV-VAE (tens of thousands of parameters) for fast tests."""

from __future__ import annotations

import pytest
import torch

from pvvae import PVVAE, TransformerPVVAE

MICRO = dict(
    latent_channels=8,
    encoder_channels=(8, 8, 16, 16, 16),
    encoder_layers=(1, 1, 1, 1, 1),
    decoder_channels=(8, 8, 16, 16, 16),
    decoder_layers=(1, 1, 1, 1, 1),
)


def make_micro_vae(seed: int = 0, **overrides) -> PVVAE:
    """A randomly initialised t4s16 model small enough for sub-second tests."""
    torch.manual_seed(seed)
    return PVVAE(**{**MICRO, **overrides}).eval()


MICRO_TRANSFORMER = dict(
    latent_channels=8, num_heads=2, head_dim=8, encoder_layers=2, decoder_layers=2
)


def make_micro_transformer(seed: int = 0, **overrides) -> TransformerPVVAE:
    """A randomly initialised PV-VAE* (Transformer, t4s16c8) for sub-second tests."""
    torch.manual_seed(seed)
    return TransformerPVVAE(**{**MICRO_TRANSFORMER, **overrides}).eval()


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs with one intra-op thread (restored afterwards). The tensors here are
    tiny: extra threads only spin, and on a busy 2-core machine that made steps 10-30x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def micro_vae() -> PVVAE:
    return make_micro_vae()


def random_video(b: int, t: int, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """Uniform pixels in [-1, 1], shape (b, 3, t, h, w)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, h, w, generator=g) * 2 - 1


def one_error_line(capsys, *expected: str) -> str:
    """The single ``error:`` line on stderr (no traceback), containing every ``expected``."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert "Traceback" not in err and len(lines) == 1, err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
