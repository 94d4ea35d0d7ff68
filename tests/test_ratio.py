"""Tests for gan_lib.metrics.ratio and the batched classifier stack against references computed another way.

References: plain ``nets.mlp`` networks and separate Adam optimisers (for the stacked networks),
closed forms between Gaussians (Bhattacharyya coefficient, total variation of equal-variance
Gaussians, moments), and ``scipy.integrate.quad`` of numpy formulas written from the scoring-rule
table (D = 1/(1+exp(-v))), never the library's own functions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from gan_lib.data import toy
from gan_lib.divergences import scoring
from gan_lib.metrics.ratio import implied_divergence, log_ratio_rmse, logit_function, population_risk
from gan_lib.train import stacked_loss
from reference import gauss_bc, normal_pdf, scipy_integral, scoring_losses

STRICT = ("bernoulli", "brier", "exponential", "spherical")


def test_stacked_loss_sums_rule_losses_and_checks_columns() -> None:
    vr = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64).T  # (members, batch)
    vf = torch.tensor([[-0.7, 0.1], [0.4, -2.5], [1.0, 1.0]], dtype=torch.float64).T
    got = float(stacked_loss(["brier", "spherical"])(vr, vf))
    want = 0.0
    for k, name in enumerate(["brier", "spherical"]):
        want += np.mean([scoring_losses(name, float(v))[0] for v in vr[k]])
        want += np.mean([scoring_losses(name, float(v))[1] for v in vf[k]])
    assert got == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="members"):
        stacked_loss(["brier"])(vr, vf)
    with pytest.raises(ValueError, match="unknown scoring rule"):
        stacked_loss(["brierr"])
    with pytest.raises(ValueError, match="at least one"):
        stacked_loss([])


def test_logit_function_is_float64_and_leaves_the_network_alone() -> None:
    lin = torch.nn.Linear(1, 1)
    with torch.no_grad():
        lin.weight.fill_(0.75)
        lin.bias.fill_(-0.25)  # both exact in float32
    v = logit_function(lin)
    x = torch.tensor([-1.0, 0.0, 2.5], dtype=torch.float64)
    out = v(x)
    assert out.dtype == torch.float64 and out.shape == (3,)
    assert out.tolist() == pytest.approx([-1.0, -0.25, 1.625], abs=1e-15)
    assert lin.weight.dtype == torch.float32


# --- implied divergence ----------------------------------------------------------------------


def named_divergences(pm: float, ps: float, qm: float, qs: float) -> dict[str, float]:
    """int q f(p/q) of each rule's implied f between N(pm, ps^2) and N(qm, qs^2), as the named
    divergence it equals (Mohamed & Lakshminarayanan 2016, Table 1), by scipy quadrature or closed form."""
    def p(x: float) -> float:
        return normal_pdf(x, pm, ps)

    def q(x: float) -> float:
        return normal_pdf(x, qm, qs)

    bc = gauss_bc(pm, ps, qm, qs)
    tv = 0.5 * scipy_integral(lambda x: abs(p(x) - q(x)))
    if ps == qs:  # closed form for equal variances
        assert tv == pytest.approx(2.0 * norm.cdf(abs(pm - qm) / (2.0 * ps)) - 1.0, rel=1e-8)
    js = 0.5 * scipy_integral(
        lambda x: p(x) * math.log(2 * p(x) / (p(x) + q(x))) + q(x) * math.log(2 * q(x) / (p(x) + q(x)))
    )
    tri = scipy_integral(lambda x: (p(x) - q(x)) ** 2 / (p(x) + q(x)))
    sph = scipy_integral(lambda x: math.hypot(p(x), q(x)))
    return {
        "bernoulli": 2.0 * js - math.log(4.0),
        "brier": tri / 4.0 - 0.5,
        "exponential": -2.0 * bc,  # H^2 - 2 with H^2 = 2 - 2 BC
        "misclassification": tv - 1.0,
        "hinge": 2.0 * tv - 2.0,
        "spherical": sph,
    }


@pytest.mark.parametrize("pm,ps,qm,qs", [(0.0, 1.0, 1.0, 1.0), (0.5, 0.7, -0.5, 1.3)])
def test_implied_divergence_matches_textbook_divergences(pm: float, ps: float, qm: float, qs: float) -> None:
    P, Q = toy.gaussian_1d(pm, ps), toy.gaussian_1d(qm, qs)
    want = named_divergences(pm, ps, qm, qs)
    for name, value in want.items():
        got = implied_divergence(name, P, Q, -15.0, 15.0)
        assert got == pytest.approx(value, rel=1e-7, abs=1e-9), name


def test_implied_divergence_of_identical_distributions() -> None:
    P = toy.mixture_1d([-1.0, 2.0], [0.5, 1.5], [0.3, 0.7])
    want = {"bernoulli": -math.log(4.0), "brier": -0.5, "exponential": -2.0,
            "misclassification": -1.0, "hinge": -2.0, "spherical": math.sqrt(2.0)}
    for name, value in want.items():
        assert implied_divergence(name, P, P) == pytest.approx(value, rel=1e-9), name


def test_implied_divergence_survives_underflowing_tails() -> None:
    # p/q explodes in the tails (q narrower): the log-space integrand must stay finite
    P, Q = toy.gaussian_1d(0.0, 3.0), toy.gaussian_1d(0.0, 0.3)
    bc = gauss_bc(0.0, 3.0, 0.0, 0.3)
    assert implied_divergence("exponential", P, Q, -60.0, 60.0) == pytest.approx(-2.0 * bc, rel=1e-8)


# --- population risk -------------------------------------------------------------------------


@pytest.mark.parametrize("name", scoring.SCORING_RULES)
def test_population_risk_of_a_linear_logit_matches_scipy(name: str) -> None:
    P, Q = toy.gaussian_1d(1.0, 0.8), toy.gaussian_1d(-0.5, 1.2)
    a, b = 0.6, -0.3
    lin = torch.nn.Linear(1, 1).double()
    with torch.no_grad():
        lin.weight.fill_(a)
        lin.bias.fill_(b)
    got = population_risk(name, logit_function(lin), P, Q, -15.0, 15.0)
    kink = [-b / a, (1 - b) / a, (-1 - b) / a]  # where 0-1 jumps and hinge bends
    want = scipy_integral(
        lambda x: norm.pdf(x, 1.0, 0.8) * scoring_losses(name, a * x + b)[0]
        + norm.pdf(x, -0.5, 1.2) * scoring_losses(name, a * x + b)[1],
        points=kink,
    )
    assert got == pytest.approx(want, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("name", STRICT + ("misclassification",))
def test_bayes_logit_attains_the_implied_divergence(name: str) -> None:
    """Equal-variance Gaussians: log r is linear, and the score at it equals int q f(p/q)."""
    m1, m0 = 0.8, -0.4
    P, Q = toy.gaussian_1d(m1, 1.0), toy.gaussian_1d(m0, 1.0)

    def log_r(x: torch.Tensor) -> torch.Tensor:
        return (m1 - m0) * x - 0.5 * (m1**2 - m0**2)

    score = -population_risk(name, log_r, P, Q, -15.0, 15.0)
    assert score == pytest.approx(named_divergences(m1, 1.0, m0, 1.0)[name], rel=1e-8)


# --- log-ratio error -------------------------------------------------------------------------


def test_log_ratio_rmse_of_shifted_and_tilted_logits() -> None:
    P, Q = toy.gaussian_1d(0.0, 1.0), toy.gaussian_1d(1.0, 1.0)  # log r = 1/2 - x

    def log_r(x: torch.Tensor) -> torch.Tensor:
        return 0.5 - x

    exact = log_ratio_rmse(log_r, P, Q, -15.0, 15.0)
    assert exact.rmse == pytest.approx(0.0, abs=1e-12) and exact.mass == pytest.approx(1.0, rel=1e-10)
    assert log_ratio_rmse(lambda x: log_r(x) + 0.3, P, Q, -15.0, 15.0).rmse == pytest.approx(0.3, rel=1e-9)
    # v = log r + k x: MSE = k^2 (E_P x^2 + E_Q x^2) / 2 = k^2 (1 + 2) / 2
    k = -0.4
    tilted = log_ratio_rmse(lambda x: log_r(x) + k * x, P, Q, -15.0, 15.0)
    assert tilted.rmse == pytest.approx(abs(k) * math.sqrt(1.5), rel=1e-9)


def test_log_ratio_rmse_on_the_region_where_both_have_mass() -> None:
    P, Q = toy.gaussian_1d(0.0, 1.0), toy.gaussian_1d(1.0, 1.0)
    L = 2.0  # |1/2 - x| <= L  <=>  x in [1/2 - L, 1/2 + L]
    a, b = 0.5 - L, 0.5 + L
    mass = 0.5 * (norm.cdf(b) - norm.cdf(a)) + 0.5 * (norm.cdf(b, 1.0) - norm.cdf(a, 1.0))
    k = 0.7
    second = 0.5 * scipy_integral(lambda x: (norm.pdf(x) + norm.pdf(x, 1.0)) * x**2, a, b)
    got = log_ratio_rmse(lambda x: 0.5 - x + k * x, P, Q, -15.0, 15.0, max_abs_log_ratio=L)
    assert got.mass == pytest.approx(mass, rel=1e-9)
    assert got.rmse == pytest.approx(abs(k) * math.sqrt(second / mass), rel=1e-8)
    with pytest.raises(ValueError, match="max_abs_log_ratio"):
        log_ratio_rmse(lambda x: x, P, Q, max_abs_log_ratio=0.0)
