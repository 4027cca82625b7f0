"""pvvae.model.registry: architectures by name, saved folders by class name."""

import json

import pytest

from pvvae import PVVAE, TransformerPVVAE
from pvvae.model.registry import class_names, class_of_folder, from_preset, model_class
from tests.conftest import make_micro_transformer, make_micro_vae


def test_names_map_to_the_two_architectures():
    assert model_class("cnn") is PVVAE and model_class("transformer") is TransformerPVVAE
    # and the wrapper of a fine-tuned diffusers VAE, whose training checkpoints name it
    assert class_names() == ("PVVAE", "TransformerPVVAE", "DiffusersPVVAE")
    assert type(from_preset("tiny")) is PVVAE
    assert type(from_preset("transformer-tiny")) is TransformerPVVAE
    with pytest.raises(ValueError, match="valid"):
        model_class("vit")


def test_class_of_folder_reads_config_json(tmp_path):
    for vae in (make_micro_vae(), make_micro_transformer()):
        vae.save_pretrained(tmp_path / type(vae).__name__)
        assert class_of_folder(tmp_path / type(vae).__name__) is type(vae)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(ValueError, match="not a PV-VAE model"):
        class_of_folder(tmp_path / "other")


def test_class_of_config_knows_the_diffusers_wrapper():
    from pvvae.model.diffusers_vae import DiffusersPVVAE
    from pvvae.model.registry import class_of_config

    assert class_of_config({"_class_name": "DiffusersPVVAE"}, "x") is DiffusersPVVAE
