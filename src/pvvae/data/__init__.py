"""pvvae.data: video and image datasets, video I/O and a procedural video generator.

Pixel convention: videos are float tensors (3, T, H, W) in [-1, 1] per sample and
(B, 3, T, H, W) batched; images are the T = 1 case (3, 1, H, W).
"""

from pvvae.data.synthetic import (
    SHAPE_KINDS,
    SyntheticConfig,
    SyntheticVideoDataset,
    synthetic_clip,
)

__all__ = [
    "SHAPE_KINDS",
    "SyntheticConfig",
    "SyntheticVideoDataset",
    "synthetic_clip",
]
