"""Probes of a generator step (gan_lib.train.probes) against closed forms and scipy quadrature."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.stats import norm

from gan_lib.train import fd_gradient, frozen_gradient


def kl_gauss(mu: float, sigma: float, m: float, s: float) -> float:
    """KL(N(mu, sigma^2) || N(m, s^2)), closed form."""
    return math.log(s / sigma) + (sigma**2 + (mu - m) ** 2) / (2 * s**2) - 0.5


def kl_gauss_grad(mu: float, sigma: float, m: float, s: float) -> np.ndarray:
    """Its gradient in (mu, log sigma), by hand: ((mu - m)/s^2, sigma^2/s^2 - 1)."""
    return np.array([(mu - m) / s**2, sigma**2 / s**2 - 1.0])


@pytest.mark.parametrize(("mu", "sigma", "m", "s"), [(0.3, 0.75, -0.5, 1.2), (2.0, 0.2, 0.0, 1.0), (-1.0, 3.0, 1.0, 0.5)])
def test_fd_gradient_of_the_gaussian_kl(mu: float, sigma: float, m: float, s: float) -> None:
    got = fd_gradient(lambda a, b: kl_gauss(a, b, m, s), mu, sigma)
    np.testing.assert_allclose(got, kl_gauss_grad(mu, sigma, m, s), rtol=0, atol=5e-9)   # O(eps^2) error, 2.4e-9 at worst


@pytest.mark.parametrize(("mu", "sigma", "m", "s"), [(0.3, 0.75, -0.5, 1.2), (1.0, 0.5, 0.0, 1.0)])
def test_frozen_gradient_of_the_reverse_kl_loss_is_the_kl_gradient(mu: float, sigma: float, m: float, s: float) -> None:
    # With V = log p - log q frozen, E_Q[-V] has the gradient of KL(Q || P): the term from q's own
    # parameters has mean zero. For P Gaussian, that gradient is the closed form above.
    p = torch.distributions.Normal(torch.tensor(m, dtype=torch.float64), torch.tensor(s, dtype=torch.float64))
    got = frozen_gradient(lambda v: -v, p.log_prob, mu, sigma)
    np.testing.assert_allclose(got, kl_gauss_grad(mu, sigma, m, s), rtol=0, atol=1e-13)


def test_frozen_gradient_of_the_non_saturating_loss_against_scipy_quadrature() -> None:
    # A two-component data mixture and the loss softplus(-V): differentiate
    # theta -> E_{N(mu, sigma^2)}[softplus(-V0(x))] with V0 fixed at theta0, by central differences
    # of scipy's adaptive quadrature in x (a different rule, in a different variable).
    w, means, stds = (0.7, 0.3), (-1.2, 1.2), (0.6, 0.6)
    mu0, sigma0 = 0.3, 0.75

    def log_p(x):
        return np.log(sum(wk * norm.pdf(x, mk, sk) for wk, mk, sk in zip(w, means, stds)))

    def loss_mean(mu, sigma):
        def integrand(x):
            v0 = log_p(x) - norm.logpdf(x, mu0, sigma0)
            return norm.pdf(x, mu, sigma) * np.logaddexp(0.0, -v0)
        return quad(integrand, -15, 15, epsabs=1e-13, epsrel=1e-13, limit=200)[0]

    e = 1e-4
    want = np.array([
        (loss_mean(mu0 + e, sigma0) - loss_mean(mu0 - e, sigma0)) / (2 * e),
        (loss_mean(mu0, sigma0 * math.exp(e)) - loss_mean(mu0, sigma0 * math.exp(-e))) / (2 * e),
    ])
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=torch.tensor(w, dtype=torch.float64)),
        torch.distributions.Normal(torch.tensor(means, dtype=torch.float64), torch.tensor(stds, dtype=torch.float64)),
    )
    got = frozen_gradient(lambda v: torch.nn.functional.softplus(-v), mix.log_prob, mu0, sigma0)
    np.testing.assert_allclose(got, want, rtol=0, atol=3e-9)   # the reference's own differencing error is ~1e-9
    assert np.abs(want).min() > 1e-2   # a real gradient, not two zeros agreeing


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fd_gradient(lambda a, b: 0.0, 0.0, 0.0), r"sigma=0\.0"),
        (lambda: fd_gradient(lambda a, b: 0.0, math.nan, 1.0), r"mu=nan"),
        (lambda: fd_gradient(lambda a, b: 0.0, 0.0, 1.0, eps=0.0), r"eps=0\.0"),
        (lambda: frozen_gradient(lambda v: v, lambda x: x, 0.0, -1.0), r"sigma=-1\.0"),
        (lambda: frozen_gradient(lambda v: v, lambda x: x, 0.0, 1.0, nodes=1), r"nodes=1"),
    ],
)
def test_bad_arguments_are_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
