"""Named model presets: ``PVVAE.from_preset(name)`` and :data:`PRESETS`."""

from __future__ import annotations

from types import MappingProxyType

T4S16 = (True, True, False, False)  # two spatiotemporal, then two spatial downsamplings
T4S8 = (True, True, False)

PRESETS = MappingProxyType(
    {
        # 8.1M parameters: about 0.6 s per training step of 2 clips of 17x64x64 on one CPU
        # core in bf16 (demo, tests, bench/learning.py).
        "tiny": dict(
            latent_channels=64,
            encoder_channels=(16, 32, 64, 96, 128),
            encoder_layers=(1, 1, 1, 1, 1),
            decoder_channels=(16, 32, 64, 96, 128),
            decoder_layers=(1, 1, 1, 1, 1),
            temporal_downsample=T4S16,
        ),
        # The paper's t4s16c64 model: 678.6M parameters (paper: 661M, Table 1). Width sits at low
        # resolution, where it is cheap: 2.3 TFLOP per 17x128x128 clip (encode + decode)
        # against 6.2 TFLOP for the Wan2.2 VAE (shared/notes/anchors.md).
        "paper": dict(
            latent_channels=64,
            encoder_channels=(64, 128, 256, 512, 1024),
            encoder_layers=(1, 2, 2, 2, 3),
            decoder_channels=(128, 128, 256, 512, 1024),
            decoder_layers=(2, 2, 2, 3, 3),
            temporal_downsample=T4S16,
        ),
        # t4s8c16, the latent layout of Wan2.1 / CogVideoX / Hunyuan, for comparisons.
        "t4s8c16": dict(
            latent_channels=16,
            encoder_channels=(64, 128, 256, 256),
            encoder_layers=(1, 2, 2, 2),
            decoder_channels=(64, 128, 256, 256),
            decoder_layers=(2, 2, 3, 3),
            temporal_downsample=T4S8,
        ),
    }
)


def preset_config(name: str, **overrides) -> dict:
    """Constructor arguments of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; valid presets: {sorted(PRESETS)}")
    return {**PRESETS[name], **overrides}
