"""End-to-end probing on synthetic clips (seconds): features of a frozen micro VAE + tiny
Latte, each task's head trained and scored against its trivial baseline."""

from __future__ import annotations

import pytest
import torch

from pvvae.probe.data import SyntheticProbeClips
from pvvae.probe.features import FeatureExtractor
from pvvae.probe.metrics import endpoint_error, frame_mse
from pvvae.probe.tasks import TASKS, build_task
from pvvae.probe.train import HeadTrainConfig, evaluate_head, extract_features, train_head


@pytest.fixture(scope="module")
def stored():
    from tests.conftest import make_micro_vae
    from tests.probe.conftest import make_latte

    ext = FeatureExtractor(make_micro_vae(), make_latte())
    data = extract_features(ext, SyntheticProbeClips(3, num_frames=5, size=32, num_tracks=6))
    return ext, data


def test_extract_features_stacks_features_and_targets(stored):
    _, data = stored
    assert data["features"].shape == (3, 32, 2, 2, 2)
    assert data["flow"].shape == (3, 2, 4, 32, 32) and data["next"].shape == (3, 3, 32, 32)
    assert data["tracks"].shape == (3, 6, 5, 2) and data["visible"].dtype == torch.bool
    assert data["last"].shape == (3, 3, 32, 32)


@pytest.mark.parametrize("name", TASKS)
def test_head_trains_on_frozen_features_and_is_scored_beside_the_baseline(stored, name):
    ext, data = stored
    task = build_task(name)
    torch.manual_seed(0)
    head = task.build_head(ext.channels, ext.spatial_factor, ext.temporal_factor, 16)
    latte_before = [p.clone() for p in ext.latte.parameters()]
    losses = train_head(task, head, data, HeadTrainConfig(steps=40, batch_size=3, lr=3e-3))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5  # it fits its 3 clips
    assert all(torch.equal(a, b) for a, b in zip(latte_before, ext.latte.parameters()))
    scores = evaluate_head(task, head, data, batch_size=2)
    assert set(scores) == {"probe", "baseline"} and task.metric in scores["probe"]


def test_baselines_are_zero_flow_copy_last_and_static_points(stored):
    _, data = stored
    flow, nxt, track = (build_task(n) for n in TASKS)
    assert flow.score(flow.baseline(data), data)["epe"] == pytest.approx(
        endpoint_error(torch.zeros_like(data["flow"]), data["flow"]).item())
    assert nxt.score(nxt.baseline(data), data)["mse"] == pytest.approx(
        frame_mse(data["last"], data["next"]).item())
    static = track.baseline(data)
    assert torch.equal(static[:, :, 0], static[:, :, -1])


def test_missing_targets_are_named(stored):
    ext, data = stored
    task = build_task("flow")
    head = task.build_head(ext.channels, ext.spatial_factor, ext.temporal_factor, 16)
    with pytest.raises(ValueError, match="needs \\['flow'\\]"):
        train_head(task, head, {k: v for k, v in data.items() if k != "flow"}, HeadTrainConfig())
    with pytest.raises(ValueError, match="unknown probing task"):
        build_task("depth")


def test_residual_next_frame_head_starts_from_the_copy_baseline(stored):
    ext, data = stored
    task = build_task("next", residual_next=True)
    head = task.build_head(ext.channels, ext.spatial_factor, ext.temporal_factor, 16)
    torch.nn.init.zeros_(head.out.weight)
    torch.nn.init.zeros_(head.out.bias)
    batch = {k: v[:2] for k, v in data.items()}
    assert torch.equal(task.predict(head, batch), task.baseline(batch))


def test_flow_head_trains_on_squared_end_point_error_by_default():
    flow = torch.zeros(1, 2, 1, 1, 2)
    pred = torch.zeros_like(flow)
    pred[0, :, 0, 0, 0] = torch.tensor([3.0, 4.0])  # EPE 5 at one of two pixels
    batch = {"flow": flow}
    assert build_task("flow").loss(pred, batch).item() == pytest.approx(12.5)  # (25 + 0) / 2
    assert build_task("flow", flow_loss="epe").loss(pred, batch).item() == pytest.approx(2.5)
    assert build_task("flow").score(pred, batch)["epe"] == pytest.approx(2.5)  # metric: EPE
    with pytest.raises(ValueError, match="flow loss 'l1': use one of"):
        build_task("flow", flow_loss="l1")
