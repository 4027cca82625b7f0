"""VAE adapters: tiny random diffusers models saved and re-loaded, PV-VAE folders and presets."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    AutoencoderKLHunyuanVideo,
    AutoencoderKLLTXVideo,
    AutoencoderKLWan,
)

from pvvae.eval.adapters import PVVAEAdapter, load_vae
from pvvae.eval.vae_adapter import PredictionNotSupported
from pvvae.inference.spec import parse_vae_spec
from tests.conftest import make_micro_transformer, make_micro_vae, random_video

WAN_TINY = dict(
    base_dim=8,
    z_dim=4,
    dim_mult=[1, 2, 2, 2],
    num_res_blocks=1,
    temperal_downsample=[False, True, True],
    latents_mean=[0.5] * 4,
    latents_std=[2.0] * 4,
)
# Wan2.2 layout: 2x2 patchify (12 pixel channels inside), residual blocks, 16x spatial.
WAN22_TINY = dict(
    WAN_TINY,
    is_residual=True,
    patch_size=2,
    in_channels=12,
    out_channels=12,
    scale_factor_spatial=16,
)
COG_TINY = dict(
    block_out_channels=(8, 16, 16),
    down_block_types=("CogVideoXDownBlock3D",) * 3,
    up_block_types=("CogVideoXUpBlock3D",) * 3,
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=4,
    temporal_compression_ratio=4,
)
HUNYUAN_TINY = dict(
    block_out_channels=(8, 16, 16),
    down_block_types=("HunyuanVideoDownBlock3D",) * 3,
    up_block_types=("HunyuanVideoUpBlock3D",) * 3,
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=4,
    spatial_compression_ratio=4,
    temporal_compression_ratio=4,
)
LTX_TINY = dict(
    latent_channels=4,
    block_out_channels=(8, 8, 16, 16),
    decoder_block_out_channels=(8, 8, 16, 16),
    layers_per_block=(1, 1, 1, 1, 1),
    decoder_layers_per_block=(1, 1, 1, 1, 1),
    spatio_temporal_scaling=(True, True, True, False),
    decoder_spatio_temporal_scaling=(True, True, True, False),
    decoder_inject_noise=(False,) * 5,
    patch_size=2,
)

# kind, class, config, expected layout, expected name
CASES = [
    ("wan", AutoencoderKLWan, WAN_TINY, "t4s8c4", "Wan2.1 VAE"),
    ("wan", AutoencoderKLWan, WAN22_TINY, "t4s16c4", "Wan2.2 VAE"),
    ("cogvideox", AutoencoderKLCogVideoX, COG_TINY, "t4s4c4", "CogVideoX VAE"),
    ("hunyuan", AutoencoderKLHunyuanVideo, HUNYUAN_TINY, "t4s4c4", "HunyuanVideo VAE"),
    ("ltx", AutoencoderKLLTXVideo, LTX_TINY, "t8s16c4", "LTX-Video VAE"),
    # LTX 0.9.1+: timestep-conditioned decoder (equal up-block widths, as the released
    # configs: diffusers feeds the raw timestep to a width-changing block's first resnet)
    (
        "ltx",
        AutoencoderKLLTXVideo,
        dict(LTX_TINY, timestep_conditioning=True, decoder_block_out_channels=(8, 8, 8, 8)),
        "t8s16c4",
        "LTX-Video VAE",
    ),
]


def _save_tiny(model_class, config, folder):
    torch.manual_seed(0)
    model_class(**config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("kind", "model_class", "config", "layout", "name"), CASES)
def test_diffusers_adapter_round_trip(tmp_path, kind, model_class, config, layout, name):
    """A saved tiny model loads through its spec; shapes follow the tTsScC layout."""
    adapter = load_vae(f"{kind}:{_save_tiny(model_class, config, tmp_path / 'vae')}")
    assert (adapter.latent_layout, adapter.name, adapter.kind) == (layout, name, kind)
    t, s, c = adapter.temporal_compression, adapter.spatial_compression, adapter.latent_channels
    x = random_video(1, 9, 32, 32)
    z = adapter.encode(x)
    assert z.shape == (1, c, 1 + 8 // t, 32 // s, 32 // s)
    assert z.dtype == torch.float32
    x_hat = adapter.reconstruct(x)
    assert x_hat.shape == x.shape and x_hat.abs().max() <= 1.0
    assert torch.isfinite(x_hat).all()
    with pytest.raises(PredictionNotSupported, match="cannot predict"):
        adapter.predict(x[:, :, :5], 4)


@pytest.mark.parametrize(
    ("kind", "model_class", "config"),
    [
        ("cogvideox", AutoencoderKLCogVideoX, COG_TINY),  # needs 1 + 8k frames
        ("wan", AutoencoderKLWan, WAN_TINY),  # needs 1 + 4k frames
    ],
)
def test_any_frame_count_is_padded_and_trimmed(tmp_path, kind, model_class, config):
    """Frame counts the model cannot take as they are come back with the same length.

    Unpadded, diffusers' CogVideoX decodes 13 frames (4 latents) to 16 and Wan drops the
    frames after the last complete group of 4."""
    adapter = load_vae(f"{kind}:{_save_tiny(model_class, config, tmp_path / 'vae')}")
    for frames in (13,) if kind == "cogvideox" else (7,):
        x = random_video(1, frames, 16, 16, seed=frames)
        assert adapter.reconstruct(x).shape == x.shape
    if kind == "cogvideox":
        assert adapter.valid_num_frames(13) == 17 and adapter.latent_frames(13) == 5
    else:
        assert adapter.valid_num_frames(7) == 9 and adapter.latent_frames(7) == 3


def test_pipeline_folder_uses_vae_subfolder(tmp_path):
    """A whole pipeline folder (model_index.json + vae/) loads with subfolder="vae"."""
    _save_tiny(AutoencoderKLWan, WAN_TINY, tmp_path / "pipe" / "vae")
    (tmp_path / "pipe" / "model_index.json").write_text(json.dumps({"vae": ["diffusers", "x"]}))
    adapter = load_vae(f"wan:{tmp_path / 'pipe'}")
    assert adapter.latent_layout == "t4s8c4"
    # a bare folder is recognised from the class name in vae/config.json
    assert parse_vae_spec(str(tmp_path / "pipe")).kind == "wan"


def test_wrong_class_and_unknown_kind_are_clear_errors(tmp_path):
    folder = _save_tiny(AutoencoderKLWan, WAN_TINY, tmp_path / "vae")
    with pytest.raises(ValueError, match="AutoencoderKLWan, not AutoencoderKLCogVideoX"):
        load_vae(f"cogvideox:{folder}")
    with pytest.raises(ValueError, match="unknown VAE kind 'sdxl'"):
        load_vae("sdxl:/nowhere")


def test_normalize_follows_each_pipeline(tmp_path):
    """Wan: (z - mean) / std from the config; CogVideoX: z * scaling_factor."""
    wan = load_vae(f"wan:{_save_tiny(AutoencoderKLWan, WAN_TINY, tmp_path / 'w')}")
    z = torch.randn(1, 4, 2, 3, 3)
    torch.testing.assert_close(wan.normalize(z), (z - 0.5) / 2.0)
    cog_config = dict(COG_TINY, scaling_factor=0.7)
    cog = load_vae(f"cogvideox:{_save_tiny(AutoencoderKLCogVideoX, cog_config, tmp_path / 'c')}")
    torch.testing.assert_close(cog.normalize(z), z * 0.7)


def test_pvvae_folder_spec_label_and_prediction(tmp_path):
    """pvvae:FOLDER loads the saved weights; LABEL=SPEC sets the label; predict works."""
    vae = make_micro_vae(seed=3)
    vae.save_pretrained(tmp_path / "model")
    adapter = load_vae(f"mine=pvvae:{tmp_path / 'model'}")
    assert isinstance(adapter, PVVAEAdapter) and adapter.label == "mine"
    assert adapter.folder == tmp_path / "model"
    x = random_video(2, 9, 32, 32)
    with torch.no_grad():
        expected = vae(x).sample.clamp(-1, 1)
    torch.testing.assert_close(adapter.reconstruct(x), expected)
    out = adapter.predict(x[:, :, :5], 4)
    assert out.shape == x.shape
    assert adapter.describe()["latent_layout"] == "t4s16c8"


def test_preset_spec_is_deterministic_and_keeps_global_rng():
    state = torch.random.get_rng_state()
    a = load_vae("pvvae-preset:tiny")
    assert torch.equal(torch.random.get_rng_state(), state)
    b = load_vae("pvvae-preset:tiny")
    pa, pb = next(a.model.parameters()), next(b.model.parameters())
    assert torch.equal(pa, pb)
    assert a.latent_layout == "t4s16c64" and a.folder is None


def test_spatial_size_must_match_the_compression():
    adapter = PVVAEAdapter(make_micro_vae(), source="micro")
    with pytest.raises(ValueError, match="multiples of 16"):
        adapter.encode(random_video(1, 5, 24, 32))


def test_bfloat16_models_return_float32(tmp_path):
    folder = _save_tiny(AutoencoderKLLTXVideo, LTX_TINY, tmp_path / "ltx")
    adapter = load_vae(f"ltx:{folder}", dtype=torch.bfloat16)
    assert next(adapter.model.parameters()).dtype == torch.bfloat16
    x = random_video(1, 9, 16, 16)
    assert adapter.reconstruct(x).dtype == torch.float32
    assert adapter.describe()["dtype"] == "bfloat16"


def test_transformer_folders_and_presets_load_as_pvvae(tmp_path):
    """A saved TransformerPVVAE (PV-VAE*) is detected as a pvvae folder and predicts."""
    vae = make_micro_transformer(seed=3)
    vae.save_pretrained(tmp_path / "model")
    adapter = load_vae(str(tmp_path / "model"))  # kind detected from config.json
    assert isinstance(adapter, PVVAEAdapter) and type(adapter.model) is type(vae)
    x = random_video(2, 9, 32, 32)
    with torch.no_grad():
        expected = vae(x).sample.clamp(-1, 1)
    torch.testing.assert_close(adapter.reconstruct(x), expected)
    assert adapter.predict(x[:, :, :5], 4).shape == x.shape
    preset = load_vae("pvvae-preset:transformer-tiny")
    assert type(preset.model) is type(vae) and preset.latent_layout == "t4s16c64"


def test_fine_tuned_wan_folder_predicts_with_its_padding_token(tmp_path):
    """A Wan folder written by predictive fine-tuning (pad_token.safetensors beside the
    diffusers files) predicts through the adapter, as DiffusersPVVAE.predict does; the same
    folder without the token is a plain Wan VAE (no prediction)."""
    from pvvae.model.diffusers_vae import PAD_TOKEN_FILE, DiffusersPVVAE

    torch.manual_seed(0)
    model = DiffusersPVVAE("AutoencoderKLWan", WAN22_TINY).eval()
    model.save_diffusers(tmp_path / "ft")
    adapter = load_vae(f"wan:{tmp_path / 'ft'}")
    assert adapter.supports_prediction and "predictive" in adapter.name
    x = random_video(1, 9, 32, 32)
    with torch.no_grad():
        expected = model.predict(x[:, :, :5], 4).clamp(-1, 1)
    torch.testing.assert_close(adapter.predict(x[:, :, :5], 4), expected)
    (tmp_path / "ft" / PAD_TOKEN_FILE).unlink()
    plain = load_vae(f"wan:{tmp_path / 'ft'}")
    with pytest.raises(PredictionNotSupported):
        plain.predict(x[:, :, :5], 4)
