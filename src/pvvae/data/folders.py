"""Video datasets over a folder tree (UCF101 layout) or a CSV manifest.

Clip rule (paper section 4.1: "17-frame clips at 256x256"; reconstruction "takes the first 17
frames"):

* A clip is ``num_frames`` frames ``start, start + frame_stride, ...``. Training draws ``start``
  uniformly over the positions where the clip fits; evaluation (``train=False``) takes the
  first frames (``start = 0``), so evaluation items are deterministic.
* Videos shorter than a clip are padded by repeating their last decoded frame (the video
  "freezes"); they are neither dropped nor looped, so every file contributes.
* Frames are short-side resized to ``size`` and cropped to ``size x size``: a random crop for
  training, the centre crop for evaluation (:func:`pvvae.data.video_io.resize_and_crop`).
  ``size=None`` keeps the native resolution, centre-cropped to multiples of 16
  (:func:`pvvae.data.video_io.fit_to_multiple`).

Unreadable files never crash a run: a file that fails to open or decode is logged once
(``logging`` warning naming it), marked, counted in :attr:`skipped`, and the item is replaced by
the next readable index (``index + 1``, wrapping around), deterministically. Only when every
file fails is an error raised. The failure marks live in shared memory, so the count covers all
DataLoader workers. Evaluation, which must not count a clip twice, reads items with
:meth:`SkippingDataset.try_item` instead (None for an unreadable file, no replacement).

Training clip starts are drawn within the file's *decodable* length
(:func:`pvvae.data.video_io.decodable_frames`, counted once per file and cached in shared
memory), never from the container's frame count, which damaged files overstate. So whether a
file is readable, and which clip an ``(index, key)`` item is, depend on the file alone: the
skip marks are only a cache, and a resumed run sees exactly the same items.

Training randomness comes from the dataset's own ``torch.Generator`` seeded from ``seed``; in
DataLoader workers it is reseeded per worker (automatically from the worker's seed, or with the
rank mixed in by :func:`pvvae.data.loader.seed_worker`), so workers never share a stream.
Alternatively a sampler can yield ``(index, key)`` pairs: the item's randomness is then seeded
from ``(seed, key)`` alone, which makes a run exactly resumable from a sample position.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from pvvae.data.video_io import (
    VideoReadError,
    decodable_frames,
    fit_to_multiple,
    read_video,
    resize_and_crop,
    to_model_range,
)

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


def scan_folder(
    root: str | Path, extensions: Sequence[str]
) -> tuple[list[Path], list[int], list[str]]:
    """List the files of a class-per-sub-folder tree (UCF101 / ImageNet layout).

    A file's class is its top-level sub-folder under ``root`` (files may sit deeper); files
    directly in ``root`` belong to the class ``""``. Classes are numbered in sorted order.

    Args:
        root: folder to search recursively.
        extensions: accepted suffixes, case-insensitive (e.g. ``(".mp4", ".avi")``).
    Returns:
        (paths, labels, classes): sorted file paths, their integer labels, the class names.
    Raises:
        FileNotFoundError: ``root`` is not a folder, or no file matches, naming the folder and
            the extensions searched.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    suffixes = {ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions}
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    if not paths:
        raise FileNotFoundError(f"no files with extensions {sorted(suffixes)} under {root}")
    names = [p.relative_to(root).parts[0] if p.parent != root else "" for p in paths]
    classes = sorted(set(names))
    index = {name: i for i, name in enumerate(classes)}
    return paths, [index[name] for name in names], classes


def read_manifest(csv_path: str | Path) -> tuple[list[Path], list[int], list[str]]:
    """Read a CSV manifest with a ``path`` column and an optional ``label`` column.

    Paths are absolute or relative to the CSV's folder. Labels are integers, or class names
    numbered in sorted order; without a ``label`` column every file has label 0.

    Args:
        csv_path: the manifest (with a header row).
    Returns:
        (paths, labels, classes): file paths in manifest order, integer labels, class names
        (the decimal strings of the labels when they are integers).
    Raises:
        FileNotFoundError: missing manifest. ValueError: no ``path`` column or no rows.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"manifest {csv_path} does not exist")
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise ValueError(f"manifest {csv_path} needs a 'path' column, has {reader.fieldnames}")
        rows = [row for row in reader if row["path"].strip()]
    if not rows:
        raise ValueError(f"manifest {csv_path} lists no files")
    paths = [csv_path.parent / row["path"].strip() for row in rows]  # absolute paths stay
    raw = [(row.get("label") or "0").strip() for row in rows]
    if all(value.lstrip("-").isdigit() for value in raw):
        labels = [int(value) for value in raw]
        return paths, labels, [str(label) for label in sorted(set(labels))]
    classes = sorted(set(raw))
    index = {name: i for i, name in enumerate(classes)}
    return paths, [index[value] for value in raw], classes


class NoReadableFileError(RuntimeError):
    """Every file of a dataset is unreadable."""


class SkippingDataset(Dataset):
    """Base of the file datasets: labelled files, skip-on-error and a reseedable generator.

    Subclasses implement :meth:`load` (path, generator) -> tensor and set ``read_errors``, the
    exception types that mean "this file is unreadable".

    Args:
        paths, labels: the files and their integer labels (same length, non-empty).
        classes: class names (``classes[label]``).
        train: random clip/crop positions (True) or deterministic evaluation items (False).
        seed: seed of the training randomness.
        source: folder or manifest, named in error messages.
    """

    read_errors: tuple[type[BaseException], ...] = (VideoReadError,)

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int],
        classes: Sequence[str],
        train: bool,
        seed: int,
        source: str | Path,
    ) -> None:
        if len(paths) != len(labels) or not paths:
            raise ValueError(f"need as many labels as paths, and at least one path ({source})")
        self.paths = [Path(p) for p in paths]
        self.labels = [int(label) for label in labels]
        self.classes = list(classes)
        self.train = train
        self.seed = seed
        self.source = str(source)
        self._failed = torch.zeros(len(self.paths), dtype=torch.bool).share_memory_()
        self._generator = torch.Generator().manual_seed(seed)
        self._worker_seeded = False

    @property
    def num_classes(self) -> int:
        """Number of classes (labels are in ``[0, num_classes)`` for folder datasets)."""
        return len(self.classes)

    @property
    def skipped(self) -> int:
        """Number of distinct unreadable files found so far (over all DataLoader workers)."""
        return int(self._failed.sum())

    @property
    def skipped_paths(self) -> list[Path]:
        """The unreadable files found so far."""
        return [self.paths[i] for i in torch.nonzero(self._failed).flatten().tolist()]

    def mark_skipped(self, paths: Sequence[str | Path]) -> None:
        """Mark ``paths`` unreadable without retrying them (a resumed run's skip state).

        Paths that are not files of this dataset are ignored.
        """
        index = {str(p): i for i, p in enumerate(self.paths)}
        for path in paths:
            if str(path) in index:
                self._failed[index[str(path)]] = True

    def reseed(self, seed: int) -> None:
        """Restart the training randomness from ``seed`` (called once per DataLoader worker)."""
        self._generator = torch.Generator().manual_seed(int(seed))
        self._worker_seeded = True

    def generator(self) -> torch.Generator:
        """The training generator; inside a worker never seeded, first derive a worker seed."""
        info = get_worker_info()
        if info is not None and not self._worker_seeded:
            state = np.random.SeedSequence([self.seed, info.seed]).generate_state(2)
            self.reseed(int(state[0]) | int(state[1]) << 32)
        return self._generator

    def load(self, path: Path, generator: torch.Generator) -> torch.Tensor:
        """Read one file as a model-range tensor (3, T, H, W).

        Raises:
            one of ``read_errors`` when the file is unreadable.
        """
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.paths)

    def keyed_generator(self, key: int) -> torch.Generator:
        """A fresh generator seeded from ``(seed, key)``, independent of any earlier draw."""
        state = np.random.SeedSequence([self.seed, key]).generate_state(2)
        return torch.Generator().manual_seed(int(state[0]) | int(state[1]) << 32)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, torch.Tensor | int | str]:
        """``{"video": (3, T, H, W) float in [-1, 1], "label": int, "path": str}``.

        Args:
            index: file index ``i``, or a pair ``(i, key)``: the training randomness of the item
                then comes from :meth:`keyed_generator` ``(key)`` instead of the dataset's
                stream, so an item is a pure function of ``(seed, i, key)`` (e.g. ``key`` = the
                sample's position in the run, for exact resume whatever the workers).
        Returns:
            The item of file ``i``, or of the next readable file when ``i`` is unreadable.
        """
        index, key = index if isinstance(index, tuple) else (index, None)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} files")
        for offset in range(len(self)):
            item = self.try_item((index + offset) % len(self), key)
            if item is not None:
                return item
        raise NoReadableFileError(
            f"all {len(self)} files of {self.source} are unreadable (the log names each one "
            "and why); check the paths and that PyAV can decode them"
        )

    def try_item(self, index: int, key: int | None = None) -> dict | None:
        """The item of file ``index`` exactly, or None when that file is unreadable.

        No replacement: evaluation uses this so that no clip is counted twice. The file is
        marked and logged like in :meth:`__getitem__`. Randomness as in :meth:`__getitem__`.
        """
        if self._failed[index]:
            return None
        generator = self.generator() if key is None else self.keyed_generator(key)
        try:
            video = self.load(self.paths[index], generator)
        except self.read_errors as err:
            self._mark_failed(index, err)
            return None
        return {"video": video, "label": self.labels[index], "path": str(self.paths[index])}

    def _mark_failed(self, i: int, err: BaseException) -> None:
        """Record file ``i`` as unreadable and log it (once: marked files are not retried)."""
        self._failed[i] = True
        logger.warning("skipping unreadable file %s: %s", self.paths[i], err)


class VideoClipDataset(SkippingDataset):
    """Clips of a list of labelled video files (see the module docstring for the clip rule).

    Args:
        paths, labels, classes: the files, their labels and the class names.
        num_frames: frames per clip ``1 + T`` (17 standard).
        frame_stride: step between clip frames in the source video.
        size: output side (square crop), or None for native size cropped to multiples of 16.
        train: random start and crop (True) or first frames and centre crop (False).
        seed: seed of the training randomness.
        source: named in error messages.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int],
        classes: Sequence[str],
        num_frames: int = 17,
        frame_stride: int = 1,
        size: int | None = 256,
        train: bool = True,
        seed: int = 0,
        source: str | Path = "video list",
    ) -> None:
        if num_frames < 1 or frame_stride < 1:
            raise ValueError(
                f"need num_frames >= 1 and frame_stride >= 1, got {num_frames}, {frame_stride}"
            )
        super().__init__(paths, labels, classes, train, seed, source)
        self.num_frames = num_frames
        self.frame_stride = frame_stride
        self.size = size
        # decodable frames per file (-1: not counted yet), shared by workers and size views
        self._lengths = torch.full((len(self.paths),), -1, dtype=torch.long).share_memory_()
        self._position = {path: i for i, path in enumerate(self.paths)}

    def decodable_length(self, path: Path) -> int:
        """Frames the decoder delivers for ``path`` (counted on first use, then cached)."""
        i = self._position[path]
        if self._lengths[i] < 0:
            self._lengths[i] = decodable_frames(path)
        return int(self._lengths[i])

    def clip_start(self, path: Path, generator: torch.Generator) -> int:
        """First frame of the clip: 0 for evaluation, uniform where the clip fits in the
        decodable frames for training (module docstring)."""
        if not self.train:
            return 0
        span = (self.num_frames - 1) * self.frame_stride + 1
        last_start = max(self.decodable_length(path) - span, 0)
        return int(torch.randint(0, last_start + 1, (1,), generator=generator))

    def load(self, path: Path, generator: torch.Generator) -> torch.Tensor:
        """Clip of ``path`` as a float (3, num_frames, size, size) tensor in [-1, 1]."""
        start = self.clip_start(path, generator)
        frames = read_video(path, start, self.num_frames, self.frame_stride)  # (t, H, W, 3)
        if len(frames) == 0:
            raise VideoReadError(path, f"no frame at or after frame {start}")
        if len(frames) < self.num_frames:  # short video: repeat the last frame
            pad = frames[-1:].expand(self.num_frames - len(frames), -1, -1, -1)
            frames = torch.cat([frames, pad])  # (num_frames, H, W, 3)
        if self.size is None:  # native size, cropped to multiples of 16
            planes = fit_to_multiple(frames.permute(0, 3, 1, 2), 16)  # (T, 3, H', W')
            frames = planes.permute(0, 2, 3, 1)  # (T, H', W', 3)
        else:
            mode = "random" if self.train else "center"
            frames = resize_and_crop(frames, self.size, mode, generator)  # (T, S, S, 3) uint8
        return to_model_range(frames)  # (3, T, S, S)


class VideoFolderDataset(VideoClipDataset):
    """Clips of the videos under a class-per-sub-folder tree (UCF101 layout).

    Labels are the sorted sub-folder names' indices (see :func:`scan_folder`); the class names
    are in :attr:`classes`. Other arguments as in :class:`VideoClipDataset`.

    Args:
        root: dataset folder, searched recursively.
        extensions: video suffixes to accept (case-insensitive).
    Raises:
        FileNotFoundError: no matching file (the message names the folder and extensions).
    """

    def __init__(
        self,
        root: str | Path,
        num_frames: int = 17,
        frame_stride: int = 1,
        size: int | None = 256,
        train: bool = True,
        extensions: Sequence[str] = VIDEO_EXTENSIONS,
        seed: int = 0,
    ) -> None:
        paths, labels, classes = scan_folder(root, extensions)
        super().__init__(
            paths, labels, classes, num_frames, frame_stride, size, train, seed, source=root
        )
        self.root = Path(root)


class VideoManifestDataset(VideoClipDataset):
    """Clips of the videos listed in a CSV manifest (columns ``path`` and optional ``label``).

    See :func:`read_manifest` for the CSV format; other arguments as in
    :class:`VideoClipDataset`. Missing or unreadable listed files are skipped like corrupt ones.

    Args:
        csv_path: the manifest.
    """

    def __init__(
        self,
        csv_path: str | Path,
        num_frames: int = 17,
        frame_stride: int = 1,
        size: int | None = 256,
        train: bool = True,
        seed: int = 0,
    ) -> None:
        paths, labels, classes = read_manifest(csv_path)
        super().__init__(
            paths, labels, classes, num_frames, frame_stride, size, train, seed, source=csv_path
        )
        self.csv_path = Path(csv_path)
