import pytest
import torch
from scipy import stats

from pvvae.objectives.predictive import (
    max_dropped_groups,
    num_groups,
    predictive_reconstruction,
    sample_num_dropped,
)
from tests.conftest import make_micro_vae, random_video


def test_groups():
    assert num_groups(17) == 5 and num_groups(1) == 1 and num_groups(33) == 9
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        num_groups(16)


@pytest.mark.parametrize("r, k_max", [(1.0, 4), (0.75, 3), (0.5, 2), (0.3, 1), (0.0, 0)])
def test_max_dropped(r, k_max):
    assert max_dropped_groups(5, r) == k_max


@pytest.mark.parametrize("r", [1.0, 0.75, 0.5])
def test_k_is_uniform_over_the_allowed_range(r):
    g = torch.Generator().manual_seed(0)
    k_max = max_dropped_groups(5, r)
    draws = [sample_num_dropped(5, r, g) for _ in range(4000)]
    counts = torch.bincount(torch.tensor(draws), minlength=k_max + 1)
    assert len(counts) == k_max + 1  # never above floor((G - 1) r)
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3  # uniform over {0..k_max}


def test_encoder_sees_exactly_the_observed_frames():
    vae = make_micro_vae()
    seen = []
    vae.encoder.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[2]))
    x = random_video(1, 13, 16, 16)
    for k in range(4):
        with torch.no_grad():
            out = predictive_reconstruction(vae, x, k)
        assert seen[-1] == 13 - 4 * k == out.num_observed_frames
        assert out.posterior.mean.shape[2] == 4 - k
        assert out.x_hat.shape == x.shape


def test_pad_token_receives_gradients():
    vae = make_micro_vae().train()
    out = predictive_reconstruction(vae, random_video(1, 17), k=2)
    out.x_hat.pow(2).mean().backward()
    assert vae.pad_token.grad is not None and vae.pad_token.grad.abs().sum() > 0


def test_no_drop_is_plain_reconstruction():
    vae = make_micro_vae()
    x = random_video(2, 9)
    with torch.no_grad():
        out = predictive_reconstruction(vae, x, k=0, sample_posterior=False)
        # 1e-4: a one-frame first chunk convolves with time-summed kernels (other rounding)
        torch.testing.assert_close(out.x_hat, vae(x).sample, atol=1e-4, rtol=0)
    g = torch.Generator().manual_seed(0)
    assert all(sample_num_dropped(3, 0.0, g) == 0 for _ in range(50))


def test_gaussian_padding_uses_the_generator():
    vae = make_micro_vae(pad_mode="gaussian")
    z = torch.zeros(1, 8, 2, 2, 2)
    a = vae.pad_latents(z, 3, torch.Generator().manual_seed(1))
    b = vae.pad_latents(z, 3, torch.Generator().manual_seed(1))
    assert a.shape == (1, 8, 5, 2, 2) and torch.equal(a, b)
    assert abs(float(a[:, :, 2:].std()) - 1.0) < 0.5


def test_learnable_padding_broadcasts_the_token():
    vae = make_micro_vae()
    padded = vae.pad_latents(torch.zeros(2, 8, 1, 3, 3), 2)
    assert torch.equal(padded[1, :, 2, 1, 1], vae.pad_token.detach())
