"""Probing heads: output sizes (causal temporal unshuffle, pixel shuffle) and the tracking
head's query read-out and soft-argmax."""

from __future__ import annotations

import pytest
import torch

from pvvae.probe.heads import DenseHead, TrackHead, sample_query_embeddings


@pytest.mark.parametrize("spatial, temporal, t", [(16, 4, 3), (8, 4, 1), (2, 1, 4)])
def test_dense_head_upsamples_to_the_input_resolution(spatial, temporal, t):
    head = DenseHead(12, 2, spatial, temporal, width=16)
    out = head(torch.randn(2, 12, t, 2, 3))
    assert out.shape == (2, 2, 1 + temporal * (t - 1), 2 * spatial, 3 * spatial)


def test_dense_head_rejects_non_power_of_two_factors():
    with pytest.raises(ValueError, match="power of two"):
        DenseHead(4, 2, 12, 4)


def test_query_embeddings_are_read_bilinearly_at_the_query_frame():
    emb = torch.zeros(1, 2, 3, 4, 5)  # (B, E, T, H, W)
    xs = torch.arange(5.0).view(1, 5).expand(4, 5)
    emb[0, 0, 2] = xs  # channel 0 of frame 2 holds x
    emb[0, 1, 2] = 10.0  # channel 1 of frame 2 is constant
    out = sample_query_embeddings(emb, torch.tensor([[2, 0]]), torch.tensor([[1.5, 2.0], [3, 1]]))
    assert torch.allclose(out[0, 0], torch.tensor([1.5, 10.0]))
    assert torch.allclose(out[0, 1], torch.zeros(2))  # frame 0 is all zeros


class Fixed(torch.nn.Module):
    """A stand-in decoder returning a fixed embedding."""

    def __init__(self, emb: torch.Tensor) -> None:
        super().__init__()
        self.emb = emb

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.emb


def test_track_head_finds_a_point_with_a_one_hot_embedding():
    """With an embedding that is one-hot at the point's position in every frame and a sharp
    temperature, the soft-argmax returns the point's position."""
    head = TrackHead(4, 2, 1, width=16, embed_dim=3)
    path = [(1, 1), (2, 1), (3, 2)]  # (x, y) in frames 0, 1, 2 of a 4x5 frame
    emb = torch.zeros(1, 3, 3, 4, 5)
    emb[:, 1] = 1.0  # a background channel
    for t, (x, y) in enumerate(path):
        emb[0, :, t, y, x] = torch.tensor([1.0, 0.0, 0.0])
    head.dense = Fixed(emb)  # bypass the decoder: test the read-out only
    with torch.no_grad():
        head.log_temperature.fill_(-5.0)
        pred = head(torch.zeros(1, 4, 3, 2, 3), torch.tensor([[0]]), torch.tensor([[[1.0, 1.0]]]))
    assert pred.shape == (1, 1, 3, 2)
    assert torch.allclose(pred[0, 0], torch.tensor(path, dtype=torch.float32), atol=1e-3)


def test_windowed_tracker_follows_a_one_hot_path_and_global_mode_still_works():
    path = [(1, 1), (2, 1), (3, 2)]
    emb = torch.zeros(1, 3, 3, 4, 5)
    emb[:, 1] = 1.0
    for t, (x, y) in enumerate(path):
        emb[0, :, t, y, x] = torch.tensor([1.0, 0.0, 0.0])
    for window in (0.5, None):
        head = TrackHead(4, 2, 1, width=16, embed_dim=3, window=window)
        head.dense = Fixed(emb)
        with torch.no_grad():
            head.log_temperature.fill_(-5.0)
            pred = head(torch.zeros(1, 4, 3, 2, 3), torch.tensor([[0]]),
                        torch.tensor([[[1.0, 1.0]]]))
        assert torch.allclose(pred[0, 0], torch.tensor(path, dtype=torch.float32), atol=1e-2)


def test_windowed_tracker_stays_put_where_the_embedding_is_uninformative():
    """A constant embedding carries no position: the window keeps the query point (the static
    baseline), where the global soft-argmax falls to the frame's centre."""
    emb = torch.ones(1, 3, 4, 9, 9)
    query = torch.tensor([[[2.0, 6.0]]])
    windowed = TrackHead(4, 2, 1, width=16, embed_dim=3, window=0.1)
    plain = TrackHead(4, 2, 1, width=16, embed_dim=3, window=None)
    for head in (windowed, plain):
        head.dense = Fixed(emb)
    with torch.no_grad():
        stay = windowed(torch.zeros(1, 4, 4, 2, 3), torch.tensor([[1]]), query)
        drift = plain(torch.zeros(1, 4, 4, 2, 3), torch.tensor([[1]]), query)
    assert torch.allclose(stay[0, 0, 1:], query[0].expand(3, 2), atol=0.05)
    assert torch.allclose(drift[0, 0, 2], torch.tensor([4.0, 4.0]), atol=1e-3)


def test_zero_output_heads_start_at_the_trivial_baselines():
    from pvvae.probe.tasks import build_task

    features = torch.randn(1, 8, 3, 2, 2)
    flow = build_task("flow").build_head(8, 4, 4, 16)
    assert torch.count_nonzero(flow(features)) == 0  # zero flow
    nxt = build_task("next", residual_next=True).build_head(8, 4, 4, 16)
    assert torch.count_nonzero(nxt(features)) == 0  # copy last frame
    plain = build_task("next").build_head(8, 4, 4, 16)
    assert torch.count_nonzero(plain(features)) > 0
