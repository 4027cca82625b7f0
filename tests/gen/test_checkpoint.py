"""Tests of pvvae.gen.checkpoint: trainer checkpoints are diffusers folders, the earlier
layout still loads, bad configs fail in one line."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_file

from pvvae.gen.checkpoint import LatteMeta, load_latte
from pvvae.gen.latte import Latte
from pvvae.training.checkpoint import WEIGHTS_FILE, latest_checkpoint


def test_trainer_checkpoints_open_with_from_pretrained(trained_run):
    ckpt = latest_checkpoint(trained_run)
    for folder, use_ema in ((ckpt, False), (ckpt / "ema", True)):
        model, meta = load_latte(trained_run, use_ema=use_ema)
        plain = Latte.from_pretrained(folder)
        assert LatteMeta.of(plain) == meta and meta.latent_shape == (8, 5, 2, 2)
        for name, value in plain.state_dict().items():
            assert torch.equal(value, model.state_dict()[name]), name


def test_the_earlier_layout_still_loads(tmp_path):
    torch.manual_seed(0)
    model = Latte.from_preset("tiny", num_classes=2)
    old = {"_class_name": "Latte", "latte": asdict(model.arch), "latent_shape": [8, 3, 2, 2],
           "classes": ["a", "b"], "vae": "preset:tiny"}
    (tmp_path / "config.json").write_text(json.dumps(old))
    save_file(model.state_dict(), tmp_path / WEIGHTS_FILE)
    loaded, meta = load_latte(tmp_path)
    assert meta == LatteMeta(model.arch, (8, 3, 2, 2), ("a", "b"), "preset:tiny")
    assert torch.equal(loaded.final_layer.linear.weight, model.final_layer.linear.weight)


def test_bad_configs_are_one_line_errors(tmp_path):
    Latte.from_preset("tiny").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hiden_size": 3}))
    with pytest.raises(ValueError, match="unknown key.*hiden_size"):
        load_latte(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "_class_name": "PVVAE"}))
    with pytest.raises(ValueError, match="not a Latte"):
        load_latte(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_heads": 5}))
    with pytest.raises(ValueError, match="divisible"):
        load_latte(tmp_path)
