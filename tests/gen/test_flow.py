"""Tests of pvvae.gen.flow: path, loss, time samplers, Euler/Heun samplers, overfitting."""

from __future__ import annotations

import math
import time

import pytest
import torch

from pvvae.gen import (
    SAMPLERS,
    Latte,
    flow_matching_loss,
    interpolate,
    sample_euler,
    sample_heun,
    sample_t_logit_normal,
    sample_t_uniform,
    target_velocity,
    time_grid,
)


def straight_pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(2, 4, 3, 4, 4, generator=g)
    eps = torch.randn(2, 4, 3, 4, 4, generator=g)
    return x0, eps


def test_path_endpoints_and_target() -> None:
    x0, eps = straight_pair()
    torch.testing.assert_close(interpolate(x0, eps, torch.zeros(2)), x0)
    torch.testing.assert_close(interpolate(x0, eps, torch.ones(2)), eps)
    t = torch.tensor([0.25, 0.8])
    dt = 1e-3
    finite_diff = (interpolate(x0, eps, t + dt) - interpolate(x0, eps, t)) / dt
    torch.testing.assert_close(finite_diff, target_velocity(x0, eps), rtol=1e-2, atol=1e-2)


def test_loss_is_mse_of_velocity() -> None:
    x0, eps = straight_pair()
    t = torch.tensor([0.3, 0.9])
    seen = {}

    def model(x, t_, y):
        seen["x"], seen["t"] = x, t_
        return torch.zeros_like(x)

    loss, metrics = flow_matching_loss(model, x0, t=t, eps=eps)
    torch.testing.assert_close(seen["x"], interpolate(x0, eps, t))
    torch.testing.assert_close(loss, (eps - x0).square().mean())
    assert set(metrics) == {"loss", "t_mean", "v_target_sq", "v_pred_sq"}
    exact, _ = flow_matching_loss(lambda x, t_, y: eps - x0, x0, t=t, eps=eps)
    assert exact.item() == 0.0


def test_loss_reproducible_with_generator() -> None:
    x0, _ = straight_pair()
    model = lambda x, t, y: x * t.view(-1, 1, 1, 1, 1)  # noqa: E731
    for name in ("uniform", "logit_normal"):
        a, _ = flow_matching_loss(
            model, x0, t_sampler=name, generator=torch.Generator().manual_seed(1)
        )
        b, _ = flow_matching_loss(
            model, x0, t_sampler=name, generator=torch.Generator().manual_seed(1)
        )
        c, _ = flow_matching_loss(
            model, x0, t_sampler=name, generator=torch.Generator().manual_seed(2)
        )
        assert a.item() == b.item() != c.item()


def test_t_samplers() -> None:
    g = torch.Generator().manual_seed(0)
    u = sample_t_uniform(20000, generator=g)
    assert u.shape == (20000,) and u.min() >= 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.01
    t = sample_t_logit_normal(20000, generator=g)
    assert t.min() > 0 and t.max() < 1
    assert abs(t.median().item() - 0.5) < 0.01
    t = sample_t_logit_normal(20000, mean=1.0, std=0.5, generator=g)
    assert abs(t.median().item() - 1 / (1 + math.exp(-1.0))) < 0.01
    # logit(t) is N(mean, std)
    logit = torch.log(t / (1 - t))
    assert abs(logit.std().item() - 0.5) < 0.02


@pytest.mark.parametrize("num_steps", [1, 2, 7, 100])
@pytest.mark.parametrize("name", ["euler", "heun"])
def test_sampler_recovers_x0_on_straight_path(num_steps: int, name: str) -> None:
    x0, eps = straight_pair()
    x = SAMPLERS[name](lambda x, t, y: eps - x0, eps, num_steps=num_steps)
    torch.testing.assert_close(x, x0, rtol=1e-5, atol=1e-5)


def test_euler_direction_and_grid() -> None:
    """dx/dt = x integrated from t=1 to 0 by Euler gives x (1 - 1/N)^N exactly."""
    x = torch.randn(1, 2, 1, 2, 2)
    seen = []

    def model(x_, t, y):
        seen.append(t[0].item())
        return x_

    out = sample_euler(model, x, num_steps=10)
    torch.testing.assert_close(out, x * 0.9**10)
    assert seen[0] == 1.0 and seen[-1] == pytest.approx(0.1)
    grid = time_grid(4)
    assert grid.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    shifted = time_grid(4, shift=3.0)
    assert shifted[0] == 1 and shifted[-1] == 0 and (shifted[1:-1] > grid[1:-1]).all()


def test_heun_is_second_order() -> None:
    """On dx/dt = x, Heun's error shrinks ~4x when the steps double; Euler's only ~2x."""
    x = torch.ones(1, 1, 1, 1, 1, dtype=torch.float64)
    exact = math.exp(-1.0)

    def err(sampler, n):
        return abs(sampler(lambda x_, t, y: x_, x, num_steps=n).item() - exact)

    assert 3.5 < err(sample_heun, 10) / err(sample_heun, 20) < 4.5
    assert 1.8 < err(sample_euler, 10) / err(sample_euler, 20) < 2.2


def test_sampler_classifier_free_guidance() -> None:
    x0, eps = straight_pair()
    y, y_null = torch.tensor([1, 2]), torch.tensor([9, 9])
    v_by_label = torch.randn(10, *x0.shape[1:])  # a constant velocity per label
    calls = []

    def model(x, t, y_):
        calls.append(y_.tolist())
        return v_by_label[y_]

    v_c, v_u = v_by_label[y], v_by_label[y_null]
    out = sample_euler(model, eps, num_steps=3, y=y, y_null=y_null, guidance_scale=3.0)
    torch.testing.assert_close(out, eps - (v_u + 3.0 * (v_c - v_u)))
    assert calls[0] == [1, 2, 9, 9] and len(calls) == 3  # one batched call per step
    calls.clear()
    out = sample_heun(model, eps, num_steps=3, y=y, guidance_scale=1.0)
    torch.testing.assert_close(out, eps - v_c)
    assert calls[0] == [1, 2] and len(calls) == 6  # no null pass when w = 1
    with pytest.raises(ValueError):
        sample_euler(model, eps, num_steps=3, y=y, guidance_scale=2.0)  # no null label


def test_sampler_with_latte_and_cfg() -> None:
    torch.manual_seed(0)
    model = Latte.from_preset("tiny", num_classes=3).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    noise, y = torch.randn(2, 8, 3, 4, 4), torch.tensor([0, 2])
    out = sample_euler(model, noise, num_steps=4, y=y, guidance_scale=2.0)  # null from model
    x = noise
    for t, t_next in zip([1.0, 0.75, 0.5, 0.25], [0.75, 0.5, 0.25, 0.0]):
        with torch.no_grad():
            x = x + (t_next - t) * model.forward_with_cfg(x, torch.full((2,), t), y, 2.0)
    torch.testing.assert_close(out, x, rtol=1e-4, atol=1e-5)


def test_tiny_latte_overfits_a_few_clips() -> None:
    """A tiny Latte memorises 4 random latent clips (C=8, t=3, 8x8): loss drops by > 5x.

    Each clip keeps one fixed noise (a fixed coupling, as in reflow) while t is drawn afresh
    every step, so the best achievable loss is 0 and memorisation shows within a few hundred
    CPU steps. (With fresh noise every step the optimum is a posterior mean whose loss a
    seconds-long run cannot bring near 0.)
    """
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 8, 3, 8, 8, generator=g)  # (B, C, t, h, w)
    eps = torch.randn(4, 8, 3, 8, 8, generator=g)
    model = Latte.from_preset("tiny")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    t_eval = torch.linspace(0.02, 0.98, 8).repeat_interleave(4)  # (32,)

    def eval_loss() -> float:
        with torch.no_grad():
            loss, _ = flow_matching_loss(
                model, x0.repeat(8, 1, 1, 1, 1), t=t_eval, eps=eps.repeat(8, 1, 1, 1, 1)
            )
        return loss.item()

    start = time.perf_counter()
    before = eval_loss()
    for _ in range(200):
        loss, _ = flow_matching_loss(model, x0, eps=eps, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    after = eval_loss()
    print(f"overfit: {before:.3f} -> {after:.3f} in {time.perf_counter() - start:.1f}s")
    assert before > 1.5  # zero-initialised model: E|eps - x0|^2 = 2
    assert after < before / 5
