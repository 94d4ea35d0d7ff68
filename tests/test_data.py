"""Tests of gan_lib.data.toy against references computed another way.

References: closed-form mixture moments (mean, covariance and the fourth moments that give the
standard error of a sample covariance), scipy.stats densities (norm, multivariate_normal) combined
with logsumexp, and numpy.linspace. Sample moments must agree with the closed forms to within
four standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from gan_lib.data import toy

Z = 4.0  # tolerance in standard errors


@pytest.fixture(autouse=True)
def _seeded():
    state = torch.get_rng_state()
    torch.manual_seed(20240611)
    yield
    torch.set_rng_state(state)


# --- closed-form moments ----------------------------------------------------------------------


def mixture_1d_moments(means, stds, weights) -> tuple[float, float, float]:
    """Mean, variance and fourth central moment of sum_k w_k N(m_k, s_k^2) (weights normalised)."""
    m, s, w = (np.asarray(a, dtype=np.float64) for a in (means, stds, weights))
    w = w / w.sum()
    mu = float(w @ m)
    d = m - mu
    var = float(w @ (s**2 + d**2))
    mu4 = float(w @ (d**4 + 6 * d**2 * s**2 + 3 * s**4))  # E (Y + d)^4, Y ~ N(0, s^2)
    return mu, var, mu4


def mixture_nd_moments(means, stds, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, covariance and Var[(X_i - mu_i)(X_j - mu_j)] of sum_k w_k N(m_k, s_k^2 I)."""
    m, s, w = (np.asarray(a, dtype=np.float64) for a in (means, stds, weights))
    w = w / w.sum()
    mu = w @ m
    d = m - mu  # (K, d)
    dim = m.shape[1]
    cov = sum(wk * (sk**2 * np.eye(dim) + np.outer(dk, dk)) for wk, sk, dk in zip(w, s, d))
    second = d**2 + s[:, None] ** 2  # E (Y_i + d_i)^2 per component
    fourth = np.empty((dim, dim))
    for i in range(dim):
        for j in range(dim):
            if i == j:
                per = d[:, i] ** 4 + 6 * d[:, i] ** 2 * s**2 + 3 * s**4
            else:
                # given the component, coordinates are independent; the cross term (Y_i + d_i)^2 (Y_j + d_j)^2
                per = second[:, i] * second[:, j]
            fourth[i, j] = w @ per
    return mu, cov, fourth - cov**2


def assert_sample_moments(x: np.ndarray, mean: np.ndarray, cov: np.ndarray, var_of_products: np.ndarray) -> None:
    """Sample mean and covariance within Z standard errors of the closed forms."""
    n = x.shape[0]
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(axis=0) - mean) < Z * se_mean), (x.mean(axis=0), mean, se_mean)
    c = x - mean  # centred at the true mean: the sample second moment is an unbiased mean of products
    emp = c.T @ c / n
    se_cov = np.sqrt(var_of_products / n)
    assert np.all(np.abs(emp - cov) < Z * se_cov), (emp, cov, se_cov)


# --- samples: moments ---------------------------------------------------------------------------

N = 200_000


@pytest.mark.parametrize(
    "means, stds, weights",
    [
        ([-1.0, 2.0], [0.5, 1.5], [0.3, 0.7]),
        ([0.0, 0.5, 4.0], [1.0, 0.2, 0.7], [2.0, 1.0, 1.0]),  # unnormalised weights
        ([-2.0, 1.0], [0.3, 0.3], None),  # default: equal weights
    ],
)
def test_mixture_1d_sample_moments(means, stds, weights) -> None:
    dist = toy.mixture_1d(means, stds, weights)
    x = dist.sample((N,))
    assert x.shape == (N,) and x.dtype == torch.float64
    w = np.ones(len(means)) if weights is None else weights
    mu, var, mu4 = mixture_1d_moments(means, stds, w)
    assert_sample_moments(x.numpy()[:, None], np.array([mu]), np.array([[var]]), np.array([[mu4 - var**2]]))


def test_mixture_1d_component_frequencies() -> None:
    # components 10 standard deviations apart: which one a sample came from is unambiguous
    means, stds, weights = [-10.0, 0.0, 10.0], [1.0, 1.0, 1.0], [1.0, 2.0, 5.0]
    x = toy.mixture_1d(means, stds, weights).sample((N,)).numpy()
    counts = np.array([(x < -5).sum(), ((x >= -5) & (x < 5)).sum(), (x >= 5).sum()])
    p = np.array(weights) / sum(weights)
    se = np.sqrt(p * (1 - p) / N)
    assert np.all(np.abs(counts / N - p) < Z * se), (counts / N, p)


def test_gaussian_1d_sample_moments() -> None:
    dist = toy.gaussian_1d(1.5, 0.4)
    x = dist.sample((N,)).numpy()
    assert x.dtype == np.float64
    assert_sample_moments(x[:, None], np.array([1.5]), np.array([[0.16]]), np.array([[2 * 0.16**2]]))


def test_gaussian_nd_sample_moments() -> None:
    mean = np.array([0.5, -1.0, 2.0])
    cov = np.array([[1.0, 0.6, -0.2], [0.6, 2.0, 0.3], [-0.2, 0.3, 0.5]])
    dist = toy.gaussian_nd(mean.tolist(), cov.tolist())
    x = dist.sample((N,))
    assert x.shape == (N, 3) and x.dtype == torch.float64
    # Isserlis: Var[(X_i - mu_i)(X_j - mu_j)] = S_ii S_jj + S_ij^2
    var_prod = np.outer(np.diag(cov), np.diag(cov)) + cov**2
    assert_sample_moments(x.numpy(), mean, cov, var_prod)


@pytest.mark.parametrize(
    "means, stds, weights",
    [
        ([[0.0, 0.0], [3.0, -1.0], [-2.0, 2.5]], [0.5, 1.0, 0.3], [0.2, 0.5, 0.3]),
        ([[1.0, 0.0, -1.0], [-1.0, 2.0, 0.5]], [0.8, 0.4], None),
    ],
)
def test_mixture_nd_sample_moments(means, stds, weights) -> None:
    dist = toy.mixture_nd(means, stds, weights)
    x = dist.sample((N,))
    assert x.shape == (N, len(means[0])) and x.dtype == torch.float64
    w = np.ones(len(means)) if weights is None else weights
    mu, cov, var_prod = mixture_nd_moments(means, stds, w)
    assert_sample_moments(x.numpy(), mu, cov, var_prod)


# --- densities ------------------------------------------------------------------------------------


def test_mixture_1d_log_prob_matches_scipy() -> None:
    means, stds, weights = [-1.0, 2.0, 2.5], [0.5, 1.5, 0.1], [3.0, 6.0, 1.0]
    x = np.linspace(-30.0, 30.0, 601)
    w = np.array(weights) / sum(weights)
    ref = logsumexp([np.log(wk) + norm.logpdf(x, m, s) for wk, m, s in zip(w, means, stds)], axis=0)
    got = toy.mixture_1d(means, stds, weights).log_prob(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    equal = toy.mixture_1d(means, stds).log_prob(torch.tensor(x)).numpy()
    ref_eq = logsumexp([norm.logpdf(x, m, s) for m, s in zip(means, stds)], axis=0) - math.log(3)
    np.testing.assert_allclose(equal, ref_eq, rtol=1e-12, atol=1e-12)


def test_gaussian_1d_log_prob_matches_scipy() -> None:
    x = np.linspace(-10.0, 10.0, 201)
    got = toy.gaussian_1d(0.7, 2.5).log_prob(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, norm.logpdf(x, 0.7, 2.5), rtol=1e-13, atol=1e-13)


def test_gaussian_nd_log_prob_matches_scipy() -> None:
    mean = [0.5, -1.0, 2.0]
    cov = [[1.0, 0.6, -0.2], [0.6, 2.0, 0.3], [-0.2, 0.3, 0.5]]
    x = np.random.default_rng(0).normal(size=(50, 3)) * 3.0
    got = toy.gaussian_nd(mean, cov).log_prob(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, multivariate_normal(mean, cov).logpdf(x), rtol=1e-12, atol=1e-12)


def test_mixture_nd_log_prob_matches_scipy() -> None:
    means, stds, weights = [[0.0, 0.0], [3.0, -1.0], [-2.0, 2.5]], [0.5, 1.0, 0.3], [1.0, 5.0, 2.0]
    x = np.random.default_rng(1).normal(size=(80, 2)) * 4.0
    w = np.array(weights) / sum(weights)
    ref = logsumexp(
        [np.log(wk) + multivariate_normal(m, s**2 * np.eye(2)).logpdf(x) for wk, m, s in zip(w, means, stds)], axis=0
    )
    got = toy.mixture_nd(means, stds, weights).log_prob(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_grid_1d_matches_numpy_linspace() -> None:
    g = toy.grid_1d(-3.0, 5.0, 17)
    assert g.dtype == torch.float64
    np.testing.assert_allclose(g.numpy(), np.linspace(-3.0, 5.0, 17), rtol=0, atol=1e-15)
    assert toy.grid_1d(0.0, 1.0).numel() == 4001


# --- argument errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: toy.mixture_1d([], []), "means is empty"),
        (lambda: toy.mixture_1d([0.0, float("nan")], [1.0, 1.0]), r"means=\[0.0, nan\] contains a non-finite"),
        (lambda: toy.mixture_1d([0.0, 1.0], [1.0]), "stds has 1 entries but means has 2"),
        (lambda: toy.mixture_1d([0.0, 1.0], [1.0, 0.0]), r"stds=\[1.0, 0.0\] must all be > 0"),
        (lambda: toy.mixture_1d([0.0, 1.0], [1.0, -2.0]), "must all be > 0"),
        (lambda: toy.mixture_1d([0.0, 1.0], [1.0, 1.0], [1.0]), "weights has 1 entries but means has 2"),
        (lambda: toy.mixture_1d([0.0, 1.0], [1.0, 1.0], [1.0, -0.5]), ">= 0 with a positive sum"),
        (lambda: toy.mixture_1d([0.0, 1.0], [1.0, 1.0], [0.0, 0.0]), ">= 0 with a positive sum"),
        (lambda: toy.mixture_1d([0.0, 1.0], [1.0, 1.0], [float("inf"), 1.0]), "weights=.* non-finite"),
        (lambda: toy.gaussian_1d(0.0, 0.0), "std=0.0 must be > 0"),
        (lambda: toy.gaussian_1d(0.0, -1.0), "must be > 0"),
        (lambda: toy.gaussian_1d(0.0, float("nan")), "must be > 0"),
        (lambda: toy.gaussian_nd([0.0, 0.0], [[1.0, 0.0, 0.0]]), r"cov has shape \(1, 3\); expected \(2, 2\)"),
        (lambda: toy.gaussian_nd([0.0, 0.0], [[1.0, 0.5], [0.4, 1.0]]), "symmetric"),
        (lambda: toy.gaussian_nd([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
        (lambda: toy.gaussian_nd([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]]), "positive definite"),  # singular
        (lambda: toy.gaussian_nd([], []), "mean is empty"),
        (lambda: toy.mixture_nd([0.0, 1.0], [1.0, 1.0]), r"\(K, d\) array; got shape \(2,\)"),
        (lambda: toy.mixture_nd([[0.0, 0.0], [1.0, 1.0]], [1.0]), "stds has 1 entries but there are 2 means"),
        (lambda: toy.mixture_nd([[0.0, 0.0], [1.0, 1.0]], [1.0, 0.0]), "must all be > 0"),
        (lambda: toy.mixture_nd([[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0], [1.0, 0.0, 0.0]), "must be 2 values >= 0"),
        (lambda: toy.mixture_nd([[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0], [-1.0, 2.0]), "must be 2 values >= 0"),
        (lambda: toy.grid_1d(1.0, 1.0), "hi > lo; got lo=1.0, hi=1.0"),
        (lambda: toy.grid_1d(2.0, 1.0), "hi > lo"),
        (lambda: toy.grid_1d(0.0, 1.0, 1), "n >= 2; got n=1"),
    ],
)
def test_argument_errors_name_the_value(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
