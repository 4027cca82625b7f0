import math

import torch

from pvvae.model.distributions import DiagonalGaussian


def _posterior(seed: int = 0, **kw) -> DiagonalGaussian:
    g = torch.Generator().manual_seed(seed)
    return DiagonalGaussian(torch.randn(2, 8, 3, 2, 2, generator=g), **kw)


def test_var_std_and_kl_to_standard_normal_match_torch():
    q = _posterior()
    torch.testing.assert_close(q.var, q.std**2)
    ref = torch.distributions.Normal(q.mean, q.std)
    std_normal = torch.distributions.Normal(torch.zeros_like(q.mean), torch.ones_like(q.mean))
    expected = torch.distributions.kl_divergence(ref, std_normal).flatten(1).sum(1)
    torch.testing.assert_close(q.kl(), expected)


def test_kl_between_posteriors_and_nll_match_torch():
    q, p = _posterior(0), _posterior(1)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(q.mean, q.std), torch.distributions.Normal(p.mean, p.std)
    )
    torch.testing.assert_close(q.kl(p), expected.flatten(1).sum(1))
    assert torch.allclose(q.kl(q), torch.zeros(2), atol=1e-5)
    z = q.sample(torch.Generator().manual_seed(2))
    log_prob = torch.distributions.Normal(q.mean, q.std).log_prob(z)
    torch.testing.assert_close(q.nll(z), -log_prob.flatten(1).sum(1))
    torch.testing.assert_close(q.nll(z, dims=(1, 3, 4)), -log_prob.sum((1, 3, 4)))
    assert math.isfinite(float(q.nll(z).sum()))


def test_deterministic_is_a_point_mass():
    q = _posterior(deterministic=True)
    assert torch.equal(q.sample(), q.mean) and torch.count_nonzero(q.std) == 0
    assert torch.equal(q.kl(), torch.zeros(2)) and torch.equal(q.nll(q.mean), torch.zeros(2))
