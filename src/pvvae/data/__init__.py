"""pvvae.data: video and image datasets, video I/O and a procedural video generator.

Pixel convention: videos are float tensors (3, T, H, W) in [-1, 1] per sample and
(B, 3, T, H, W) batched; images are the T = 1 case (3, 1, H, W). Decoded frames are uint8
(T, H, W, 3) until :func:`to_model_range` converts them.
"""

from pvvae.data.samples import SAMPLE_VIDEOS, sample_video_path
from pvvae.data.synthetic import (
    SHAPE_KINDS,
    SyntheticConfig,
    SyntheticVideoDataset,
    synthetic_clip,
)
from pvvae.data.video_io import (
    VideoInfo,
    VideoReadError,
    fit_to_multiple,
    from_model_range,
    read_video,
    resize_and_crop,
    to_model_range,
    video_info,
    write_video,
)

__all__ = [
    "SAMPLE_VIDEOS",
    "SHAPE_KINDS",
    "SyntheticConfig",
    "SyntheticVideoDataset",
    "VideoInfo",
    "VideoReadError",
    "fit_to_multiple",
    "from_model_range",
    "read_video",
    "resize_and_crop",
    "sample_video_path",
    "synthetic_clip",
    "to_model_range",
    "video_info",
    "write_video",
]
