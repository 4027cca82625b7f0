"""Probing metrics against hand-computed cases (EPE, MSE, TAP-Vid query-first accuracy, AUC)."""

from __future__ import annotations

import pytest
import torch

from pvvae.probe.metrics import (
    endpoint_error,
    evaluation_mask,
    frame_mse,
    query_first,
    tracking_metrics,
)


def test_epe_is_the_mean_euclidean_norm_of_the_difference():
    target = torch.zeros(1, 2, 1, 1, 2)
    pred = torch.tensor([[3.0, 0.0], [4.0, 1.0]]).view(1, 2, 1, 1, 2)  # errors (3,4)->5, (0,1)->1
    assert endpoint_error(pred, target).item() == pytest.approx(3.0)
    valid = torch.tensor([True, False]).view(1, 1, 1, 2)
    assert endpoint_error(pred, target, valid).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="no pixel"):
        endpoint_error(pred, target, torch.zeros_like(valid))


def test_epe_gradient_is_finite_where_the_flow_is_exact():
    # A zero-initialised flow head predicts exactly 0; static pixels then have zero error.
    pred = torch.zeros(1, 2, 1, 1, 2, requires_grad=True)
    target = torch.tensor([[0.0, 3.0], [0.0, 4.0]]).view(1, 2, 1, 1, 2)
    endpoint_error(pred, target).backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[..., 0].abs().max() == 0.0  # exact pixel: no push


def test_frame_mse_is_in_unit_range_units():
    pred = torch.full((1, 3, 2, 2), 1.0)  # white in [-1, 1]
    target = torch.full((1, 3, 2, 2), -1.0)  # black: error 1 in [0, 1] units
    assert frame_mse(pred, target).item() == pytest.approx(1.0)
    assert frame_mse(pred, pred).item() == 0.0


def test_query_first_and_evaluation_mask():
    visible = torch.tensor([[False, True, True, False, True], [False] * 5])
    query_t, has_query = query_first(visible)
    assert query_t.tolist()[0] == 1 and has_query.tolist() == [True, False]
    mask = evaluation_mask(visible, query_t, has_query)
    # the query frame itself and occluded frames are not scored; a never-visible track is not
    assert mask.tolist() == [[False, False, True, False, True], [False] * 5]


def test_tracking_metrics_hand_computed():
    """One video, one track, 256x256 frame: frames 1..3 are scored with errors 0.5, 3, 12 px."""
    tracks = torch.zeros(1, 1, 4, 2)
    visible = torch.ones(1, 1, 4, dtype=torch.bool)
    pred = tracks.clone()
    pred[0, 0, 0] = torch.tensor([100.0, 0.0])  # the query frame: ignored whatever its error
    pred[0, 0, 1] = torch.tensor([0.5, 0.0])
    pred[0, 0, 2] = torch.tensor([0.0, 3.0])
    pred[0, 0, 3] = torch.tensor([12.0, 0.0])
    m = tracking_metrics(pred, tracks, visible, 256, 256)
    # AUC = mean(max(0, 1 - e / 10)) = (0.95 + 0.7 + 0) / 3
    assert m["auc"] == pytest.approx(100 * 1.65 / 3)
    # accuracy < delta at delta = 0..10: 0 at 0, 1/3 for 1..3, 2/3 for 4..10
    assert m["curve"] == pytest.approx([0.0] + [100 / 3] * 3 + [200 / 3] * 7)
    # TAP-Vid thresholds 1, 2, 4, 8, 16 -> 1/3, 1/3, 2/3, 2/3, 1
    assert m["average_pts_within_thresh"] == pytest.approx(100 * (1 + 1 + 2 + 2 + 3) / 15)
    assert m["num_points"] == 3 and m["num_videos"] == 1


def test_tracking_metrics_scale_to_256_and_average_over_videos():
    """A 64x128 frame: 1 px in x is 2 px at 256 scale, 1 px in y is 4 px; video means."""
    tracks = torch.zeros(2, 1, 2, 2)
    visible = torch.ones(2, 1, 2, dtype=torch.bool)
    pred = tracks.clone()
    pred[0, 0, 1] = torch.tensor([1.0, 0.0])  # 2 px -> 0.8
    pred[1, 0, 1] = torch.tensor([0.0, 1.0])  # 4 px -> 0.6
    m = tracking_metrics(pred, tracks, visible, height=64, width=128)
    assert m["auc"] == pytest.approx(70.0)
    visible[1] = False  # the second video has nothing to score: it leaves the average
    m = tracking_metrics(pred, tracks, visible, height=64, width=128)
    assert m["auc"] == pytest.approx(80.0) and m["num_videos"] == 1
    with pytest.raises(ValueError, match="no track"):
        tracking_metrics(pred, tracks, torch.zeros_like(visible), 64, 128)
