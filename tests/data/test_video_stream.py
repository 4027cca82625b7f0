import torch

from pvvae.data.samples import sample_video_path
from pvvae.data.video_io import read_video, write_video
from pvvae.data.video_stream import VideoWriter, iter_frames


def test_iter_frames_equals_read_video():
    path = sample_video_path("bikes")
    frames = torch.stack(list(iter_frames(path, start=3, num_frames=4)))
    assert torch.equal(frames, read_video(path, start=3, num_frames=4))
    strided = torch.stack(list(iter_frames(path, start=5, num_frames=4, stride=3)))
    assert torch.equal(strided, read_video(path)[5:15:3])


def test_empty_read_keeps_the_frame_size():
    path = sample_video_path("bikes")
    first = next(iter_frames(path))  # (H, W, 3)
    assert list(iter_frames(path, num_frames=0)) == []
    assert read_video(path, num_frames=0).shape == (0, *first.shape)
    assert read_video(path, start=10**6).shape == (0, *first.shape)


def test_writer_in_chunks_equals_write_video(tmp_path):
    video = torch.rand(3, 9, 32, 48) * 2 - 1
    write_video(tmp_path / "whole.mp4", video, fps=8)
    with VideoWriter(tmp_path / "chunks.mp4", fps=8) as writer:
        for chunk in video.split([1, 4, 4], dim=1):
            writer.write(chunk)
    assert writer.frames_written == 9
    assert torch.equal(read_video(tmp_path / "chunks.mp4"), read_video(tmp_path / "whole.mp4"))
