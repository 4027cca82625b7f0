"""docs/config.md is generated from the config dataclasses and up to date with them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_config", ROOT / "docs" / "gen_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_reference_is_up_to_date():
    gen = _generator()
    assert (ROOT / "docs" / "config.md").read_text() == gen.render(), (
        "docs/config.md is out of date: run python docs/gen_config.py"
    )


def test_every_key_is_documented():
    from pvvae.training.config import DataConfig, ExperimentConfig, TrainConfig

    text = (ROOT / "docs" / "config.md").read_text()
    for cls, prefix in ((DataConfig, "data."), (TrainConfig, "train.")):
        for name in cls.__dataclass_fields__:
            assert f"`{prefix}{name}`" in text
    assert all(f"`{name}`" in text for name in ExperimentConfig.__dataclass_fields__)
