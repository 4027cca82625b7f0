"""Frame-by-frame video reading and writing, for processing videos of any length.

:func:`iter_frames` decodes one frame at a time and :class:`VideoWriter` encodes frames as they
come, so a file-to-file pipeline (``pvvae reconstruct``) holds a few chunks of frames at once,
never the whole video. Layouts and ranges are those of :mod:`pvvae.data.video_io`.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from pvvae.data.video_io import (
    PathLike,
    VideoReadError,
    _as_uint8_frames,
    _decoded_frames,
    _open,
    _rgb,
)


def iter_frames(
    path: PathLike, start: int = 0, num_frames: int | None = None
) -> Iterator[torch.Tensor]:
    """Yield frames ``start, start + 1, ...`` of a video file one at a time.

    Args:
        path: video file.
        start: index of the first frame to yield (0-based).
        num_frames: how many frames at most (None: until the end of the stream).
    Yields:
        uint8 tensors (H, W, 3), RGB, at the size of the first frame (a stream whose frame
        size changes is converted, as :func:`~pvvae.data.video_io.read_video` does).
    Raises:
        VideoReadError: unreadable file, no video stream, or no decodable frame at all.
    """
    if start < 0 or (num_frames is not None and num_frames < 0):
        raise ValueError(f"invalid start={start}, num_frames={num_frames}")
    stop = None if num_frames is None else start + num_frames
    size: tuple[int, int] | None = None  # (H, W) of the first frame: every frame gets it
    with _open(path) as container:
        for index, frame in enumerate(_decoded_frames(container, path)):
            size = size or (frame.height, frame.width)
            if stop is not None and index >= stop:
                break
            if index >= start:
                yield torch.from_numpy(_rgb(frame, size))  # (H, W, 3)
    if size is None:
        raise VideoReadError(path, "no decodable frame")


class VideoWriter:
    """An H.264 (libx264, yuv420p) video written chunk by chunk; a context manager.

    The frame size is fixed by the first chunk (odd sizes padded by repeating the last
    row/column, as :func:`~pvvae.data.video_io.write_video` does).

    Args:
        path: output file (mp4 or any container the suffix names); parent folders created.
        fps: frame rate.
        crf: x264 constant rate factor (18 is visually lossless).
    """

    def __init__(self, path: PathLike, fps: float = 8, crf: int = 18) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps, self.crf = fps, crf
        self.frames_written = 0
        self._container = av.open(str(self.path), mode="w")
        self._stream = None

    def write(self, video: torch.Tensor | np.ndarray) -> None:
        """Append frames: float (3, T, H, W) in [-1, 1] or uint8 (T, H, W, 3)."""
        frames = _as_uint8_frames(video)  # (T, H, W, 3)
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        if self._stream is None:
            rate = Fraction(self.fps).limit_denominator(1001)
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.height, self._stream.width = frames.shape[1], frames.shape[2]
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf)}
        for array in frames:
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            self._container.mux(self._stream.encode(frame))
        self.frames_written += len(frames)

    def close(self) -> None:
        """Flush delayed frames and close the file."""
        if self._stream is not None:
            self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
