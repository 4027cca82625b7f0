"""Tests of pvvae.objectives.gan: the 3D patch discriminator and the pure GAN losses."""

from __future__ import annotations

import pytest
import torch

from pvvae.objectives.gan import (
    PatchDiscriminator3D,
    adaptive_weight,
    discriminator_loss,
    generator_loss,
    lecam_regularization,
    update_anchor,
)


@pytest.mark.parametrize(
    ("t", "h", "expected"),
    [(1, 32, (2, 1, 1, 2, 2)), (9, 32, (2, 1, 3, 2, 2)), (17, 64, (2, 1, 5, 6, 6))],
)
def test_discriminator_gives_patch_logits_for_images_and_clips(t, h, expected):
    disc = PatchDiscriminator3D(channels=8, num_layers=3)
    assert disc(torch.randn(2, 3, t, h, h)).shape == expected


def test_discriminator_init_and_receptive_field_is_local():
    torch.manual_seed(0)
    disc = PatchDiscriminator3D(channels=8, num_layers=2).eval()
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(abs(float(c.weight.detach().std()) - 0.02) < 0.006 for c in convs)
    x = torch.randn(1, 3, 9, 64, 64)
    y = x.clone()
    y[..., :8, :8] += 1.0  # change the top-left corner only
    with torch.no_grad():
        diff = (disc(x) - disc(y)).abs()[0, 0]  # (T', H', W')
    # patch logits answer for their own region (GroupNorm statistics leak a little globally)
    assert diff[:, 0, 0].max() > 10 * diff[:, -1, -1].max()


def test_hinge_and_non_saturating_losses_on_known_logits():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    # hinge: 0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake)))
    expected = 0.5 * ((0 + 0.5 + 2.0) / 3 + (0 + 1.0 + 2.0) / 3)
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(expected)
    assert generator_loss(fake, "hinge").item() == pytest.approx(-(-2.0 + 0.0 + 1.0) / 3)
    sp = torch.nn.functional.softplus
    ns = 0.5 * (sp(-real).mean() + sp(fake).mean())
    assert discriminator_loss(real, fake, "non_saturating").item() == pytest.approx(ns.item())
    assert generator_loss(fake, "non_saturating").item() == pytest.approx(sp(-fake).mean().item())
    # a perfect discriminator has zero hinge loss
    assert discriminator_loss(torch.full((4,), 3.0), torch.full((4,), -3.0)).item() == 0
    with pytest.raises(ValueError, match="unknown GAN loss"):
        generator_loss(fake, "wasserstein")


def test_adaptive_weight_is_the_gradient_norm_ratio_at_the_last_layer():
    torch.manual_seed(0)
    w = torch.randn(4, 3, requires_grad=True)  # the "last layer"
    h = torch.randn(5, 3)
    out = h @ w.T  # (5, 4)
    rec = out.pow(2).mean()
    gan = -(3.0 * out).mean()
    g_rec = torch.autograd.grad(rec, w, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan, w, retain_graph=True)[0]
    expected = g_rec.norm() / (g_gan.norm() + 1e-4)
    weight = adaptive_weight(rec, gan, w)
    assert weight.item() == pytest.approx(expected.item(), rel=1e-6)
    assert not weight.requires_grad
    assert adaptive_weight(rec, gan, w, max_weight=1e-3).item() == pytest.approx(1e-3)
    # the graph is kept: the losses can still be backpropagated
    (rec + weight * gan).backward()
    assert w.grad is not None


def test_lecam_regularization_and_anchor_update():
    real, fake = torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0])
    # relu(real - a_F)^2 with a_F = 0: [1, 0]; relu(a_R - fake)^2 with a_R = 1: [0.25, 0]
    assert lecam_regularization(real, fake, 1.0, 0.0).item() == pytest.approx(0.5 + 0.125)
    assert lecam_regularization(real, fake, -5.0, 5.0).item() == 0  # inside the anchors
    assert update_anchor(1.0, 3.0, 0.9) == pytest.approx(1.2)


def test_a_few_discriminator_steps_separate_real_from_fake():
    torch.manual_seed(0)
    disc = PatchDiscriminator3D(channels=8, num_layers=2)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.9))
    real = torch.rand(4, 3, 5, 32, 32) * 0.2 + 0.5  # bright, smooth
    fake = torch.rand(4, 3, 5, 32, 32) * 2 - 1  # noise
    losses = []
    for _ in range(15):
        loss = discriminator_loss(disc(real), disc(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
