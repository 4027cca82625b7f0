"""Writers of damaged video files, as a hostile user or a real dataset would supply them.

Each returns the path written and states what a decoder delivers from it (checked by
tests/data/test_video_io.py). Frames are seeded noise so that every frame costs bytes and a
cut falls inside the frame data.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_noise_video(
    path: Path,
    num_frames: int,
    height: int = 48,
    width: int = 64,
    codec: str = "libx264",
    container: str | None = None,
    options: dict[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Encode ``num_frames`` frames of uniform noise (uint8) into ``path``."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container, options=options or {}) as out:
        stream = out.add_stream(codec, rate=8)
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        for _ in range(num_frames):
            array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def _keep_prefix(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def lying_header_avi(path: Path) -> Path:
    """An AVI whose header says 40 frames but whose data decodes 17 (cut, index lost)."""
    write_noise_video(path, 40, codec="mpeg4")
    return _keep_prefix(path, 0.6)


def truncated_mp4(path: Path) -> Path:
    """A faststart mp4 of 40 frames cut at 60%: 21 frames decode, then a decoder error."""
    write_noise_video(path, 40, options={"movflags": "faststart"})
    return _keep_prefix(path, 0.6)


def size_change_video(path: Path) -> Path:
    """An MPEG-TS stream (any suffix) whose frames go from 48x64 (10) to 32x80 (10)."""
    first = write_noise_video(path.with_name(path.name + ".a"), 10, 48, 64, container="mpegts")
    second = write_noise_video(
        path.with_name(path.name + ".b"), 10, 32, 80, container="mpegts", seed=1
    )
    path.write_bytes(first.read_bytes() + second.read_bytes())
    first.unlink()
    second.unlink()
    return path


def hostile_video_tree(root: Path) -> dict[str, list[str]]:
    """A class-per-folder tree mixing good clips with every kind of damaged file.

    Returns ``{"readable": [...], "unreadable": [...]}`` (file names): readable files keep all
    their decodable frames; unreadable ones must be skipped, by name.
    """
    good = [
        write_noise_video(root / "a" / "good0.mp4", 12, seed=10),
        write_noise_video(root / "a" / "clip ünïcödé 動画.mp4", 12, seed=11),
        write_noise_video(root / "b" / "good2.mp4", 12, seed=12),
        lying_header_avi(root / "b" / "header_lies.avi"),
        truncated_mp4(root / "a" / "truncated.mp4"),
        size_change_video(root / "b" / "size_change.mkv"),
    ]
    (root / "a" / "zero_bytes.mp4").write_bytes(b"")
    (root / "b" / "random_bytes.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (root / "b" / "text.avi").write_text("not a video at all\n")
    wrong = root / "a" / "png_named.mkv"  # another container: a PNG image under a video name
    with av.open(str(wrong), "w", format="image2", options={"update": "1"}) as out:
        stream = out.add_stream("png", rate=1)
        stream.height, stream.width, stream.pix_fmt = 16, 16, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return {
        "readable": sorted([p.name for p in good] + [wrong.name]),  # the PNG: a 1-frame video
        "unreadable": sorted(["zero_bytes.mp4", "random_bytes.mp4", "text.avi"]),
    }
