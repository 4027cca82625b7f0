import torch

from pvvae.model.distributions import DiagonalGaussian
from pvvae.objectives.losses import (
    LossWeights,
    compose_loss,
    kl_loss,
    motion_loss,
    mse_loss,
    observed_and_predicted_mse,
)


def test_losses_vanish_on_identical_inputs():
    x = torch.randn(2, 3, 5, 8, 8)
    assert mse_loss(x, x) == 0 and motion_loss(x, x) == 0
    zero_post = DiagonalGaussian(torch.zeros(2, 8, 2, 2, 2))  # mean 0, logvar 0: N(0, I)
    assert kl_loss(zero_post) == 0


def test_motion_loss_ignores_static_offsets_and_sees_motion():
    x = torch.randn(1, 3, 5, 8, 8)
    assert motion_loss(x + 0.5, x) < 1e-12  # a constant error has no temporal difference
    moved = x.clone()
    moved[:, :, 3:] = torch.roll(moved[:, :, 3:], 1, dims=-1)
    assert motion_loss(moved, x) > 0.1
    assert motion_loss(x[:, :, :1], x[:, :, :1]) == 0  # images have no motion term


def test_kl_matches_closed_form():
    mean, logvar = torch.full((1, 1, 1, 1, 1), 2.0), torch.full((1, 1, 1, 1, 1), 0.5)
    post = DiagonalGaussian(torch.cat([mean, logvar], dim=1))
    expected = 0.5 * (4.0 + torch.exp(torch.tensor(0.5)) - 1 - 0.5)
    torch.testing.assert_close(kl_loss(post), expected)


def test_composition_of_eq1():
    terms = {
        k: torch.tensor(v) for k, v in dict(mse=1.0, diff=2.0, lpips=3.0, gan=4.0, kl=5.0).items()
    }
    w = LossWeights(lambda_rec=2.0, lambda_lpips=0.5, lambda_gan=0.1, lambda_kl=0.01)
    torch.testing.assert_close(compose_loss(terms, w), torch.tensor(2 * 3 + 1.5 + 0.4 + 0.05))
    w.motion_loss = False
    torch.testing.assert_close(compose_loss(terms, w), torch.tensor(2 * 1 + 1.5 + 0.4 + 0.05))
    assert compose_loss({"mse": torch.tensor(1.0)}, LossWeights()) == 1.0


def test_observed_and_predicted_split():
    target = torch.zeros(1, 3, 9, 4, 4)
    pred = target.clone()
    pred[:, :, 5:] = 1.0
    out = observed_and_predicted_mse(pred, target, 5)
    assert out == {"mse_observed": 0.0, "mse_predicted": 1.0}
    assert "mse_predicted" not in observed_and_predicted_mse(pred, target, 9)
