"""Data of the probing tasks (paper section 4.3): synthetic ground truth and the real formats.

Every dataset here yields dicts with ``video`` (3, T, H, W) float32 in ``[-1, 1]`` and the
targets it has:

* ``flow`` (2, T-1, H, W): forward flow ``(dx, dy)`` in pixels from frame ``i`` to ``i + 1``;
* ``next`` (3, H, W): the frame right after the clip, in ``[-1, 1]`` (never part of ``video``);
* ``tracks`` (N, T, 2) ``(x, y)`` pixel positions and ``visible`` (N, T) bool.

Pixel coordinates follow :mod:`pvvae.data.synthetic`: ``(0, 0)`` is the centre of the top-left
pixel. Resizing a frame by ``s`` maps ``x -> (x + 0.5) s - 0.5`` and scales flow by ``s``.

Sources:

* :class:`SyntheticProbeClips`: :func:`pvvae.data.synthetic.synthetic_clip` rendered with one
  extra frame (for ``next``); every target.
* :class:`SintelClips`: MPI-Sintel (Butler et al. 2012) training set,
  ``training/{clean,final}/<scene>/frame_XXXX.png`` and ``training/flow/<scene>/frame_XXXX.flo``
  (``frame_i.flo`` is the flow from ``frame_i`` to ``frame_{i+1}``); ``flow`` targets.
* :class:`TapVidDavisClips`: the released ``tapvid_davis.pkl`` of TAP-Vid (Doersch et al.
  2022): a dict ``video_name -> {"video": uint8 (T, H, W, 3), "points": float (N, T, 2)
  normalised (x, y) in [0, 1], "occluded": bool (N, T)}``; ``tracks``/``visible`` targets.
  Normalised points are converted as ``x_px = x W - 0.5`` (TAP-Vid scales by the frame size).
* :class:`NextFrameClips`: a folder of videos (UCF101 / Kinetics layout, read by
  :class:`pvvae.data.folders.VideoFolderDataset`, first frames, centre crop); ``next`` targets.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from pvvae.data.synthetic import preset_config, synthetic_clip

FLO_MAGIC = 202021.25  # first float32 of a Middlebury / Sintel .flo file ("PIEH")
SINTEL_PASSES = ("clean", "final")


# ----------------------------------------------------------------------------------------------
# Formats
# ----------------------------------------------------------------------------------------------


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury ``.flo`` file: float32 magic 202021.25, int32 width, int32 height,
    then ``height * width`` interleaved float32 ``(u, v)`` pairs in row-major order (little
    endian).

    Returns:
        (H, W, 2) float32 flow ``(u, v) = (dx, dy)`` in pixels.
    """
    raw = Path(path).read_bytes()
    if len(raw) < 12 or np.frombuffer(raw, "<f4", 1)[0] != np.float32(FLO_MAGIC):
        raise ValueError(f"{path}: not a .flo file (magic 202021.25 missing); check the path")
    width, height = (int(v) for v in np.frombuffer(raw, "<i4", 2, offset=4))
    count = 2 * width * height
    if width <= 0 or height <= 0 or len(raw) != 12 + 4 * count:
        raise ValueError(f"{path}: truncated .flo file ({width}x{height} header, "
                         f"{len(raw)} bytes); re-extract the dataset")
    return np.frombuffer(raw, "<f4", count, offset=12).reshape(height, width, 2).copy()


def write_flo(path: str | Path, flow: np.ndarray) -> Path:
    """Write (H, W, 2) flow ``(dx, dy)`` as a ``.flo`` file (inverse of :func:`read_flo`)."""
    flow = np.asarray(flow, dtype="<f4")
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"write_flo: expected (H, W, 2) flow, got {flow.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = np.array([FLO_MAGIC], "<f4").tobytes()
    header += np.array([flow.shape[1], flow.shape[0]], "<i4").tobytes()
    path.write_bytes(header + flow.tobytes())
    return path


def load_tapvid_davis(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Load TAP-Vid-DAVIS's pickle and check its layout (module docstring).

    Returns:
        ``{video_name: {"video": uint8 (T, H, W, 3), "points": (N, T, 2), "occluded": (N, T)}}``.
    """
    with open(path, "rb") as f:
        data = pickle.load(f)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty dict video_name -> record (TAP-Vid pkl)")
    for name, rec in data.items():
        missing = {"video", "points", "occluded"} - set(rec)
        if missing:
            raise ValueError(f"{path}: video {name!r} lacks {sorted(missing)}; is this TAP-Vid?")
        t = np.asarray(rec["video"]).shape[0]
        points, occluded = np.asarray(rec["points"]), np.asarray(rec["occluded"])
        if points.shape[1:] != (t, 2) or occluded.shape[1:] != (t,):
            raise ValueError(f"{path}: video {name!r}: points/occluded do not match {t} frames")
    return data


# ----------------------------------------------------------------------------------------------
# Resizing
# ----------------------------------------------------------------------------------------------


def resize_video(video: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (antialiased) resize of (C, T, H, W) frames to ``size = (H', W')``."""
    if tuple(video.shape[-2:]) == tuple(size):
        return video
    frames = video.permute(1, 0, 2, 3)  # (T, C, H, W)
    out = F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.permute(1, 0, 2, 3).contiguous()  # (C, T, H', W')


def resize_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize (2, T, H, W) flow to ``size`` and scale ``(dx, dy)`` by ``(W'/W, H'/H)``."""
    h, w = flow.shape[-2:]
    scale = torch.tensor([size[1] / w, size[0] / h]).view(2, 1, 1, 1)
    return resize_video(flow, size) * scale


def resize_points(points: Tensor, src: tuple[int, int], dst: tuple[int, int]) -> Tensor:
    """Map (..., 2) pixel positions ``(x, y)`` from an ``src = (H, W)`` frame to ``dst``."""
    scale = torch.tensor([dst[1] / src[1], dst[0] / src[0]])
    return (points + 0.5) * scale - 0.5


def uint8_to_video(frames: np.ndarray) -> Tensor:
    """uint8 (T, H, W, 3) -> float32 (3, T, H, W) in ``[-1, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------


class SyntheticProbeClips(Dataset):
    """Synthetic clips with every probing target (flow, next frame, tracks).

    Clip ``i`` is ``synthetic_clip(seed, i, preset_config(preset), num_frames=T + 1, ...)``:
    its first ``T`` frames are ``video``, frame ``T`` is ``next``; flow and tracks are cut to
    the first ``T`` frames. The default preset, ``proving_ground``, is the distribution the
    library's VAEs and Lattes train on (``data.synthetic_preset``), so the probe reads features
    of in-distribution clips; ``textured`` (textures, stripes, pixel noise) is harder.

    Args:
        num_clips: dataset length; num_frames: ``T``; size: square frame side.
        seed: stream seed (use different seeds for the probe's training and evaluation sets).
        num_tracks: point tracks per clip.
        preset: a name in :data:`pvvae.data.synthetic.SYNTHETIC_PRESETS` (others raise
            :func:`pvvae.data.synthetic.preset_config`'s one-line error).
    """

    def __init__(
        self, num_clips: int, num_frames: int = 17, size: int = 64, seed: int = 0,
        num_tracks: int = 16, preset: str = "proving_ground",
    ) -> None:
        self.num_clips, self.num_frames, self.size = num_clips, num_frames, size
        self.seed, self.num_tracks, self.preset = seed, num_tracks, preset
        self.config = preset_config(preset, num_frames=num_frames + 1, height=size, width=size,
                                    num_tracks=num_tracks)

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        t = self.num_frames
        clip = synthetic_clip(self.seed, index, self.config)
        return {
            "video": clip["video"][:, :t],  # (3, T, H, W)
            "next": clip["video"][:, t],  # (3, H, W)
            "flow": clip["flow"][:, : t - 1],  # (2, T-1, H, W)
            "tracks": clip["tracks"][:, :t],  # (N, T, 2)
            "visible": clip["visible"][:, :t],  # (N, T)
        }


class SintelClips(Dataset):
    """Clips of ``num_frames`` consecutive MPI-Sintel training frames with their flow.

    Each scene of ``T_s`` frames gives the non-overlapping clips starting at frames
    ``0, T, 2T, ...`` that fit (the last flow of a clip is that of its second-to-last frame).

    Args:
        root: the Sintel folder (holding ``training/``) or its ``training`` folder.
        pass_name: ``clean`` or ``final`` rendering.
        num_frames: ``T``; size: ``(H, W)`` to resize to (Sintel is 436 x 1024), or None.
    """

    def __init__(
        self, root: str | Path, pass_name: str = "clean", num_frames: int = 17,
        size: tuple[int, int] | None = None,
    ) -> None:
        if pass_name not in SINTEL_PASSES:
            raise ValueError(f"Sintel pass {pass_name!r}: use one of {SINTEL_PASSES}")
        root = Path(root)
        training = root / "training" if (root / "training").is_dir() else root
        image_dir, flow_dir = training / pass_name, training / "flow"
        if not image_dir.is_dir() or not flow_dir.is_dir():
            raise FileNotFoundError(
                f"{root}: expected training/{pass_name}/<scene>/*.png and training/flow/<scene>/"
                "*.flo (the MPI-Sintel training set)"
            )
        self.num_frames, self.size = num_frames, size
        self.clips: list[tuple[list[Path], list[Path]]] = []
        for scene in sorted(p for p in image_dir.iterdir() if p.is_dir()):
            frames = sorted(scene.glob("frame_*.png"))
            flows = sorted((flow_dir / scene.name).glob("frame_*.flo"))
            for s in range(0, len(frames) - num_frames + 1, num_frames):
                if len(flows) >= s + num_frames - 1:
                    self.clips.append((frames[s : s + num_frames], flows[s : s + num_frames - 1]))
        if not self.clips:
            raise ValueError(f"{root}: no Sintel scene has {num_frames} frames with flow")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        frame_paths, flow_paths = self.clips[index]
        frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in frame_paths])
        video = uint8_to_video(frames)  # (3, T, H, W)
        flow = torch.from_numpy(np.stack([read_flo(p) for p in flow_paths]))  # (T-1, H, W, 2)
        flow = flow.permute(3, 0, 1, 2).contiguous()  # (2, T-1, H, W)
        if self.size is not None:
            video, flow = resize_video(video, self.size), resize_flow(flow, self.size)
        return {"video": video, "flow": flow}


class TapVidDavisClips(Dataset):
    """The first ``num_frames`` frames of each TAP-Vid-DAVIS video with its point tracks.

    Args:
        path: ``tapvid_davis.pkl``.
        num_frames: ``T`` (videos shorter than ``T`` are skipped; DAVIS has 34..104 frames).
        size: ``(H, W)`` to resize to (TAP-Vid evaluates at 256 x 256), or None.
    """

    def __init__(
        self, path: str | Path, num_frames: int = 17, size: tuple[int, int] | None = (256, 256)
    ) -> None:
        data = load_tapvid_davis(path)
        self.records = [(k, v) for k, v in sorted(data.items()) if len(v["video"]) >= num_frames]
        if not self.records:
            raise ValueError(f"{path}: no video has {num_frames} frames; lower num_frames")
        self.num_frames, self.size = num_frames, size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        t = self.num_frames
        rec = self.records[index][1]
        video = uint8_to_video(np.asarray(rec["video"][:t]))  # (3, T, H, W)
        h, w = video.shape[-2:]
        points = torch.as_tensor(np.asarray(rec["points"])[:, :t], dtype=torch.float32)
        tracks = points * torch.tensor([w, h]) - 0.5  # (N, T, 2) pixel centres
        visible = ~torch.as_tensor(np.asarray(rec["occluded"])[:, :t], dtype=torch.bool)
        if self.size is not None:
            tracks = resize_points(tracks, (h, w), self.size)
            video = resize_video(video, self.size)
        return {"video": video, "tracks": tracks, "visible": visible}


def _frame_count(path: Path) -> int:
    """Frames of a video file, 0 when it cannot be read (such files are skipped)."""
    from pvvae.data.video_io import VideoReadError, video_info

    try:
        return video_info(path).num_frames
    except VideoReadError:
        return 0


class NextFrameClips(Dataset):
    """Clips of ``T`` frames of a video folder and the frame after them (``next``).

    Reads ``T + 1`` frames with :class:`pvvae.data.folders.VideoFolderDataset` (evaluation
    mode: first frames, short-side resize and centre crop). That dataset repeats the last frame
    of a too-short video, which would make ``next`` a copy: such videos are skipped here.

    Args:
        root: folder of videos (searched recursively); num_frames: ``T``; size: square side;
        frame_stride: step between frames.
    """

    def __init__(
        self, root: str | Path, num_frames: int = 16, size: int = 256, frame_stride: int = 1
    ) -> None:
        from pvvae.data.folders import VideoFolderDataset

        folder = VideoFolderDataset(root, num_frames + 1, frame_stride, size, train=False)
        span = num_frames * frame_stride + 1
        keep = [i for i, p in enumerate(folder.paths) if _frame_count(p) >= span]
        if not keep:
            raise ValueError(f"{root}: no video has the {span} frames a clip needs")
        self.folder, self.keep, self.num_frames = folder, keep, num_frames

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        video = self.folder[self.keep[index]]["video"]  # (3, T+1, S, S)
        return {"video": video[:, : self.num_frames], "next": video[:, self.num_frames]}
