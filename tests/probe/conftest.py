"""Fixtures of the probing tests: the micro VAE (t4s16, 8 latent channels) and a tiny Latte."""

from __future__ import annotations

import pytest
import torch

from pvvae.gen.latte import Latte
from tests.conftest import make_micro_vae


def make_latte(num_classes: int = 4, seed: int = 0) -> Latte:
    """A 4-block Latte on the micro VAE's 8 channels, with non-zero adaLN (so blocks act)."""
    torch.manual_seed(seed)
    latte = Latte.from_preset("tiny", in_channels=8, hidden_size=32, num_classes=num_classes)
    with torch.no_grad():
        for block in latte.blocks:
            block.adaLN_modulation[-1].weight.normal_(0, 0.02)
    return latte.eval()


@pytest.fixture
def vae_and_latte():
    return make_micro_vae(), make_latte()


@pytest.fixture(scope="session")
def latte_dir(tmp_path_factory):
    """A Latte model folder (``save_pretrained``: config.json naming a saved micro VAE, and
    weights)."""
    root = tmp_path_factory.mktemp("probe")
    make_micro_vae().save_pretrained(root / "vae")
    latte = make_latte()
    latte.register_to_config(latent_shape=[8, 2, 2, 2], classes=["a", "b", "c", "d"],
                             vae=str(root / "vae"))
    folder = root / "latte"
    latte.save_pretrained(folder)
    return folder
