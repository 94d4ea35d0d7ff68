"""Tests for gan_lib.divergences.scoring against references computed another way.

References used here do not call gan_lib formulas: the table's formulas in numpy with
D = 1/(1+exp(-v)), scipy minimisation of the numpy pointwise risk, the textbook generalised
entropies H(eta) of each rule (f(u) = -(1+u) H(u/(1+u))), and closed-form Hellinger / total
variation between Gaussians plus scipy's Jensen-Shannon distance.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import trapezoid
from scipy.optimize import minimize_scalar
from scipy.spatial.distance import jensenshannon
from scipy.stats import norm

from gan_lib.divergences import scoring
from gan_lib.divergences.scoring import (
    SCORING_RULES,
    ScoringRule,
    exp_logit_clamp,
    fit_ratio_pointwise,
    get_rule,
    ratio_from_logit,
)
from reference import (
    SCORING_NAMES,
    bib_keys,
    scoring_f_from_entropy,
    scoring_losses,
    scoring_risk,
    sigmoid,
    tex_balanced,
    tex_function,
)

STRICT = ("bernoulli", "brier", "exponential", "spherical")
RATIOS = (0.05, 0.3, 1.0, 2.5, 20.0)


def _t(x: np.ndarray | float) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


# --- losses vs the table --------------------------------------------------------------------


@pytest.mark.parametrize("name", SCORING_RULES)
def test_loss_matches_table_formula(name: str) -> None:
    rng = np.random.default_rng(0)
    vr = rng.uniform(-6, 6, size=37)
    vf = rng.uniform(-6, 6, size=23)  # batches of different size
    vr, vf = vr[np.abs(vr) > 1e-3], vf[np.abs(vf) > 1e-3]  # keep 0-1 ties away from rounding
    l1, _ = scoring_losses(name, vr)
    _, l0 = scoring_losses(name, vf)
    expected = l1.mean() + l0.mean()
    got = get_rule(name).loss(_t(vr), _t(vf))
    assert got.dtype == torch.float64 and got.shape == ()
    assert float(got) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_misclassification_tie_counts_as_error_on_real() -> None:
    rule = get_rule("misclassification")
    zero = torch.zeros(1, dtype=torch.float64)
    # D = 1/2 exactly: the table charges I[D <= 0.5] on P and I[D > 0.5] = 0 on Q.
    assert float(rule.loss_real(zero)) == 1.0 and float(rule.loss_fake(zero)) == 0.0


def test_loss_reduces_any_shape() -> None:
    vr = torch.randn(4, 3, dtype=torch.float64)
    vf = torch.randn(7, 1, 2, dtype=torch.float64)
    for name in SCORING_RULES:
        rule = get_rule(name)
        flat = rule.loss(vr.reshape(-1), vf.reshape(-1))
        assert torch.allclose(rule.loss(vr, vf), flat)


# --- population minimisers ------------------------------------------------------------------


@pytest.mark.parametrize("name", STRICT)
@pytest.mark.parametrize("r", RATIOS)
def test_strictly_proper_rule_recovers_ratio(name: str, r: float) -> None:
    q = 0.7
    p = r * q
    res = minimize_scalar(lambda v: scoring_risk(name, v, p, q), bounds=(-20, 20), method="bounded",
                          options={"xatol": 1e-10})
    assert res.x == pytest.approx(math.log(r), abs=1e-5)  # v* = log r: D/(1-D) = r
    rule = get_rule(name)
    assert rule.proper and rule.strictly_proper
    assert float(rule.optimal_logit(_t(r))) == pytest.approx(math.log(r), abs=1e-12)
    assert float(rule.optimal_D(_t(r))) == pytest.approx(r / (1 + r), rel=1e-12)
    # minimal risk = -q f(p/q)
    assert -res.fun / q == pytest.approx(float(rule.implied_f(_t(r))), rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("r", (0.05, 0.6, 1.0, 1.5, 20.0))  # |log r - sign(log r)| >= 0.49 (equal only at r = e^{+-1})
def test_hinge_minimiser_is_clipped_not_log_ratio(r: float) -> None:
    q = 1.3
    p = r * q
    res = minimize_scalar(lambda v: scoring_risk("hinge", v, p, q), bounds=(-20, 20), method="bounded",
                          options={"xatol": 1e-10})
    rule = get_rule("hinge")
    assert not rule.proper and not rule.strictly_proper
    assert res.fun / q == pytest.approx(2 * min(r, 1.0), rel=1e-7)  # min risk / q = -f(r) = 2 min(r, 1)
    assert float(rule.implied_f(_t(r))) == pytest.approx(-2 * min(r, 1.0), rel=1e-12)
    if r == 1.0:
        # tie: the risk is flat on [-1, 1]; every point there is a minimiser
        flat = [scoring_risk("hinge", v, p, q) for v in (-1.0, -0.3, 0.0, 0.8, 1.0)]
        assert np.allclose(flat, 2 * q) and -1.0 - 1e-6 <= res.x <= 1.0 + 1e-6
        assert float(rule.optimal_logit(_t(r))) == 0.0
        return
    s = math.copysign(1.0, math.log(r))
    assert res.x == pytest.approx(s, abs=1e-6)  # v* = sign(r - 1), clipped to +-1
    assert abs(res.x - math.log(r)) > 0.3  # ... which is not log r for these ratios
    assert float(rule.optimal_logit(_t(r))) == s
    assert float(rule.optimal_D(_t(r))) == pytest.approx(1 / (1 + math.exp(-s)), rel=1e-12)


@pytest.mark.parametrize("r", (0.3, 2.5, 20.0))
def test_misclassification_minimiser_is_indeterminate(r: float) -> None:
    p, q = r, 1.0
    good_side = [1e-3, 0.5, 3.0, 50.0] if r > 1 else [-1e-3, -0.5, -3.0, -50.0, 0.0]
    bad_side = [-v for v in good_side if v != 0.0]
    good = [scoring_risk("misclassification", v, p, q) for v in good_side + [math.log(r)]]
    bad = [scoring_risk("misclassification", v, p, q) for v in bad_side]
    # every logit on the correct side -- log r among them but also 50 or 1e-3 -- attains min(r, 1)
    assert np.allclose(good, min(r, 1.0)) and np.allclose(bad, max(r, 1.0))
    rule = get_rule("misclassification")
    assert rule.proper and not rule.strictly_proper and rule.optimal_logit is None
    with pytest.raises(ValueError, match="no unique optimal D"):
        rule.optimal_D(_t(r))
    assert float(rule.implied_f(_t(r))) == pytest.approx(-min(r, 1.0))


def test_misclassification_has_zero_gradient() -> None:
    rule = get_rule("misclassification")
    vr = torch.linspace(-5, 5, 11, requires_grad=True)
    vf = torch.linspace(-5, 5, 11, requires_grad=True)
    loss = rule.loss(vr, vf)
    loss.backward()
    assert float(loss.detach()) > 0
    assert torch.equal(vr.grad, torch.zeros_like(vr)) and torch.equal(vf.grad, torch.zeros_like(vf))


# --- implied f ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCORING_RULES)
def test_implied_f_matches_generalised_entropy(name: str) -> None:
    u = np.array([0.0, 1e-6, 0.01, 0.3, 1.0, 2.0, 7.5, 1e3, 1e6])
    got = get_rule(name).implied_f(_t(u)).numpy()
    assert np.allclose(got, scoring_f_from_entropy(name, u), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", SCORING_RULES)
def test_implied_f_is_convex(name: str) -> None:
    u = torch.linspace(0.0, 10.0, 2001, dtype=torch.float64)
    f = get_rule(name).implied_f(u)
    second_diff = f[2:] - 2 * f[1:-1] + f[:-2]
    assert (second_diff >= -1e-12).all()


@pytest.mark.parametrize("name", SCORING_RULES)
def test_fit_ratio_pointwise_agrees_with_closed_forms(name: str) -> None:
    rule = get_rule(name)
    x = np.linspace(-3, 3, 9)
    p, q = norm.pdf(x, 0.0, 1.0), norm.pdf(x, 0.8, 1.3)
    fit = fit_ratio_pointwise(name, p, q)
    assert fit.logit.shape == x.shape and fit.risk.shape == x.shape
    # -risk / q is the implied f at u = p/q (the rule's generalised entropy, numpy)
    assert np.allclose(-fit.risk / q, scoring_f_from_entropy(name, p / q), rtol=1e-6, atol=1e-7)
    log_r = norm.logpdf(x, 0.0, 1.0) - norm.logpdf(x, 0.8, 1.3)
    if rule.strictly_proper:
        assert np.allclose(fit.logit, log_r, atol=1e-5)
    elif name == "hinge":
        assert np.allclose(fit.logit, np.sign(log_r), atol=1e-6)
    else:  # 0-1: only the side is determined
        assert np.all(np.sign(fit.logit) == np.sign(log_r))


def test_fit_ratio_pointwise_validates() -> None:
    with pytest.raises(ValueError, match="shape"):
        fit_ratio_pointwise("brier", [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match=">= 0"):
        fit_ratio_pointwise("brier", [-1.0], [1.0])
    with pytest.raises(ValueError, match="allowed names"):
        fit_ratio_pointwise("wasserstein", [1.0], [1.0])


# --- links to named divergences, by quadrature between two Gaussians ------------------------

_X = np.linspace(-16.0, 17.5, 200_001)
_DX = _X[1] - _X[0]
_MU = 1.5
_P, _Q = norm.pdf(_X, 0.0, 1.0), norm.pdf(_X, _MU, 1.0)
_TV = 2.0 * norm.cdf(_MU / 2.0) - 1.0  # equal-variance Gaussians
_H2 = 2.0 - 2.0 * math.exp(-(_MU**2) / 8.0)  # int (sqrt p - sqrt q)^2 = 2 - 2 BC
_JS = jensenshannon(_P * _DX, _Q * _DX) ** 2  # natural log
_DELTA = trapezoid((_P - _Q) ** 2 / (_P + _Q), _X)
_EXPECTED_BOUND = {
    "bernoulli": 2.0 * _JS - math.log(4.0),
    "brier": _DELTA / 4.0 - 0.5,
    "exponential": _H2 - 2.0,
    "misclassification": _TV - 1.0,
    "hinge": 2.0 * _TV - 2.0,
    "spherical": trapezoid(np.hypot(_P, _Q), _X),
}


def _int_q_f(rule: ScoringRule) -> float:
    u = np.exp(norm.logpdf(_X, 0.0, 1.0) - norm.logpdf(_X, _MU, 1.0))
    return float(trapezoid(_Q * rule.implied_f(_t(u)).numpy(), _X))


@pytest.mark.parametrize("name", SCORING_RULES)
def test_implied_divergence_matches_named_divergence(name: str) -> None:
    assert _int_q_f(get_rule(name)) == pytest.approx(_EXPECTED_BOUND[name], rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", SCORING_RULES)
def test_score_lower_bounds_divergence_with_equality_at_optimum(name: str) -> None:
    rule = get_rule(name)
    bound = _EXPECTED_BOUND[name]  # the named divergence, not the rule's own implied f
    x = _t(_X)
    log_r = x * (-_MU) + _MU**2 / 2.0  # log N(0,1) - log N(mu,1)
    candidates = [torch.zeros_like(x), 0.5 * x, log_r + torch.sin(x), torch.tanh(log_r)]
    for v in candidates:
        score = -trapezoid(rule.pointwise_risk(v, _t(_P), _t(_Q)).numpy(), _X)
        assert score <= bound + 1e-9  # equality is possible: 0-1 only needs the right side
    # Bayes logit: log r for the proper rules (0-1 included), its sign for the hinge
    v_star = torch.sign(log_r) if name == "hinge" else log_r
    score_star = -trapezoid(rule.pointwise_risk(v_star, _t(_P), _t(_Q)).numpy(), _X)
    assert score_star == pytest.approx(bound, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name", STRICT)
def test_gradient_fit_of_linear_logit_recovers_log_ratio(name: str) -> None:
    # P = N(0,1), Q = N(1,1): log p/q = 1/2 - x is linear, so v(x) = a + b x can be exact.
    rule = get_rule(name)
    x = torch.linspace(-10.0, 11.0, 4001, dtype=torch.float64)
    w_p = torch.exp(-0.5 * x**2)
    w_q = torch.exp(-0.5 * (x - 1.0) ** 2)
    w_p, w_q = w_p / w_p.sum(), w_q / w_q.sum()
    theta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        v = theta[0] + theta[1] * x
        loss = (w_p * rule.loss_real(v)).sum() + (w_q * rule.loss_fake(v)).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert theta.detach().numpy() == pytest.approx([0.5, -1.0], abs=1e-4)


# --- numerical robustness -------------------------------------------------------------------


@pytest.mark.parametrize("name", SCORING_RULES)
def test_finite_values_and_gradients_at_extreme_logits(name: str) -> None:
    rule = get_rule(name)
    v = torch.tensor([-1e4, -1e3, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1e3, 1e4], dtype=torch.float32)
    vr = v.clone().requires_grad_(True)
    vf = v.clone().requires_grad_(True)
    loss = rule.loss(vr, vf)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(vr.grad).all() and torch.isfinite(vf.grad).all()
    for half in (rule.loss_real, rule.loss_fake):
        assert torch.isfinite(half(v)).all()


@pytest.mark.parametrize("name", ("bernoulli", "hinge"))
def test_unbounded_rules_keep_gradient_at_extreme_logits(name: str) -> None:
    # Log loss and hinge grow linearly in a confidently wrong logit: the gradient stays -1.
    rule = get_rule(name)
    v = torch.tensor([-1e4, -50.0], dtype=torch.float32, requires_grad=True)
    rule.loss_real(v).sum().backward()
    assert torch.allclose(v.grad, torch.tensor([-1.0, -1.0]))


@pytest.mark.parametrize("name", ("brier", "spherical"))
def test_bounded_rules_saturate_at_extreme_logits(name: str) -> None:
    # Brier and spherical losses are bounded, so a confidently wrong logit gets a vanishing
    # (finite, non-positive) gradient -- a property of the rule, not of the implementation.
    rule = get_rule(name)
    v = torch.tensor([-1e4, -50.0, -5.0], dtype=torch.float32, requires_grad=True)
    rule.loss_real(v).sum().backward()
    assert torch.isfinite(v.grad).all() and (v.grad <= 0).all()
    assert abs(float(v.grad[0])) < 1e-30 and float(v.grad[2]) < -1e-4


@pytest.mark.parametrize("name", ("bernoulli", "brier", "hinge", "spherical"))
def test_float32_agrees_with_float64(name: str) -> None:
    rule = get_rule(name)
    v64 = torch.tensor([-30.0, -5.0, 0.5, 5.0, 30.0], dtype=torch.float64)
    for half in (rule.loss_real, rule.loss_fake):
        assert torch.allclose(half(v64.float()).double(), half(v64), rtol=1e-5, atol=1e-6)


def test_exponential_clamp_saturates_beyond_documented_range() -> None:
    rule = get_rule("exponential")
    c = exp_logit_clamp(torch.float32)
    # the values the docstring states, and its promise: a mean over 1e6 saturated terms is finite
    assert c == pytest.approx(149.8, abs=0.05) and exp_logit_clamp(torch.float64) == pytest.approx(1392, abs=0.5)
    for dtype in (torch.float32, torch.float64):
        wrong = torch.full((10**6,), -1e5, dtype=dtype)
        assert torch.isfinite(rule.loss(wrong, -wrong)) and torch.isfinite(rule.loss_real(wrong).sum())
    v = torch.tensor([-1e4, -c + 1.0], dtype=torch.float32, requires_grad=True)
    out = rule.loss_real(v)
    out.sum().backward()
    out = out.detach()
    assert torch.isfinite(out).all()
    assert float(out[0]) == pytest.approx(math.exp(c / 2), rel=1e-5)
    assert float(v.grad[0]) == 0.0 and float(v.grad[1]) < 0.0
    # inside the range it is exactly e^{-v/2}
    w = torch.tensor([-40.0, 0.0, 40.0], dtype=torch.float64)
    assert torch.allclose(rule.loss_real(w), torch.exp(-w / 2))


# --- registry and helpers -------------------------------------------------------------------


_BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"


def test_registry() -> None:
    assert SCORING_RULES == SCORING_NAMES
    for name in SCORING_RULES:
        rule = get_rule(name)
        assert isinstance(rule, ScoringRule) and rule.name == name and getattr(scoring, name) is rule
        for tex in (rule.score_tex, rule.loss_tex, rule.f_tex, rule.divergence_tex):
            assert tex_balanced(tex), (name, tex)
        # the f the book prints is the rule's implied f (generalised entropy, numpy)
        u = np.array([0.02, 0.5, 1.0, 1.7, 40.0])  # u log u at u = 0 is a limit, not a value
        np.testing.assert_allclose(tex_function(rule.f_tex, "u")(u), scoring_f_from_entropy(name, u),
                                   rtol=1e-12, atol=1e-12)
        assert "mohamed2016implicit" in rule.citation.split(",")
        if _BIB.exists():
            assert set(rule.citation.split(",")) <= bib_keys(_BIB), rule.citation
    with pytest.raises(Exception):
        get_rule("brier").name = "x"  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["", "log", "Brier", "hinge ", None])
def test_bad_name_raises_with_allowed_names(bad: object) -> None:
    with pytest.raises(ValueError, match="bernoulli, brier, exponential, misclassification, hinge, spherical"):
        get_rule(bad)  # type: ignore[arg-type]


def test_ratio_helpers() -> None:
    v = _t(np.log([0.25, 1.0, 3.0]))
    assert torch.allclose(ratio_from_logit(v), _t([0.25, 1.0, 3.0]))
    D = sigmoid(v.numpy())
    assert np.allclose(ratio_from_logit(v).numpy(), D / (1 - D), rtol=1e-12)


def test_bernoulli_implied_f_is_accurate_for_huge_ratios() -> None:
    """f(u) = u log u - (u+1) log(u+1) = -u log(1 + 1/u) - log(1+u); mpmath-free closed form via log1p."""
    import math

    from gan_lib.divergences.scoring import get_rule

    f = get_rule("bernoulli").implied_f
    for u in (1e6, 1e10, 1e14):
        exact = -u * math.log1p(1.0 / u) - math.log1p(u)
        assert float(f(torch.tensor(u, dtype=torch.float64))) == pytest.approx(exact, rel=1e-12)
