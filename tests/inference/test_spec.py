"""The one VAE grammar (pvvae.inference.spec): every kind parses, every loader reads it."""

from __future__ import annotations

import json

import pytest
import torch

from pvvae.inference.spec import SPEC_KINDS, VAESpec, load_vae, parse_vae_spec
from tests.conftest import make_micro_vae


def test_kinds_labels_and_the_preset_alias():
    assert parse_vae_spec("pvvae:runs/x") == VAESpec(None, "pvvae", "runs/x")
    assert parse_vae_spec("base=preset:tiny") == VAESpec("base", "preset", "tiny")
    assert parse_vae_spec("pvvae-preset:tiny") == VAESpec(None, "preset", "tiny")
    assert parse_vae_spec("wan:/m/Wan2.1").kind == "wan"
    assert {"pvvae", "preset", "wan", "cogvideox", "hunyuan", "ltx"} <= set(SPEC_KINDS)


def test_unknown_kinds_and_unreadable_folders_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown VAE kind 'sdxl'.*valid kinds"):
        parse_vae_spec("sdxl:/nowhere")
    with pytest.raises(FileNotFoundError, match="cannot tell which VAE"):
        parse_vae_spec(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        parse_vae_spec(tmp_path)


def test_bare_folders_are_recognised_from_their_config(tmp_path):
    make_micro_vae().save_pretrained(tmp_path / "model")
    assert parse_vae_spec(tmp_path / "model").kind == "pvvae"
    (tmp_path / "pipe" / "vae").mkdir(parents=True)
    (tmp_path / "pipe" / "vae" / "config.json").write_text(
        json.dumps({"_class_name": "AutoencoderKLLTXVideo"}))
    assert parse_vae_spec(tmp_path / "pipe").kind == "ltx"


def test_load_vae_reads_folders_prefixed_folders_and_seeded_presets(tmp_path):
    model = make_micro_vae()
    model.save_pretrained(tmp_path / "model")
    folder = tmp_path / "model"
    for spec in (folder, f"pvvae:{folder}", f"a=pvvae:{folder}"):
        loaded = load_vae(spec)
        assert not loaded.training
        assert torch.equal(loaded.state_dict()["pad_token"], model.state_dict()["pad_token"])
    state = torch.random.get_rng_state()
    a, b = load_vae("preset:tiny", seed=3), load_vae("pvvae-preset:tiny", seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_kinds_only_evaluation_reads_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="read by `pvvae eval` only"):
        load_vae(f"cogvideox:{tmp_path}")
