"""Image dataset for the image pretraining stage (paper section 3.2): images are 1-frame videos.

Same conventions as :mod:`pvvae.data.folders`: class-per-sub-folder labels, short-side resize
and crop (random for training, centre for evaluation), unreadable files skipped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pvvae.data.folders import SkippingDataset, scan_folder
from pvvae.data.video_io import fit_to_multiple, resize_and_crop, to_model_range

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def read_image(path: str | Path) -> torch.Tensor:
    """Decode an image file as uint8 RGB frames (1, H, W, 3) (a one-frame video).

    Raises:
        OSError (including ``PIL.UnidentifiedImageError``), ValueError: unreadable image.
    """
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"))  # (H, W, 3), forces the full decode
    return torch.from_numpy(array.copy())[None]  # (1, H, W, 3)


class ImageFolderDataset(SkippingDataset):
    """Images under a class-per-sub-folder tree, as (3, 1, S, S) videos in [-1, 1].

    Items are ``{"video": (3, 1, size, size) float, "label": int, "path": str}``.

    Args:
        root: dataset folder, searched recursively.
        size: output side (short-side resize then square crop), or None for native size
            centre-cropped to multiples of 16.
        train: random crop (True) or centre crop (False).
        extensions: image suffixes to accept (case-insensitive).
        seed: seed of the random crops.
    Raises:
        FileNotFoundError: no matching file (the message names the folder and extensions).
    """

    read_errors = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

    def __init__(
        self,
        root: str | Path,
        size: int | None = 256,
        train: bool = True,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        seed: int = 0,
    ) -> None:
        paths, labels, classes = scan_folder(root, extensions)
        super().__init__(paths, labels, classes, train, seed, source=root)
        self.root = Path(root)
        self.size = size

    def load(self, path: Path, generator: torch.Generator) -> torch.Tensor:
        """Image ``path`` as a float (3, 1, size, size) tensor in [-1, 1]."""
        frames = read_image(path)  # (1, H, W, 3) uint8
        if self.size is None:
            frames = fit_to_multiple(frames.permute(0, 3, 1, 2), 16).permute(0, 2, 3, 1)
        else:
            mode = "random" if self.train else "center"
            frames = resize_and_crop(frames, self.size, mode, generator)  # (1, S, S, 3)
        return to_model_range(frames)  # (3, 1, S, S)
