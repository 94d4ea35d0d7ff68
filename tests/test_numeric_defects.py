"""Numerical defects of gan_lib.divergences and gan_lib.data, each checked against a reference
computed another way.

References: closed-form integrals, scipy.integrate.quad of numpy integrands written in log space
(scipy.special.logsumexp for the mixtures), the Gaussian closed forms of
gan_lib.divergences.gaussian_divergence (checked against the textbook formulas in
tests/test_divergences.py), the analytic divergence condition of int q^2/p between Gaussians,
Python's decimal module at 50 digits, and the numpy scoring-rule formulas of tests/reference.py.
"""

from __future__ import annotations

import logging
import math
from decimal import Decimal, getcontext

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import logsumexp
from scipy.stats import norm

from gan_lib.data import toy
from gan_lib.divergences import (
    SCORING_RULES,
    divergence_to_gaussian,
    exp_logit_clamp,
    fit_gaussian,
    gaussian_divergence,
    generator_divergence,
    get_divergence,
    get_rule,
    mc_divergence,
    quad_divergence,
)
from gan_lib.divergences.quadrature import adaptive_integrate
from gan_lib.metrics.ratio import log_ratio_rmse
from reference import scoring_losses

# --- A. one adaptive quadrature engine ---------------------------------------------------------


def test_adaptive_integrate_starts_from_given_edges() -> None:
    """A kink on an edge is integrated exactly in one round: int_{-1}^{2} |x - 0.3| dx = 2.29."""
    calls = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.numel())
        return (x - 0.3).abs()

    got = adaptive_integrate(fn, edges=[-1.0, 0.3, 2.0])
    assert got == pytest.approx((1.3**2 + 1.7**2) / 2.0, rel=1e-14)
    assert len(calls) == 1
    # the same range without the edge needs refinement around the kink, and still gets it right
    calls.clear()
    assert adaptive_integrate(fn, -1.0, 2.0, init_panels=3) == pytest.approx(2.29, rel=1e-10)
    assert len(calls) > 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"edges": [0.0, 1.0, 1.0]}, "strictly increasing"),
        ({"edges": [0.0, float("inf")]}, "finite"),
        ({"edges": [2.0]}, "at least two"),
        ({"lo": 0.5, "edges": [0.0, 1.0]}, "lo=0.5 differs from the edge 0.0"),
        ({"lo": 0.0}, "give lo and hi, or edges"),
    ],
)
def test_adaptive_integrate_refuses_bad_edges(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        adaptive_integrate(lambda x: x, **kwargs)


def _log_mixture(x: float, means, stds, weights) -> float:
    w = np.asarray(weights, dtype=float) / np.sum(weights)
    return float(logsumexp([math.log(wi) + norm.logpdf(x, m, s) for wi, m, s in zip(w, means, stds)]))


@pytest.mark.parametrize("name", ["rkl", "standard"])
def test_divergence_to_gaussian_resolves_the_kink_of_log_p_between_modes(name: str) -> None:
    """Between two narrow, distant modes log p turns sharply (width ~1e-3 at x ~ 0.007); the old
    fixed panels were off by 1.3e-8 relative here, the adaptive engine refines there."""
    means, stds, weights = [-6.0, 6.0], [0.2, 0.2], [0.9, 0.1]
    mu, sigma = 0.0, 3.0

    def integrand(x: float) -> float:
        lp, lq = _log_mixture(x, means, stds, weights), norm.logpdf(x, mu, sigma)
        t = lp - lq
        return math.exp(lq) * (-t if name == "rkl" else float(np.logaddexp(0.0, -t)))

    kink = math.log(9.0) * 0.2**2 / 24.0  # where 0.9 N(-6, 0.04) = 0.1 N(6, 0.04)
    pts = [-6.0, -3.0, kink, 3.0, 6.0]
    want = integrate.quad(integrand, -40.0, 40.0, points=pts, limit=2000, epsabs=0.0, epsrel=1e-13)[0]
    got = divergence_to_gaussian(generator_divergence(name), toy.mixture_1d(means, stds, weights), mu, sigma)
    assert got == pytest.approx(want, rel=1e-11)


def test_divergent_integral_is_inf_without_runaway_refinement(caplog: pytest.LogCaptureFixture) -> None:
    """GAN-alpha with alpha = -1: int q^2/p diverges exactly when sigma^2 > 2 s^2 (the exponent of
    x^2 in q^2/p is 1/(2 s^2) - 1/sigma^2). Just above the threshold the integrand is tiny at the
    usual range and astronomically large far out: the answer is inf, found without the adaptive
    rule refining tails it cannot resolve (which it would report with a warning)."""
    target = toy.mixture_1d([-1.2, 1.2], [0.6, 0.6], [0.7, 0.3])
    gd = generator_divergence("alpha", alpha=-1.0)
    threshold = math.sqrt(2.0) * 0.6
    with caplog.at_level(logging.WARNING):
        assert divergence_to_gaussian(gd, target, -0.1833, threshold * 1.03) == math.inf
        assert math.isfinite(divergence_to_gaussian(gd, target, -0.1833, threshold * 0.97))
    assert not [r for r in caplog.records if "stopped refining" in r.getMessage()]


def test_fit_at_the_target_converges_without_runaway_refinement(caplog: pytest.LogCaptureFixture) -> None:
    """Near P = Q the divergence is ~1e-17: a relative tolerance alone cannot be met there."""
    with caplog.at_level(logging.WARNING):
        res = fit_gaussian(generator_divergence("alpha", alpha=0.5), toy.gaussian_1d(1.3, 0.7))
    assert res.best.mu == pytest.approx(1.3, abs=1e-6)
    assert res.best.sigma == pytest.approx(0.7, abs=1e-6)
    assert abs(res.best.value) < 1e-12
    assert not [r for r in caplog.records if "stopped refining" in r.getMessage()]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "0.3", True, torch.tensor(0.3)])
def test_divergence_to_gaussian_refuses_bad_mu(bad: object) -> None:
    with pytest.raises(ValueError, match="mu="):
        divergence_to_gaussian(generator_divergence("kl"), toy.gaussian_1d(0.0, 1.0), bad, 1.0)


# --- B. one f per divergence: exact log-space perspective ------------------------------------


@pytest.mark.parametrize("div, opts", [("reverse_kl", {}), ("alpha", {"alpha": -0.001})])
def test_quad_divergence_exact_where_the_log_ratio_is_below_minus_700(div: str, opts: dict) -> None:
    """P = N(0, 0.05^2), Q = N(0, 1): log(p/q) < -700 wherever |x| > 1.9, which holds 6% of Q's
    mass. f is unbounded at u = 0 for both, so a ratio clamped at e^-700 gave the wrong value."""
    p, q = toy.gaussian_1d(0.0, 0.05), toy.gaussian_1d(0.0, 1.0)
    want = gaussian_divergence(div, 0.0, 0.05**2, 0.0, 1.0, **opts)
    assert want > 50.0
    assert quad_divergence(div, p, q, **opts) == pytest.approx(want, rel=1e-9)


def test_gan_standard_equivalent_at_ratios_beyond_float_range() -> None:
    """(1 + u) log(1 + 1/u) -> 1 as u -> inf (it is 1 + 1/(2u) + O(u^-2)); the old form returned
    ~1e4 at u = e^700 and nan for the perspective at p/q = e^800."""
    eq = generator_divergence("standard").equivalent
    l = torch.tensor([40.0, 650.0, 700.0, 710.0, 800.0], dtype=torch.float64)
    np.testing.assert_allclose(eq.at_log(l).numpy(), 1.0 + 0.5 * np.exp(-l.numpy()), rtol=1e-14)
    lp, lq = torch.tensor([800.0], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)
    assert float(eq.perspective(lp, lq)) == pytest.approx(1.0, rel=1e-14)


def _alpha_f_decimal(alpha: float, v: float) -> float:
    """(u^a - 1 - a (u - 1)) / (a (a - 1)) at u = e^v, 50 significant digits."""
    getcontext().prec = 50
    a, u = Decimal(alpha), Decimal(v).exp()
    return float(((u**a) - 1 - a * (u - 1)) / (a * (a - 1)))


@pytest.mark.parametrize("alpha", [1.0002, 0.9998, 2.0, -1.0])
def test_gan_alpha_objective_is_exact_near_alpha_one_in_float32(alpha: float) -> None:
    """Poole's GAN-alpha objective f(e^V) from the FDivergence's log-space f: as printed, the
    numerator cancels near alpha = 1 and float32 rounding was amplified 1/|alpha - 1| = 5000 times."""
    v = np.array([-4.0, -1.0, -0.1, 0.05, 0.5, 2.0, 6.0], dtype=np.float32)
    got = generator_divergence("alpha", alpha=alpha).objective(torch.from_numpy(v)).numpy()
    want = np.array([_alpha_f_decimal(alpha, float(x)) for x in v])
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=0.0)


@pytest.mark.parametrize("alpha", [np.float32(0.5), np.float64(2.0), np.int64(3)])
def test_numpy_alpha_is_accepted(alpha: object) -> None:
    assert get_divergence("alpha", alpha=alpha).alpha == float(alpha)
    assert generator_divergence("alpha", alpha=alpha).alpha == float(alpha)
    assert isinstance(generator_divergence("alpha", alpha=alpha).alpha, float)


@pytest.mark.parametrize("alpha", ["0.5", b"2", [0.5], torch.tensor(0.5)])
def test_non_numeric_alpha_is_refused(alpha: object) -> None:
    with pytest.raises(ValueError, match=r"alpha=.* not allowed: must be a finite real number"):
        get_divergence("alpha", alpha=alpha)
    with pytest.raises(ValueError, match=r"alpha=.* not allowed: must be a finite real number"):
        generator_divergence("alpha", alpha=alpha)


# --- C. scoring rules in half precision --------------------------------------------------------

_V_HALF = np.linspace(-8.0, 8.0, 41)


def _reference_gradients(name: str, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d loss / d v of the P- and Q-sample losses, differentiated by hand."""
    s = 1.0 / (1.0 + np.exp(-v))  # D
    if name == "bernoulli":
        return -(1.0 - s), s
    if name == "brier":
        return -2.0 * s * (1.0 - s) ** 2, 2.0 * s**2 * (1.0 - s)
    if name == "exponential":
        return -0.5 * np.exp(-0.5 * v), 0.5 * np.exp(0.5 * v)
    if name == "misclassification":
        return np.zeros_like(v), np.zeros_like(v)
    if name == "hinge":
        return -(v < 1.0).astype(float), (v > -1.0).astype(float)
    if name == "spherical":  # -(1 + e^{-2v})^{-1/2} and -(1 + e^{2v})^{-1/2}
        return -np.exp(-2 * v) * (1 + np.exp(-2 * v)) ** -1.5, np.exp(2 * v) * (1 + np.exp(2 * v)) ** -1.5
    raise KeyError(name)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", SCORING_RULES)
def test_half_precision_logits_are_computed_in_float32(name: str, dtype: torch.dtype) -> None:
    """In float16 the exponential loss's clamp was -5.45, so every logit became -5.45: a constant
    loss 0.0654 with zero gradient. Now half-precision logits are computed in float32 and every rule
    returns float32 values and gradients equal to the formulas at the (rounded) logits."""
    rule = get_rule(name)
    v = torch.tensor(_V_HALF, dtype=dtype, requires_grad=True)
    v_np = v.detach().double().numpy()  # the logits as the half dtype holds them
    want_real, want_fake = scoring_losses(name, v_np)
    grad_real, grad_fake = _reference_gradients(name, v_np)
    for loss_fn, want, want_grad in ((rule.loss_real, want_real, grad_real), (rule.loss_fake, want_fake, grad_fake)):
        out = loss_fn(v)
        assert out.dtype == torch.float32
        (g,) = torch.autograd.grad(out.sum(), v)
        np.testing.assert_allclose(out.detach().numpy(), want, rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(g.double().numpy(), want_grad, rtol=1e-2, atol=1e-3 if dtype == torch.float16 else 5e-3)
        assert np.ptp(out.detach().numpy()) > 0.5  # not a constant
        if name != "misclassification":  # the 0-1 loss has zero gradient by definition
            assert (g != 0).any()
    batch = rule.loss(v, v.flip(0))
    assert batch.dtype == torch.float32
    assert float(batch.detach()) == pytest.approx(float(want_real.mean() + scoring_losses(name, v_np[::-1])[1].mean()), rel=2e-6)


def test_exp_logit_clamp_of_half_dtypes_is_float32s() -> None:
    assert exp_logit_clamp(torch.float16) == exp_logit_clamp(torch.float32) == pytest.approx(
        2.0 * (math.log(np.finfo(np.float32).max) - math.log(1e6))
    )
    assert exp_logit_clamp(torch.bfloat16) == exp_logit_clamp(torch.float32)
    with pytest.raises(TypeError, match="floating-point torch.dtype"):
        exp_logit_clamp(torch.int64)


# --- D. argument checks -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCORING_RULES)
def test_scoring_rules_refuse_empty_batches(name: str) -> None:
    rule, v = get_rule(name), torch.tensor([0.3, -1.0])
    with pytest.raises(ValueError, match=r"logits_real is empty \(shape \(0,\)\)"):
        rule.loss(torch.empty(0), v)
    with pytest.raises(ValueError, match=r"logits_fake is empty \(shape \(2, 0\)\)"):
        rule.loss(v, torch.empty(2, 0))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
@pytest.mark.parametrize("name", SCORING_RULES)
def test_scoring_rules_refuse_non_floating_logits(name: str, dtype: torch.dtype) -> None:
    rule = get_rule(name)
    ints = torch.tensor([1, 0, 1], dtype=dtype)
    floats = torch.tensor([0.5, -0.5])
    with pytest.raises(TypeError, match=f"logits_real must have a floating-point dtype; got {dtype}"):
        rule.loss(ints, floats)
    with pytest.raises(TypeError, match=f"logits_fake must have a floating-point dtype; got {dtype}"):
        rule.loss(floats, ints)
    for pointwise in (rule.loss_real, rule.loss_fake):
        with pytest.raises(TypeError, match=f"got {dtype}"):
            pointwise(ints)


def test_scoring_rules_refuse_non_tensors() -> None:
    with pytest.raises(TypeError, match="logits_real must be a torch.Tensor of raw logits; got list"):
        get_rule("brier").loss([0.5], torch.tensor([0.5]))


_P1, _Q1 = toy.gaussian_1d(0.0, 1.0), toy.gaussian_1d(0.5, 1.2)


@pytest.mark.parametrize("n", [2.9, 2.0, "100", True, 1, -5, None])
def test_mc_divergence_refuses_a_non_integer_or_small_n(n: object) -> None:
    with pytest.raises(ValueError, match=r"n=.* not allowed: must be an integer in \[2, inf\]"):
        mc_divergence("kl", _P1, _Q1, n)


@pytest.mark.parametrize("generator", [True, False, -1, 1.5, "3", 2**64])
def test_mc_divergence_refuses_a_bad_generator(generator: object) -> None:
    with pytest.raises(ValueError, match=r"generator=.* not allowed: must be a torch.Generator, an integer seed"):
        mc_divergence("kl", _P1, _Q1, 100, generator=generator)


def test_mc_divergence_accepts_numpy_seeds_and_generators() -> None:
    want = gaussian_divergence("kl", 0.0, 1.0, 0.5, 1.2**2)
    est, se = mc_divergence("kl", _P1, _Q1, 20_000, generator=np.int64(7))
    assert (est, se) == mc_divergence("kl", _P1, _Q1, 20_000, generator=7)
    assert abs(est - want) < 5 * se
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert mc_divergence("kl", _P1, _Q1, 500, generator=g1) == mc_divergence("kl", _P1, _Q1, 500, generator=g2)


_NAN, _INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: toy.grid_1d(0.0, _INF, 5), r"hi=inf not allowed: must be a finite real number"),
        (lambda: toy.grid_1d(_NAN, 1.0, 5), r"lo=nan not allowed: must be a finite real number"),
        (lambda: toy.grid_1d(-_INF, 1.0, 5), r"lo=-inf not allowed"),
        (lambda: toy.grid_1d("0", 1.0, 5), r"lo='0' not allowed"),
        (lambda: toy.grid_1d(0.0, 1.0, 2.5), r"grid_1d needs an integer n >= 2; got n=2.5"),
        (lambda: toy.grid_1d(0.0, 1.0, True), r"got n=True"),
        (lambda: toy.gaussian_1d(0.0, _INF), r"std=inf must be > 0 and finite"),
        (lambda: toy.gaussian_1d(_INF, 1.0), r"mean=inf not allowed: must be a finite real number"),
        (lambda: toy.gaussian_1d(_NAN, 1.0), r"mean=nan not allowed"),
        (lambda: toy.gaussian_1d(0.0, "1"), r"std='1' must be > 0"),
        (lambda: toy.gaussian_nd([0.0, 0.0], [[_INF, 0.0], [0.0, 1.0]]), r"cov=\[\[inf, 0.0\], \[0.0, 1.0\]\] contains a non-finite"),
        (lambda: toy.mixture_nd([[0.0, _NAN]], [1.0]), r"means=\[\[0.0, nan\]\] contains a non-finite"),
        (lambda: toy.mixture_nd(np.zeros((0, 2)), []), r"non-empty \(K, d\) array; got shape \(0, 2\)"),
        (lambda: toy.mixture_1d([0.0, _INF], [1.0, 1.0]), r"means=\[0.0, inf\] contains a non-finite"),
    ],
)
def test_toy_constructors_refuse_non_finite_values(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_toy_constructors_accept_numpy_numbers() -> None:
    grid = toy.grid_1d(np.float32(-1.0), np.int64(1), np.int64(5))
    np.testing.assert_array_equal(grid.numpy(), np.linspace(-1.0, 1.0, 5))
    g = toy.gaussian_1d(np.float64(0.5), np.float32(2.0))
    assert float(g.log_prob(torch.tensor(0.0, dtype=torch.float64))) == pytest.approx(norm.logpdf(0.0, 0.5, 2.0), rel=1e-14)


@pytest.mark.parametrize("start", [(float("nan"), 1.0), (0.0, float("inf")), (0.0, 0.0), ("0", 1.0)])
def test_fit_gaussian_refuses_bad_starts(start: tuple) -> None:
    with pytest.raises(ValueError, match=r"start .* not allowed: need finite real mu0 and sigma0 > 0"):
        fit_gaussian(generator_divergence("kl"), toy.gaussian_1d(0.0, 1.0), starts=[start])


def test_fit_gaussian_refuses_non_finite_bounds() -> None:
    with pytest.raises(ValueError, match="need finite real numbers"):
        fit_gaussian(generator_divergence("kl"), toy.gaussian_1d(0.0, 1.0), mu_bounds=(-float("inf"), 1.0))


def test_log_ratio_rmse_refuses_a_non_numeric_threshold() -> None:
    p, q = toy.gaussian_1d(0.0, 1.0), toy.gaussian_1d(1.0, 1.0)
    with pytest.raises(ValueError, match=r"max_abs_log_ratio='2' must be a real number > 0"):
        log_ratio_rmse(lambda x: x, p, q, max_abs_log_ratio="2")


class _Uniform:
    """A uniform density on [a, b] whose log_prob is -inf outside (torch's refuses such points)."""

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = a, b

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        inside = (x >= self.a) & (x <= self.b)
        return torch.where(inside, torch.full_like(x, -math.log(self.b - self.a)), torch.full_like(x, -math.inf))


@pytest.mark.parametrize("shift", [0.25, 0.5, 2.0])
def test_jsd_of_uniforms_with_disjoint_or_partial_overlap(shift: float) -> None:
    # JSD(U(0,1), U(s,s+1)) = min(s, 1) log 2: the non-overlapping mass contributes p log 2 on each
    # side (the limit of q f(p/q) as q -> 0), the overlap nothing. Before the fix the q = 0 side
    # contributed 0, halving the value for disjoint supports.
    from gan_lib.divergences import jsd

    got = jsd(_Uniform(0.0, 1.0), _Uniform(shift, shift + 1.0), lo=-1.0, hi=shift + 2.0)
    assert got == pytest.approx(min(shift, 1.0) * math.log(2.0), rel=1e-9)


def test_gan_perspective_where_q_is_zero_is_zero() -> None:
    from gan_lib.divergences import divergence_perspective, get_divergence

    lp = torch.tensor([0.0, -1.0], dtype=torch.float64)
    lq = torch.tensor([-math.inf, -math.inf], dtype=torch.float64)
    js = divergence_perspective(get_divergence("jensen_shannon"), lp, lq)
    gan = divergence_perspective(get_divergence("gan"), lp, lq)
    torch.testing.assert_close(js, torch.exp(lp) * math.log(2.0))
    torch.testing.assert_close(gan, torch.zeros_like(lp))
