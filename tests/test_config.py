import pytest

from pvvae.config import ConfigError, apply_overrides, from_dict, load_config, save_config
from pvvae.training.config import ExperimentConfig


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntrain:\n  steps: 5\n")
    cfg = load_config(ExperimentConfig, path, ["train.steps=7", "optim.betas=[0.8, 0.9]"])
    assert cfg.name == "x" and cfg.train.steps == 7 and cfg.optim.betas == (0.8, 0.9)
    assert cfg.optim.lr == 5e-5 and cfg.objective.max_drop_ratio == 1.0  # paper section 4.1
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(ExperimentConfig, tmp_path / "saved.yaml") == cfg


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"train\.stepz.*valid keys under train: .*steps"):
        load_config(ExperimentConfig, None, ["train.stepz=3"])
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict(ExperimentConfig, {"nmae": "x"})


def test_type_errors_name_the_key():
    with pytest.raises(ConfigError, match="train.steps: expected an integer"):
        load_config(ExperimentConfig, None, ["train.steps=many"])
    with pytest.raises(ConfigError, match="data.kind"):
        load_config(ExperimentConfig, None, ["data.kind=webdataset"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.steps"])


def test_model_overrides_are_checked():
    cfg = load_config(ExperimentConfig, None, ["model.overrides={latent_channels: 8}"])
    assert cfg.model.build_kwargs()["latent_channels"] == 8
    bad = load_config(ExperimentConfig, None, ["model.overrides={latent_chanels: 8}"])
    with pytest.raises(ConfigError, match="latent_chanels.*valid keys"):
        bad.model.build_kwargs()
    with pytest.raises(ConfigError, match="valid presets"):
        load_config(ExperimentConfig, None, ["model.preset=huge"]).model.build_kwargs()


def test_exponent_without_dot_is_a_float():
    """YAML 1.1 reads 1e-4 as a string; float fields accept it."""
    assert load_config(ExperimentConfig, None, ["optim.lr=1e-4"]).optim.lr == 1e-4
    with pytest.raises(ConfigError, match="optim.lr: expected a number"):
        load_config(ExperimentConfig, None, ["optim.lr=fast"])
