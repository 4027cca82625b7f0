"""Video file I/O (PyAV) and the spatial preprocessing shared by all video datasets.

Layouts and ranges:

* Files are decoded to ``uint8`` tensors (T, H, W, 3) (RGB, frame-major, as decoders give them).
* The model consumes float tensors (3, T, H, W) in [-1, 1]: :func:`to_model_range` and
  :func:`from_model_range` convert between the two (``x / 127.5 - 1`` and its rounded inverse).

Spatial rule for training and evaluation clips (:func:`resize_and_crop`): resize the short side
to ``size`` (bilinear, antialiased) and crop a ``size x size`` square, centred for evaluation
and at a uniformly random position for training. It is implemented as the equivalent
crop-then-resize (crop the largest square of the source, then resize it), which touches fewer
pixels; the two differ only by the filter footprint at the crop border.

"Any resolution" inputs (reconstruction at native size, paper section 4.1 evaluates 256 and 512)
go through :func:`fit_to_multiple`: each side is centre-cropped to the largest multiple of the
model's spatial stride (16) that fits. Cropping, rather than resizing to the nearest multiple,
keeps the pixels bit-exact so reconstruction metrics compare against untouched content; at
most ``multiple - 1`` rows/columns are lost per side.

One reader and one writer: :func:`iter_frames` yields frames one at a time and
:func:`read_video` stacks them; :class:`VideoWriter` encodes chunk by chunk and
:func:`write_video` writes a whole video as one chunk (so streamed and whole-clip files are
identical). Reading decodes sequentially from the first frame, so frame indices are exact
(no keyframe seek imprecision) at a cost linear in ``start``; the clips used here are short
prefixes.

Damaged files. A file's *decodable length* (:func:`decodable_frames`) is the number
of frames the decoder delivers, which is what clips are drawn from: container headers may claim
more (an AVI whose index says 444 frames but whose data stops at 68, a truncated mp4). A
decoding error after at least one frame ends the stream there (the frames before it are kept;
a warning names the file once per process); an error before any frame makes the file
unreadable (:class:`VideoReadError`). A frame-size change inside a stream is handled by
converting every frame to the size of the first one (bilinear, by the decoder's scaler). Only
regular files are opened (a named pipe or device would block forever), and PyAV's ``timeout``
bounds opening and each read (:data:`READ_TIMEOUT_S`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

PathLike = str | Path

READ_TIMEOUT_S = 60.0  # seconds PyAV may wait to open a file or to read from it


class VideoReadError(RuntimeError):
    """A video file could not be opened or decoded.

    Attributes:
        path: the file.
        reason: what went wrong, in words.
    """

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read video {self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """Properties of a video file's first video stream.

    Attributes:
        num_frames: number of frames (from the container, or counted by decoding).
        fps: average frame rate (0.0 when the container does not say).
        height, width: frame size in pixels.
    """

    num_frames: int
    fps: float
    height: int
    width: int


def _open(path: PathLike) -> av.container.InputContainer:
    """Open ``path`` for reading, turning every failure into :class:`VideoReadError`."""
    if not Path(path).exists():
        raise VideoReadError(path, "no such file")
    if not Path(path).is_file():  # a pipe or device could block forever in open()
        raise VideoReadError(path, "not a regular file (a folder, a pipe or a device)")
    try:
        container = av.open(str(path), mode="r", timeout=READ_TIMEOUT_S)
    except (av.FFmpegError, OSError) as err:
        raise VideoReadError(path, f"{type(err).__name__}: {err}") from err
    if not container.streams.video:
        container.close()
        raise VideoReadError(path, "the file has no video stream")
    return container


def _decoded_frames(container: av.container.InputContainer, path: PathLike, warn: bool = False):
    """Yield the decoded frames of the first video stream.

    A decoder error before the first frame raises :class:`VideoReadError`; after it, the
    stream ends there (a truncated or damaged file keeps its decodable prefix), logged as a
    warning when ``warn`` (else at debug level: readers of a known length would repeat it).
    """
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    count = 0
    try:
        for frame in container.decode(stream):
            count += 1
            yield frame
    except av.FFmpegError as err:
        if count == 0:
            raise VideoReadError(path, f"decoding failed: {type(err).__name__}: {err}") from err
        logger.log(
            logging.WARNING if warn else logging.DEBUG,
            "%s: decoding stopped after %d frames (%s: %s); its first %d frames are used",
            path,
            count,
            type(err).__name__,
            err,
            count,
        )


def _rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """A decoded frame as uint8 RGB (H, W, 3) at ``size`` = (H, W) (rescaled if it differs)."""
    if (frame.height, frame.width) == size:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", height=size[0], width=size[1])


def decodable_frames(path: PathLike) -> int:
    """Number of frames the decoder delivers (decodes the whole stream; no colour conversion).

    This, not the container's frame count, bounds where clips may start (module docstring).

    Raises:
        VideoReadError: unreadable file or no decodable frame.
    """
    with _open(path) as container:
        count = sum(1 for _ in _decoded_frames(container, path, warn=True))
    if count == 0:
        raise VideoReadError(path, "no decodable frame")
    return count


def video_info(path: PathLike) -> VideoInfo:
    """Frame count, frame rate and size of a video file.

    Args:
        path: video file.
    Returns:
        :class:`VideoInfo`. When the container does not store the frame count, the stream is
        decoded to count it.
    Raises:
        VideoReadError: unreadable file, no video stream, or no decodable frame.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        num_frames = stream.frames
        if num_frames <= 0:
            num_frames = sum(1 for _ in _decoded_frames(container, path))
        if num_frames == 0:
            raise VideoReadError(path, "no decodable frame")
        return VideoInfo(num_frames, float(rate or 0.0), stream.height, stream.width)


def iter_frames(
    path: PathLike, start: int = 0, num_frames: int | None = None, stride: int = 1
) -> Iterator[torch.Tensor]:
    """Yield frames ``start, start + stride, ...`` of a video file one at a time.

    The one reader of this package: :func:`read_video` stacks what it yields, and streaming
    pipelines (``pvvae reconstruct``) consume it lazily, so memory stays that of one frame.

    Args:
        path: video file.
        start: index of the first frame to yield (0-based).
        num_frames: how many frames at most (None: until the end). Fewer come when the
            video ends first (none when ``start`` is past the end).
        stride: step between yielded frames (1 = every frame).
    Yields:
        uint8 tensors (H, W, 3), RGB, at the size of the first frame of the file. Frames
        past a decoding error are absent (the video ends there, see the module docstring);
        decoding stops at the last requested frame, so later damage is never reached.
    Raises:
        VideoReadError: unreadable file, no video stream, or no decodable frame at all.
        ValueError: negative ``start``, ``stride < 1`` or negative ``num_frames``.
    """
    if start < 0 or stride < 1 or (num_frames is not None and num_frames < 0):
        raise ValueError(f"invalid start={start}, num_frames={num_frames}, stride={stride}")
    size: tuple[int, int] | None = None  # (H, W) of the first frame: every frame gets it
    last = math.inf if num_frames is None else start + stride * (num_frames - 1)
    with _open(path) as container:
        for index, frame in enumerate(_decoded_frames(container, path)):
            size = size or (frame.height, frame.width)
            if index >= start and (index - start) % stride == 0 and index <= last:
                yield torch.from_numpy(_rgb(frame, size))  # (H, W, 3)
            if index >= last:  # stop without decoding further (and hitting later damage)
                break
    if size is None:
        raise VideoReadError(path, "no decodable frame")


def read_video(
    path: PathLike, start: int = 0, num_frames: int | None = None, stride: int = 1
) -> torch.Tensor:
    """Decode frames ``start, start + stride, ...`` of a video file at once.

    Args and errors: as :func:`iter_frames`.
    Returns:
        uint8 tensor (T, H, W, 3), RGB, at the size of the first frame; T = 0 (and the size
        of the file's first frame) when ``start`` is past the end or ``num_frames`` is 0.
    """
    frames = list(iter_frames(path, start, num_frames, stride))
    if frames:
        return torch.stack(frames)  # (T, H, W, 3)
    first = next(iter_frames(path, num_frames=1))  # (H, W, 3): the size of an empty result
    return first.new_zeros((0, *first.shape))


def to_model_range(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> float32 video (3, T, H, W) in [-1, 1]."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return frames.permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)  # (3, T, H, W)


def from_model_range(video: torch.Tensor) -> torch.Tensor:
    """float video (3, T, H, W) in [-1, 1] -> uint8 frames (T, H, W, 3) (clamped, rounded)."""
    if not video.is_floating_point() or video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"expected float (3, T, H, W), got {video.dtype} {tuple(video.shape)}")
    pixels = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).contiguous()  # (T, H, W, 3)


def _as_uint8_frames(video: torch.Tensor | np.ndarray) -> np.ndarray:
    """Model-range (3, T, H, W) float or uint8 (T, H, W, 3) -> uint8 numpy (T, H, W, 3)."""
    video = torch.as_tensor(video)
    if video.is_floating_point():
        video = from_model_range(video.cpu())
    elif video.dtype != torch.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected uint8 (T, H, W, 3), got {video.dtype} {tuple(video.shape)}")
    return video.cpu().numpy()


class VideoWriter:
    """An H.264 (libx264, yuv420p) video written chunk by chunk; a context manager.

    The frame size is fixed by the first chunk; odd heights/widths are padded by repeating
    the last row/column (yuv420p needs even sizes).

    Args:
        path: output file (mp4 or any container the suffix names); parent folders created.
        fps: frame rate.
        crf: x264 constant rate factor (lower is better; 18 is visually lossless).
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


def write_video(
    path: PathLike, video: torch.Tensor | np.ndarray, fps: float = 8, crf: int = 18
) -> Path:
    """Encode a whole video at once (one :class:`VideoWriter` chunk; settings as there).

    Args:
        path: output file; missing parent folders are created.
        video: float (3, T, H, W) in [-1, 1] or uint8 (T, H, W, 3), T >= 1.
        fps: frame rate.
        crf: x264 constant rate factor.
    Returns:
        The path written.
    """
    frames = _as_uint8_frames(video)  # (T, H, W, 3), converted once
    if len(frames) == 0:
        raise ValueError("cannot write a video with zero frames")
    with VideoWriter(path, fps, crf) as writer:
        writer.write(frames)
    return writer.path


def _crop_box(
    height: int, width: int, out_h: int, out_w: int, mode: str, generator: torch.Generator | None
) -> tuple[int, int, int, int]:
    """Largest (top, left, crop_h, crop_w) box with aspect ``out_h:out_w``, centred or random."""
    scale = max(out_h / height, out_w / width)  # short-side resize factor
    crop_h = min(height, round(out_h / scale))
    crop_w = min(width, round(out_w / scale))
    if mode == "center":
        return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w
    if mode == "random":
        top = int(torch.randint(0, height - crop_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - crop_w + 1, (1,), generator=generator))
        return top, left, crop_h, crop_w
    raise ValueError(f"mode must be 'center' or 'random', got {mode!r}")


def resize_and_crop(
    video: torch.Tensor,
    size: int | tuple[int, int],
    mode: str = "center",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Short-side resize to ``size`` then crop (see the module docstring for the rule).

    Both layouts of this module are accepted and kept: a float tensor (..., H, W) such as a
    model-range video (3, T, H, W), or decoded uint8 frames (T, H, W, 3). Resizing uint8 frames
    before :func:`to_model_range` is several times faster for large sources.

    Args:
        video: float (..., H, W) or uint8 (T, H, W, 3).
        size: output side ``S`` (square) or ``(height, width)``.
        mode: ``"center"`` (evaluation) or ``"random"`` (training) crop position.
        generator: torch generator for the random crop position.
    Returns:
        float (..., S, S) or uint8 (T, S, S, 3) (``(height, width)`` for a tuple ``size``),
        same dtype as ``video``.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    frames = video.dtype == torch.uint8
    if frames and (video.ndim != 4 or video.shape[-1] != 3):
        raise ValueError(f"uint8 input must be (T, H, W, 3), got {tuple(video.shape)}")
    if not frames and not video.is_floating_point():
        raise ValueError(f"expected a float tensor or uint8 frames, got {video.dtype}")
    planes = video.permute(0, 3, 1, 2) if frames else video  # (T, 3, H, W) view for uint8
    height, width = planes.shape[-2:]
    top, left, crop_h, crop_w = _crop_box(height, width, out_h, out_w, mode, generator)
    crop = planes[..., top : top + crop_h, left : left + crop_w]
    if (crop_h, crop_w) != (out_h, out_w):
        batch = crop if frames else crop.reshape(-1, 1, crop_h, crop_w)  # (N, C, h, w)
        crop = F.interpolate(
            batch, size=(out_h, out_w), mode="bilinear", antialias=True, align_corners=False
        ).reshape(*crop.shape[:-2], out_h, out_w)
    return crop.permute(0, 2, 3, 1).contiguous() if frames else crop.contiguous()


def fit_to_multiple(video: torch.Tensor, multiple: int = 16) -> torch.Tensor:
    """Centre-crop each spatial side to the largest multiple of ``multiple`` (no resampling).

    Args:
        video: tensor (..., H, W) of any dtype.
        multiple: spatial stride the model needs (16 for PV-VAE).
    Returns:
        tensor (..., H', W') with ``H' = multiple * (H // multiple)`` (same for W).
    Raises:
        ValueError: a side is shorter than ``multiple``.
    """
    height, width = video.shape[-2:]
    new_h, new_w = height // multiple * multiple, width // multiple * multiple
    if new_h == 0 or new_w == 0:
        raise ValueError(f"frame {height}x{width} is smaller than the multiple {multiple}")
    top, left = (height - new_h) // 2, (width - new_w) // 2
    return video[..., top : top + new_h, left : left + new_w]


def prepare_frames(frames: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> model input (1, 3, T, H', W') in [-1, 1].

    With ``size`` the short side is resized to it and a centred square cropped
    (:func:`resize_and_crop`); without it each side is centre-cropped to a multiple of 16
    (:func:`fit_to_multiple`, no resampling).
    """
    if size:
        frames = resize_and_crop(frames, size)  # (T, S, S, 3)
    return fit_to_multiple(to_model_range(frames)).unsqueeze(0)  # (1, 3, T, H', W')


def load_clip(
    path: str | Path, num_frames: int | None = None, size: int | None = None, start: int = 0
) -> torch.Tensor:
    """Read a video file as a model input (1, 3, T, H, W) in [-1, 1] (:func:`prepare_frames`)."""
    frames = read_video(path, start=start, num_frames=num_frames)  # (T, H, W, 3) uint8
    if len(frames) == 0:
        raise ValueError(f"{path}: no frame at or after frame {start}")
    return prepare_frames(frames, size)
