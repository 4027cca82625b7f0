"""C3D Inception Score: the IS formula against a direct computation, the weight loading and
its errors (random weights: the UCF101 C3D weights are not available here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from pvvae.eval.metrics.inception import (
    C3D,
    c3d_probs,
    compute_is,
    inception_score_from_probs,
    load_c3d,
)


def _direct_is(probs: np.ndarray, num_splits: int) -> tuple[float, float]:
    """exp(mean KL(p(y|x) || p(y))) per part, KL by scipy's entropy, one row at a time."""
    n = len(probs)
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits : (i + 1) * n // num_splits]
        marginal = part.mean(axis=0)
        scores.append(np.exp(np.mean([entropy(row, marginal) for row in part])))
    return float(np.mean(scores)), float(np.std(scores))


def test_is_formula_matches_direct_computation():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(53, 101))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs[0, :50] = 0.0  # exact zeros must count as 0 log 0 = 0
    probs[0] /= probs[0].sum()
    ours = inception_score_from_probs(torch.from_numpy(probs), num_splits=10, shuffle_seed=None)
    np.testing.assert_allclose(ours, _direct_is(probs, 10), rtol=1e-10)
    shuffled = probs[np.random.RandomState(42).permutation(len(probs))]  # StyleGAN-V order
    default = inception_score_from_probs(probs)
    np.testing.assert_allclose(default, _direct_is(shuffled, 10), rtol=1e-10)


def test_is_known_values():
    one_hot = np.tile(np.eye(5), (4, 1))  # 20 confident samples, 5 classes evenly used
    score = inception_score_from_probs(one_hot, num_splits=2, shuffle_seed=None)
    assert score[0] == pytest.approx(5.0, rel=1e-12) and score[1] == pytest.approx(0.0, abs=1e-12)
    uniform = np.full((20, 101), 1.0 / 101)
    mean, std = inception_score_from_probs(uniform, num_splits=10)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        inception_score_from_probs(uniform[:5], num_splits=10)


@pytest.fixture(scope="module")
def random_c3d_state() -> dict[str, torch.Tensor]:
    """Randomly initialised C3D weights (without the 'mean' buffer), built once."""
    torch.manual_seed(0)
    return {k: v * 0.5 for k, v in C3D().state_dict().items() if k != "mean"}


@pytest.fixture(scope="module")
def random_c3d_file(tmp_path_factory, random_c3d_state):
    path = tmp_path_factory.mktemp("c3d") / "c3d_random.pt"
    torch.save(random_c3d_state, path)  # no 'mean': the default BGR mean is used
    return path


def test_load_and_classify_with_random_weights(random_c3d_file):
    model = load_c3d(random_c3d_file)
    assert sum(p.numel() for p in model.parameters()) == 78_409_573  # C3D v1.0, 101 classes
    assert not model.training and all(not p.requires_grad for p in model.parameters())
    videos = torch.rand(2, 3, 16, 32, 40, generator=torch.Generator().manual_seed(1)) * 2 - 1
    probs = c3d_probs(iter([videos[:1], videos[1:]]), model)  # an iterable of batches
    assert probs.shape == (2, 101) and torch.isfinite(probs).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="16"):
        model(torch.zeros(1, 3, 8, 112, 112))


class _PooledColour(torch.nn.Module):
    """Cheap stand-in for the C3D (same call signature): mean colour -> 101 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 101)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(dim=(2, 3, 4))) * 20.0


def test_compute_is_agrees_with_the_formula():
    torch.manual_seed(3)
    stub = _PooledColour()
    videos = torch.rand(20, 3, 16, 4, 4) * 2 - 1
    probs = c3d_probs(videos, stub, batch_size=7).numpy()
    shuffled = probs[np.random.RandomState(42).permutation(20)]
    np.testing.assert_allclose(compute_is(videos, stub, num_splits=4), _direct_is(shuffled, 4),
                               rtol=1e-6)


def test_preprocessing_is_bgr_scaled_and_mean_subtracted():
    model = C3D()
    red = torch.zeros(1, 3, 16, 20, 20)
    red[:, 0] = 1.0  # RGB (1, 0, 0) in [-1, 1] -> BGR (128, 128, 256) before the mean
    out = model.preprocess(red)
    assert out.shape == (1, 3, 16, 112, 112)
    expected = torch.tensor([128.0 - 90.25164795, 128.0 - 97.65701294, 256.0 - 101.4083252])
    torch.testing.assert_close(out[0, :, 3, 50, 60], expected)


def test_chainer_npz_loads(tmp_path, random_c3d_state):
    arrays = {
        k.replace(".weight", "/W").replace(".bias", "/b"): v.numpy()
        for k, v in random_c3d_state.items()
    }
    np.savez(tmp_path / "conv3d_deepnetA_ucf.npz", **arrays)
    model = load_c3d(tmp_path / "conv3d_deepnetA_ucf.npz")
    assert torch.equal(model.conv3b.weight, random_c3d_state["conv3b.weight"])
    assert torch.equal(model.fc8.bias, random_c3d_state["fc8.bias"])
    default_mean = torch.tensor([90.25164795, 97.65701294, 101.4083252])
    assert torch.equal(model.mean[:, 0, 0, 0], default_mean)


def test_missing_and_mismatched_weights(tmp_path, random_c3d_state):
    with pytest.raises(FileNotFoundError, match="conv1a.weight"):
        load_c3d(tmp_path / "c3d_ucf101.pt")
    state = dict(random_c3d_state)
    state["fc8.weight"] = torch.zeros(400, 4096)  # a Kinetics head, not UCF101
    state["extra.weight"] = torch.zeros(1)
    del state["conv5b.bias"]
    torch.save(state, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match=r"fc8\.weight") as info:
        load_c3d(tmp_path / "wrong.pt")
    assert "extra.weight" in str(info.value) and "conv5b.bias" in str(info.value)
