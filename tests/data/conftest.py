"""Fixtures of the data tests: tiny video folders written with the synthetic generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pvvae.data.synthetic import synthetic_clip
from pvvae.data.video_io import write_video


def write_clip(path: Path, index: int, num_frames: int = 12, height: int = 48, width: int = 64):
    """Write synthetic clip ``index`` as an mp4 at ``path`` and return the path."""
    video = synthetic_clip(7, index, num_frames=num_frames, height=height, width=width,
                           annotations=False)["video"]
    return write_video(path, video, fps=8)


@pytest.fixture(scope="session")
def video_tree(tmp_path_factory) -> Path:
    """UCF101-like tree: two classes of two clips, one corrupt file, one short clip, a note.

    Layout (sorted): a_jump/{c0.mp4, c1.mp4, c2_broken.mp4}, b_walk/{c3.mp4, nested/c4_short.mp4},
    README.txt.
    """
    root = tmp_path_factory.mktemp("videos")
    write_clip(root / "a_jump" / "c0.mp4", 0, num_frames=24)
    write_clip(root / "a_jump" / "c1.mp4", 1)
    (root / "a_jump" / "c2_broken.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    write_clip(root / "b_walk" / "c3.mp4", 3)
    write_clip(root / "b_walk" / "nested" / "c4_short.mp4", 4, num_frames=5)
    (root / "README.txt").write_text("not a video")
    return root
