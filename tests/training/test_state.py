"""``model.arch`` (pvvae.training.state / config): the trainer takes the Transformer VAE
(PV-VAE*, paper section 5) through configuration alone."""

from __future__ import annotations

import pytest
import torch

from pvvae import TransformerPVVAE
from pvvae.config import ConfigError
from pvvae.training.checkpoint import load_model
from pvvae.training.distributed import DistInfo
from pvvae.training.state import build_state
from pvvae.training.trainer import train

from .conftest import micro_config, read_log

TRANSFORMER = (
    "model.arch=transformer",
    "model.overrides={latent_channels: 8, num_heads: 2, head_dim: 8}",
)


def test_the_trainer_takes_the_transformer_through_configuration(tmp_path):
    gan = "objective.loss.lambda_gan=0.5", "objective.gan.start_step=0", "objective.gan.channels=8"
    cfg = micro_config(tmp_path, *TRANSFORMER, *gan, "name=tf", "train.steps=2", "train.ema=true")
    run = train(cfg)
    log = read_log(run)
    assert [r["step"] for r in log] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss/total"])) for r in log)
    assert all("loss/gan_generator" in r for r in log)  # adaptive weight at get_last_layer()
    vae = load_model(run)  # the class named in the saved config.json
    assert isinstance(vae, TransformerPVVAE) and vae.config.head_dim == 8
    with torch.no_grad():
        assert vae(torch.zeros(1, 3, 5, 32, 32)).sample.shape == (1, 3, 5, 32, 32)


@pytest.mark.parametrize("stage", ["image", "decoder"])
def test_the_other_stages_train_the_transformer(tmp_path, stage):
    frames = "data.num_frames=1" if stage == "image" else "data.num_frames=9"
    cfg = micro_config(tmp_path, *TRANSFORMER, f"train.stage={stage}", frames, "train.steps=1")
    log = read_log(train(cfg))
    assert len(log) == 1 and torch.isfinite(torch.tensor(log[0]["loss/total"]))


def test_gradient_checkpointing_wraps_the_transformer_blocks(tmp_path):
    cfg = micro_config(tmp_path, *TRANSFORMER, "train.gradient_checkpointing=true")
    state = build_state(cfg, DistInfo())
    wrapped = [m for m in state.vae.modules() if type(m).__name__ == "CheckpointWrapper"]
    assert len(wrapped) == 4  # 2 encoder + 2 decoder blocks


def test_model_config_errors_name_the_architecture(tmp_path):
    with pytest.raises(ConfigError, match="valid presets of model.arch=transformer"):
        micro_config(tmp_path, *TRANSFORMER, "model.preset=t4s8c16").model.build_kwargs()
    cnn_keys = micro_config(tmp_path, "model.arch=transformer")  # the CNN micro overrides
    with pytest.raises(ConfigError, match="unknown model.overrides key"):
        cnn_keys.model.build_kwargs()
    with pytest.raises(ConfigError, match="model.arch"):
        micro_config(tmp_path, "model.arch=vit")
