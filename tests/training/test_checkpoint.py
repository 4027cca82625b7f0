"""Checkpoint files: diffusers layout with EMA, extra safetensors, safe training state,
pruning; EMA arithmetic; usable by any module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pvvae import PVVAE
from pvvae.training.checkpoint import (
    checkpoint_dirs,
    latest_checkpoint,
    load_model,
    load_train_state,
    load_weights,
    model_folder,
    save_checkpoint,
)
from pvvae.training.ema import EMA

SMALL = dict(latent_channels=4, encoder_channels=(8, 8, 8, 8, 8), decoder_channels=(8, 8, 8, 8, 8))


def test_checkpoint_layout_ema_extras_and_pruning(tmp_path):
    torch.manual_seed(0)
    model = PVVAE(**SMALL)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)  # halfway: theta_ema = theta0 + 0.5
    disc = nn.Linear(3, 2)
    state = {"step": 7, "rng": [torch.get_rng_state()], "config": {"a": {32: 2}}}
    for step in (5, 6, 7):
        folder = save_checkpoint(
            tmp_path,
            step,
            model,
            state,
            keep_last=2,
            ema_weights=ema.state_dict(),
            extra_weights={"discriminator": disc.state_dict()},
        )
    assert [d.name for d in checkpoint_dirs(tmp_path)] == ["step-0000006", "step-0000007"]
    assert latest_checkpoint(tmp_path) == folder
    assert model_folder(tmp_path).name == "ema" and model_folder(tmp_path, False) == folder
    raw, averaged = load_model(tmp_path, use_ema=False), load_model(tmp_path)  # EMA preferred
    name = "decoder.conv_out.conv.weight"
    assert torch.equal(raw.state_dict()[name], model.state_dict()[name])
    assert torch.allclose(averaged.state_dict()[name], model.state_dict()[name] - 0.5)
    assert torch.equal(load_weights(folder, "discriminator")["weight"], disc.weight)
    assert load_weights(folder, "absent") is None
    loaded = load_train_state(folder)  # torch.load(weights_only=True)
    assert loaded["step"] == 7 and loaded["config"] == {"a": {32: 2}}
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        load_train_state(tmp_path)


def test_plain_modules_checkpoint_too(tmp_path):
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    folder = save_checkpoint(tmp_path, 1, net)  # no diffusers config: weights only
    weights = load_weights(folder, "diffusion_pytorch_model")
    assert set(weights) == set(net.state_dict())
    ema = EMA(net, 0.9)
    ema.load_state_dict(weights)
    with pytest.raises(KeyError, match="missing"):
        ema.load_state_dict({})
    with pytest.raises(ValueError, match="decay"):
        EMA(net, 1.0)


# --------------------------------------------------------- damaged model folders (issue 13)
def _saved_micro(tmp_path):
    from tests.conftest import make_micro_vae

    folder = tmp_path / "model"
    make_micro_vae().save_pretrained(folder)
    return folder


def _edit_config(folder, **changes):
    import json

    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


def test_edited_config_that_changes_the_model_is_refused(tmp_path):
    folder = _saved_micro(tmp_path)
    _edit_config(folder, patch_shortcut=True)  # before: loaded with only a diffusers warning
    with pytest.raises(ValueError, match="missing weight.*config.json edited"):
        load_model(folder)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: _edit_config(f, latent_chanels=8), "unknown key"),
        (lambda f: (f / "config.json").write_text("{not json"), "not a readable JSON"),
        (lambda f: _edit_config(f, encoder_channels="wide"), "wrong value"),
        (lambda f: _truncate(f / "diffusion_pytorch_model.safetensors"), "cannot read weights"),
    ],
)
def test_damaged_model_folder_is_a_value_error_naming_the_file(tmp_path, damage, message):
    folder = _saved_micro(tmp_path)
    damage(folder)
    with pytest.raises(ValueError, match=message) as err:
        load_model(folder)
    assert str(folder) in str(err.value)


def _truncate(file):
    file.write_bytes(file.read_bytes()[:200])


def test_nan_weights_are_refused_on_load(tmp_path):
    from tests.conftest import make_micro_vae

    vae = make_micro_vae()
    with torch.no_grad():
        next(vae.parameters())[0] = float("nan")
    vae.save_pretrained(tmp_path / "nan")
    with pytest.raises(ValueError, match="NaN/Inf weights"):
        load_model(tmp_path / "nan")
