"""pvvae.data: video and image datasets, video I/O and a procedural video generator.

Pixel convention: videos are float tensors (3, T, H, W) in [-1, 1] per sample and
(B, 3, T, H, W) batched; images are the T = 1 case (3, 1, H, W). Decoded frames are uint8
(T, H, W, 3) until :func:`to_model_range` converts them.
"""

from pvvae.data.folders import (
    VIDEO_EXTENSIONS,
    SkippingDataset,
    VideoClipDataset,
    VideoFolderDataset,
    VideoManifestDataset,
    read_manifest,
    scan_folder,
)
from pvvae.data.images import IMAGE_EXTENSIONS, ImageFolderDataset, read_image
from pvvae.data.loader import (
    ReadableItems,
    collate,
    collate_readable,
    loader_generator,
    seed_worker,
    worker_init_fn,
)
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
    decodable_frames,
    fit_to_multiple,
    from_model_range,
    read_video,
    resize_and_crop,
    to_model_range,
    video_info,
    write_video,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "SAMPLE_VIDEOS",
    "SHAPE_KINDS",
    "VIDEO_EXTENSIONS",
    "ImageFolderDataset",
    "ReadableItems",
    "SkippingDataset",
    "SyntheticConfig",
    "SyntheticVideoDataset",
    "VideoClipDataset",
    "VideoFolderDataset",
    "VideoInfo",
    "VideoManifestDataset",
    "VideoReadError",
    "collate",
    "collate_readable",
    "decodable_frames",
    "fit_to_multiple",
    "from_model_range",
    "loader_generator",
    "read_image",
    "read_manifest",
    "read_video",
    "resize_and_crop",
    "sample_video_path",
    "scan_folder",
    "seed_worker",
    "synthetic_clip",
    "to_model_range",
    "video_info",
    "worker_init_fn",
    "write_video",
]
