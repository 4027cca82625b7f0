import pytest
import torch

from pvvae.inference.stream import group_frames, predict_chunks, reconstruct_chunks
from tests.conftest import make_micro_vae, random_video


@pytest.mark.parametrize(
    ("n", "sizes", "reals"),
    [(1, [1], [1]), (5, [5], [5]), (7, [5, 4], [5, 2]), (14, [5, 8, 4], [5, 8, 1]), (3, [5], [3])],
)
def test_group_frames_layout_and_padding(n, sizes, reals):
    frames = [torch.full((2,), float(i)) for i in range(n)]
    out = list(group_frames(iter(frames), first=5, rest=8))
    assert [len(c) for c, _ in out] == sizes and [r for _, r in out] == reals
    last, real = out[-1]
    assert torch.equal(last[real:], last[real - 1 : real].expand(len(last) - real, 2))


def _chunks(x, first=5, rest=8):
    frames = x[0].unbind(1)  # T frames (3, H, W)
    return (c.transpose(0, 1)[None] for c, _ in group_frames(frames, first, rest))


def test_reconstruct_chunks_equals_forward():
    vae, x = make_micro_vae(), random_video(1, 19)
    vae.set_chunk_size(2)
    with torch.no_grad():
        ref = vae(vae.pad_frames(x)).sample
        out = torch.cat(list(reconstruct_chunks(vae, _chunks(x))), dim=2)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("future", [0, 3, 8])
def test_predict_chunks_equals_predict(future):
    vae, x = make_micro_vae(), random_video(1, 9)
    vae.set_chunk_size(1)
    with torch.no_grad():
        ref = vae.predict(x, future)
        out = torch.cat(list(predict_chunks(vae, _chunks(x, 1, 4), lambda: future)), dim=2)
    assert out.shape[2] >= ref.shape[2]
    torch.testing.assert_close(out[:, :, : ref.shape[2]], ref, atol=1e-5, rtol=0)
