"""Tests for gan_lib.divergences against references computed another way.

References used: the f-GAN table's f written again here in numpy; numerical convex conjugates
(bounded scalar maximisation); finite differences; scipy.integrate.quad on numpy/scipy densities;
scipy.special.lambertw / wrightomega; textbook Gaussian values; Monte Carlo.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, special, stats

from gan_lib.data import toy
from gan_lib.divergences import (
    DIVERGENCES,
    GAUSSIAN_CLOSED_FORMS,
    FDivergence,
    gaussian_divergence,
    get_divergence,
    inverse_softplus,
    jsd,
    log_softplus,
    mc_divergence,
    quad_divergence,
    quad_expectation,
    variational_bound,
    wright_omega,
)
from reference import (
    bib_keys,
    f_divergence_f,
    f_divergence_fprime,
    fgan_activation,
    fgan_conjugate,
    fgan_dom_star,
    normal_pdf,
    scipy_divergence,
    tex_function,
    tex_interval,
)

ALPHAS = (-1.0, 0.5, 2.0, 3.0)
LOG2 = math.log(2.0)


def _all() -> list[FDivergence]:
    divs = [get_divergence(n) for n in DIVERGENCES if n != "alpha"]
    return divs + [get_divergence("alpha", alpha=a) for a in ALPHAS]


ALL = _all()
IDS = [d.name if d.alpha is None else f"alpha={d.alpha:g}" for d in ALL]


def f_np(d: FDivergence, u: np.ndarray | float) -> np.ndarray:
    """The table's f for ``d``, from the numpy references (independent of the torch lambdas under test)."""
    return f_divergence_f(d.name, u, d.alpha)


def t_points(d: FDivergence) -> list[float]:
    """Points of dom f* at which the conjugate is checked (optimal u between ~1e-3 and ~1e4)."""
    lo, hi = d.dom_star
    if d.name == "total_variation":
        return [-0.5, -0.4, 0.0, 0.3, 0.5]
    if d.name == "pearson":  # the table form is the exact conjugate only for t >= -2 (see module doc)
        return [-2.0, -1.0, 0.0, 1.0, 3.0]
    if d.alpha is not None and d.alpha > 1:  # includes t below the kink 1/(1-alpha)
        return [-3.0, -1.0, -0.4, 0.0, 1.0, 3.0]
    if d.name == "jeffrey":
        return [-5.0, -1.0, 0.0, 1.0, 3.0]
    if math.isfinite(hi):
        return [hi - 3.0, hi - 1.0, hi - 0.3, hi - 0.05]
    return [-3.0, -1.0, 0.0, 1.0, 3.0]


def numerical_conjugate(d: FDivergence, t: float) -> float:
    """sup_{u >= 0} t u - f(u): bounded maximisation over s = log u (the objective is unimodal in s),
    compared with the boundary value at u = 0."""
    res = optimize.minimize_scalar(
        lambda s: -(t * math.exp(s) - float(f_np(d, math.exp(s)))),
        bounds=(-40.0, 40.0),
        method="bounded",
        options={"xatol": 1e-12, "maxiter": 2000},
    )
    at_zero = -float(f_np(d, 0.0))  # t*0 - f(0+)
    return max(-float(res.fun), at_zero)


# ------------------------------------------------------------------------------------------------
# registry and errors
# ------------------------------------------------------------------------------------------------


def test_registry_names_and_fields() -> None:
    assert DIVERGENCES == (
        "kl", "reverse_kl", "pearson", "neyman", "squared_hellinger", "jeffrey",
        "jensen_shannon", "gan", "total_variation", "alpha",
    )  # fmt: skip
    for d in ALL:
        assert d.name in DIVERGENCES
    with pytest.raises(dataclasses.FrozenInstanceError):
        ALL[0].name = "x"  # type: ignore[misc]
    assert get_divergence("kl") is get_divergence("kl")
    assert get_divergence("alpha", alpha=0.5) == get_divergence("alpha", alpha=0.5)


_BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"


@pytest.mark.parametrize("d", ALL, ids=IDS)
def test_printed_formulas_are_the_table(d: FDivergence) -> None:
    """The TeX the book's tables render, evaluated (sympy), equals the numpy table; dom f* agrees too."""
    a = d.alpha
    u = np.array([0.01, 0.3, 0.9, 1.7, 5.0, 40.0])
    v = np.linspace(-3.0, 3.0, 13)
    t = fgan_activation(d.name, v, a)  # points inside dom f*
    for tex, x, ref in (
        (d.f_tex, ("u", u), f_divergence_f(d.name, u, a)),
        (d.t_star_tex, ("u", u), f_divergence_fprime(d.name, u, a)),
        (d.activation_tex, ("v", v), t),
        (d.f_star_tex, ("t", t), fgan_conjugate(d.name, t, a)),
    ):
        np.testing.assert_allclose(tex_function(tex, x[0], a)(x[1]), ref, rtol=1e-12, atol=1e-12, err_msg=tex)
    assert tex_interval(d.dom_tex, "t", a) == pytest.approx(fgan_dom_star(d.name, a), rel=1e-15)
    assert d.dom_star == pytest.approx(fgan_dom_star(d.name, a), rel=1e-15)
    if _BIB.exists():
        assert d.citation in bib_keys(_BIB)


@pytest.mark.parametrize("bad", ["kld", "KL", "", "js"])
def test_unknown_name_raises_with_allowed_list(bad: str) -> None:
    with pytest.raises(ValueError) as e:
        get_divergence(bad)
    assert repr(bad) in str(e.value) and "reverse_kl" in str(e.value) and "alpha" in str(e.value)


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, float("nan"), float("inf"), "x"])
def test_bad_alpha_raises(bad: object) -> None:
    with pytest.raises(ValueError) as e:
        get_divergence("alpha", alpha=bad)
    assert "|alpha - 1| >= 0.0001" in str(e.value)


def test_alpha_missing_and_unknown_options_raise() -> None:
    with pytest.raises(ValueError, match="needs alpha"):
        get_divergence("alpha")
    with pytest.raises(ValueError, match="beta"):
        get_divergence("alpha", alpha=0.5, beta=1)
    with pytest.raises(ValueError, match="no options"):
        get_divergence("kl", alpha=2.0)


# ------------------------------------------------------------------------------------------------
# f, f*, f', the activation
# ------------------------------------------------------------------------------------------------

U = np.concatenate([np.logspace(-4, 4, 41), [0.5, 0.999, 1.0, 1.001, 2.0]])


@pytest.mark.parametrize("d", ALL, ids=IDS)
def test_f_matches_table_and_value_at_one(d: FDivergence) -> None:
    got = d.f(torch.tensor(U, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, f_np(d, U), rtol=1e-10, atol=1e-13)
    f1 = -math.log(4.0) if d.name == "gan" else 0.0  # the GAN f is shifted: D_f = 2 JS - log 4
    assert float(d.f(torch.tensor(1.0, dtype=torch.float64))) == pytest.approx(f1, abs=1e-15)
    f32 = d.f(torch.tensor(U, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(f32, f_np(d, U), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("d", ALL, ids=IDS)
def test_f_star_is_the_convex_conjugate(d: FDivergence) -> None:
    for t in t_points(d):
        ref = numerical_conjugate(d, t)
        got = float(d.f_star(torch.tensor(t, dtype=torch.float64)))
        assert got == pytest.approx(ref, rel=1e-7, abs=1e-9), (d.name, t)


def test_pearson_table_form_exceeds_exact_conjugate_below_minus_two() -> None:
    d = get_divergence("pearson")
    for t in (-5.0, -3.0):
        exact = numerical_conjugate(d, t)
        assert exact == pytest.approx(-1.0, abs=1e-9)
        assert float(d.f_star(torch.tensor(t, dtype=torch.float64))) > exact


@pytest.mark.parametrize("d", ALL, ids=IDS)
def test_t_star_is_f_prime(d: FDivergence) -> None:
    u = U[np.abs(U - 1.0) > 1e-2] if d.name == "total_variation" else U
    h = 1e-5 * u
    numeric = (f_np(d, u + h) - f_np(d, u - h)) / (2 * h)
    got = d.t_star(torch.tensor(u, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-7)
    if d.name != "total_variation":
        h1 = 1e-6
        assert d.f_prime_1 == pytest.approx((f_np(d, 1 + h1) - f_np(d, 1 - h1)) / (2 * h1), abs=1e-7)
    else:
        assert d.f_prime_1 == 0.0


@pytest.mark.parametrize("d", ALL, ids=IDS)
def test_fenchel_young(d: FDivergence) -> None:
    u = U[np.abs(U - 1.0) > 1e-2] if d.name == "total_variation" else U
    ut = torch.tensor(u, dtype=torch.float64)
    t = d.t_star(ut)
    lhs = d.f_star(t).numpy()
    rhs = u * t.numpy() - f_np(d, u)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("d", ALL, ids=IDS)
def test_inverses_round_trip(d: FDivergence) -> None:
    ut = torch.tensor(np.logspace(-3, 3, 25), dtype=torch.float64)
    if d.f_prime_inverse is not None:
        np.testing.assert_allclose(d.f_prime_inverse(d.t_star(ut)).numpy(), ut.numpy(), rtol=1e-9)
    v = torch.linspace(-10, 10, 41, dtype=torch.float64)
    np.testing.assert_allclose(d.activation_inverse(d.activation(v)).numpy(), v.numpy(), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("d", ALL, ids=IDS)
def test_activation_maps_into_dom_f_star(d: FDivergence) -> None:
    v = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    t = d.activation(v)
    lo, hi = d.dom_star
    assert torch.isfinite(t).all()
    if d.name == "total_variation":
        assert (t >= lo).all() and (t <= hi).all()
    else:
        assert (t > lo).all() and (t < hi).all()
    assert torch.isfinite(d.f_star(t)).all()


@pytest.mark.parametrize("d", ALL, ids=IDS)
def test_conjugate_of_activation_matches_composition(d: FDivergence) -> None:
    v = torch.linspace(-15, 15, 601, dtype=torch.float64)
    comp = d.f_star(d.activation(v))
    got = d.conjugate_of_activation(v)
    ok = torch.isfinite(comp)
    assert ok.all()
    np.testing.assert_allclose(got[ok].numpy(), comp[ok].numpy(), rtol=1e-7, atol=1e-9)


EXP_GROWING = {"kl", "reverse_kl", "neyman", "squared_hellinger", "jeffrey"}
F32_CASES = ALL + [get_divergence("alpha", alpha=a) for a in (0.01, 0.99, 1.01, -5.0)]
F32_IDS = IDS + ["alpha=0.01", "alpha=0.99", "alpha=1.01", "alpha=-5"]


@pytest.mark.parametrize("d", F32_CASES, ids=F32_IDS)
def test_float32_finite_with_finite_gradients_in_safe_range(d: FDivergence) -> None:
    grows = d.name in EXP_GROWING or (d.alpha is not None and (0 < d.alpha < 1 or 1 < d.alpha < 1.5))
    assert (d.safe_logit_range is not None) == grows, d.safe_logit_range
    lo, hi = d.safe_logit_range or (-math.inf, math.inf)
    lo, hi = max(lo, -1e4), min(hi, 1e4)
    v = torch.cat([torch.linspace(lo, hi, 20001), torch.tensor([lo, hi, 0.0])]).float()
    v = v.clamp(lo, hi).requires_grad_(True)
    for fn in (d.activation, d.conjugate_of_activation):
        out = fn(v)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all(), (fn, v[~torch.isfinite(out)][:5])
        (g,) = torch.autograd.grad(out.sum(), v)
        assert torch.isfinite(g).all(), v[~torch.isfinite(g)][:5]
        # even a batch sum of 1e6 such terms stays finite
        assert float(out.detach().abs().max()) < 3e38 / 1e6
    # and it agrees with the float64 composite where the float32 value is moderate
    top = min(hi, 20.0)
    vm = torch.linspace(max(lo, top - 40.0), top, 401, dtype=torch.float64)
    vm32 = vm.float()
    c32 = d.conjugate_of_activation(vm32).double()
    c64 = d.conjugate_of_activation(vm32.double())  # same (rounded) inputs: only the arithmetic differs
    # exp(c * (...)) with c = alpha/(alpha-1) amplifies float32 rounding by |c| near alpha = 1
    cond = 1.0 if d.alpha is None else max(1.0, abs(d.alpha / (d.alpha - 1.0)))
    np.testing.assert_allclose(c32.numpy(), c64.numpy(), rtol=2e-5 * cond, atol=2e-5)


@pytest.mark.parametrize("name", ["kl", "squared_hellinger", "jeffrey"])
def test_safe_range_is_not_vacuous(name: str) -> None:
    """Well past the stated edge the float32 conjugate does overflow (the range is needed)."""
    d = get_divergence(name)
    assert d.safe_logit_range is not None
    v = torch.tensor([d.safe_logit_range[1] + 30.0], dtype=torch.float32)
    assert not torch.isfinite(d.conjugate_of_activation(v)).all()


# ------------------------------------------------------------------------------------------------
# helpers: Wright omega, log-softplus
# ------------------------------------------------------------------------------------------------


def test_wright_omega_against_scipy_lambertw() -> None:
    x = np.linspace(-50.0, 50.0, 2001)
    ref = special.lambertw(np.exp(x)).real
    got = wright_omega(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-14)
    xw = np.concatenate([np.linspace(-740, 740, 4001), np.logspace(3, 200, 30)])
    np.testing.assert_allclose(
        wright_omega(torch.tensor(xw, dtype=torch.float64)).numpy(), special.wrightomega(xw), rtol=2e-14
    )
    x32 = torch.tensor(x, dtype=torch.float32)
    assert wright_omega(x32).dtype == torch.float32


def test_wright_omega_gradients() -> None:
    x = torch.linspace(-40, 40, 17, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(wright_omega, (x,))
    assert torch.autograd.gradgradcheck(wright_omega, (x,))


def test_log_softplus_and_inverse_softplus() -> None:
    x = np.linspace(-700, 30, 3001)
    ref = np.log(np.log1p(np.exp(x)))
    got = log_softplus(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13)
    big = torch.tensor([-1e4, -1e3], dtype=torch.float64, requires_grad=True)
    out = log_softplus(big)  # log softplus(x) = x + O(e^x)
    np.testing.assert_allclose(out.detach().numpy(), big.detach().numpy(), rtol=1e-15)
    (g,) = torch.autograd.grad(out.sum(), big)
    np.testing.assert_allclose(g.numpy(), [1.0, 1.0])
    y = torch.tensor([1e-8, 0.1, 1.0, 30.0], dtype=torch.float64)
    back = torch.nn.functional.softplus(inverse_softplus(y))
    np.testing.assert_allclose(back.numpy(), y.numpy(), rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# densities: quadrature, closed forms, Monte Carlo, the bound
# ------------------------------------------------------------------------------------------------

# P: a two-component mixture, Q: a Gaussian wide enough that every divergence here is finite
# (Pearson needs 2 s_q^2 > s_p^2, Neyman and alpha=-1 need 2 s_p^2 > s_q^2, alpha=3: 3 s_q^2 > 2 s_p^2).
P_MIX = dict(means=[-1.0, 1.5], stds=[0.8, 1.0], weights=[0.4, 0.6])
Q_G = dict(mean=0.2, std=1.2)


def p_pdf(x: float) -> float:
    return sum(w * normal_pdf(x, m, s) for m, s, w in zip(*P_MIX.values()))


def q_pdf(x: float) -> float:
    return normal_pdf(x, Q_G["mean"], Q_G["std"])


def scipy_div(d: FDivergence, p, q, lo: float = -20.0, hi: float = 20.0) -> float:
    """int q f(p/q) by scipy quad with the numpy f of the reference table."""
    return scipy_divergence(d.name, p, q, lo, hi, alpha=d.alpha)


@pytest.fixture(scope="module")
def pq():
    return toy.mixture_1d(**P_MIX), toy.gaussian_1d(**Q_G)


@pytest.mark.parametrize("d", ALL, ids=IDS)
def test_quad_divergence_matches_scipy(d: FDivergence, pq) -> None:
    p, q = pq
    ref = scipy_div(d, p_pdf, q_pdf)
    assert quad_divergence(d, p, q) == pytest.approx(ref, rel=1e-8, abs=1e-12)


def _js_reference() -> float:
    def m(x: float) -> float:
        return 0.5 * (p_pdf(x) + q_pdf(x))

    def kl_to_m(a) -> float:
        return integrate.quad(lambda x: special.xlogy(a(x), a(x)) - special.xlogy(a(x), m(x)), -20, 20,
                              epsabs=1e-14, epsrel=1e-12, limit=400)[0]  # fmt: skip

    return 0.5 * kl_to_m(p_pdf) + 0.5 * kl_to_m(q_pdf)


def test_js_and_gan_f_give_two_js(pq) -> None:
    p, q = pq
    js = _js_reference()
    assert 0 < js < LOG2
    assert quad_divergence("jensen_shannon", p, q) == pytest.approx(2 * js, rel=1e-9)
    assert quad_divergence("gan", p, q) == pytest.approx(2 * js - math.log(4.0), rel=1e-9)
    assert jsd(p, q) == pytest.approx(js, rel=1e-9)


def test_total_variation_is_half_l1(pq) -> None:
    p, q = pq
    ref = 0.5 * integrate.quad(lambda x: abs(p_pdf(x) - q_pdf(x)), -20, 20, epsabs=1e-14, limit=400)[0]
    assert quad_divergence("total_variation", p, q) == pytest.approx(ref, rel=1e-8)
    # equal-variance Gaussians: TV = 2 Phi(|dm| / (2 s)) - 1
    tv = quad_divergence("total_variation", toy.gaussian_1d(0, 1), toy.gaussian_1d(1, 1))
    assert tv == pytest.approx(2 * stats.norm.cdf(0.5) - 1, rel=1e-9)


def test_quad_expectation_moments(pq) -> None:
    p, _ = pq
    mean = sum(w * m for m, w in zip(P_MIX["means"], P_MIX["weights"]))
    second = sum(w * (m * m + s * s) for m, s, w in zip(*P_MIX.values()))
    assert quad_expectation(lambda x: torch.ones_like(x), p) == pytest.approx(1.0, rel=1e-11)
    assert quad_expectation(lambda x: x, p) == pytest.approx(mean, rel=1e-10)
    assert quad_expectation(lambda x: x * x, p, -15.0, 15.0) == pytest.approx(second, rel=1e-10)


def test_quad_divergence_widens_for_slowly_decaying_ratio() -> None:
    # Pearson with s_q^2 just above s_p^2 / 2: the integrand's tails are much wider than either density.
    p, q = toy.gaussian_1d(0, 1), toy.gaussian_1d(0, 0.75)
    sp, sq = 1.0, 0.75  # int p^2/q - 1 = sq^2 / (sp sqrt(2 sq^2 - sp^2)) - 1 for equal means
    ref = sq**2 / (sp * math.sqrt(2 * sq**2 - sp**2)) - 1.0
    assert quad_divergence("pearson", p, q) == pytest.approx(ref, rel=1e-8)


@pytest.mark.parametrize("d", ALL, ids=IDS)
def test_optimal_critic_attains_the_bound(d: FDivergence, pq) -> None:
    p, q = pq

    def v_star(x: torch.Tensor) -> torch.Tensor:
        u = torch.exp(p.log_prob(x) - q.log_prob(x))
        return d.activation_inverse(d.t_star(u))

    bound = quad_expectation(lambda x: d.activation(v_star(x)), p, -20, 20) - quad_expectation(
        lambda x: d.conjugate_of_activation(v_star(x)), q, -20, 20
    )
    ref = scipy_div(d, p_pdf, q_pdf)
    assert bound == pytest.approx(ref, rel=1e-7, abs=1e-10)
    # a worse critic gives a smaller value
    def v_worse(x: torch.Tensor) -> torch.Tensor:
        v = v_star(x)  # +-inf for total variation
        return torch.where(torch.isfinite(v), 0.5 * v + 0.1, torch.sign(v))

    worse = quad_expectation(lambda x: d.activation(v_worse(x)), p, -20, 20) - quad_expectation(
        lambda x: d.conjugate_of_activation(v_worse(x)), q, -20, 20
    )
    assert worse < bound


def test_variational_bound_on_samples(pq) -> None:
    p, q = pq
    d = get_divergence("gan")
    torch.manual_seed(0)
    xp, xq = p.sample((50_000,)), q.sample((50_000,))
    logit = p.log_prob(xp) - q.log_prob(xp), p.log_prob(xq) - q.log_prob(xq)  # optimal GAN logit = log p/q
    val = float(variational_bound(d, *logit))
    ref = scipy_div(d, p_pdf, q_pdf)
    var_p = d.activation(logit[0]).var() / xp.numel()
    var_q = d.conjugate_of_activation(logit[1]).var() / xq.numel()
    se = math.sqrt(var_p + var_q)
    assert abs(val - ref) < 5 * se
    assert float(variational_bound("gan", torch.zeros(10), torch.zeros(10))) == pytest.approx(-2 * LOG2)


# Textbook values for N(0, 1) vs N(1, 1).
TEXTBOOK = {
    "kl": 0.5,
    "reverse_kl": 0.5,
    "jeffrey": 1.0,
    "squared_hellinger": 2 - 2 * math.exp(-1 / 8),  # Bhattacharyya coefficient exp(-dm^2 / 8)
    "pearson": math.e - 1,  # exp(dm^2 / s^2) - 1
    "neyman": math.e - 1,
}


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
def test_gaussian_textbook_values(name: str) -> None:
    assert gaussian_divergence(name, 0.0, 1.0, 1.0, 1.0) == pytest.approx(TEXTBOOK[name], rel=1e-12)
    matrix_form = gaussian_divergence(name, [0.0], [[1.0]], [1.0], [[1.0]])
    assert matrix_form == pytest.approx(TEXTBOOK[name], rel=1e-12)


def test_gaussian_kl_different_variance_and_infinite_chi2() -> None:
    assert gaussian_divergence("kl", 0, 4.0, 0, 1.0) == pytest.approx(0.5 * (4 - 1 - math.log(4)), rel=1e-12)
    assert gaussian_divergence("pearson", 0, 4.0, 0, 1.0) == math.inf  # needs 2 s_q^2 > s_p^2
    assert gaussian_divergence("neyman", 0, 1.0, 0, 4.0) == math.inf  # needs 2 s_p^2 > s_q^2
    assert gaussian_divergence("alpha", 0, 4.0, 0, 1.0, alpha=3.0) == math.inf  # needs 3 s_q^2 > 2 s_p^2
    assert math.isfinite(gaussian_divergence("alpha", 0, 9.0, 3, 0.01, alpha=0.5))
    with pytest.raises(ValueError) as e:
        gaussian_divergence("gan", 0, 1, 0, 1)
    assert "'gan'" in str(e.value) and "squared_hellinger" in str(e.value)
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_divergence("kl", 0, -1.0, 0, 1.0)


# (mean_p, std_p, mean_q, std_q), chosen so that every closed form here is finite
GAUSS_1D_PAIRS = [(0.0, 1.0, 1.0, 1.0), (0.3, 0.9, -0.4, 1.1), (1.0, 1.1, 0.0, 1.0)]


@pytest.mark.parametrize("d", [d for d in ALL if d.name in GAUSSIAN_CLOSED_FORMS], ids=[
    i for d, i in zip(ALL, IDS) if d.name in GAUSSIAN_CLOSED_FORMS])  # fmt: skip
@pytest.mark.parametrize("pair", GAUSS_1D_PAIRS)
def test_gaussian_closed_form_matches_quadrature_1d(d: FDivergence, pair) -> None:
    mp, sp, mq, sq = pair
    cf = gaussian_divergence(d, mp, sp**2, mq, sq**2)
    ref = scipy_div(d, lambda x: normal_pdf(x, mp, sp), lambda x: normal_pdf(x, mq, sq), -25.0, 25.0)
    assert cf == pytest.approx(ref, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("d", [d for d in ALL if d.name in GAUSSIAN_CLOSED_FORMS], ids=[
    i for d, i in zip(ALL, IDS) if d.name in GAUSSIAN_CLOSED_FORMS])  # fmt: skip
def test_gaussian_closed_form_matches_monte_carlo_2d(d: FDivergence) -> None:
    # close covariances, so that the Monte Carlo variance is finite for every f here
    # (it needs a Sq + (1-a) Sp > 0 for a = 2 alpha - 1 or so, e.g. alpha = -2 and 6)
    mp, Sp = [0.3, -0.2], [[1.0, 0.1], [0.1, 0.9]]
    mq, Sq = [0.0, 0.1], [[1.05, 0.0], [0.0, 0.95]]
    cf = gaussian_divergence(d, mp, Sp, mq, Sq)
    est, se = mc_divergence(d, toy.gaussian_nd(mp, Sp), toy.gaussian_nd(mq, Sq), 50_000, generator=1234)
    assert abs(est - cf) < 4 * se, (est, se, cf)
    assert se < 0.1 * abs(cf)


def test_gaussian_diagonal_and_isotropic_inputs_agree() -> None:
    a = gaussian_divergence("jeffrey", [0.0, 1.0], [2.0, 2.0], [1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    b = gaussian_divergence("jeffrey", [0.0, 1.0], 2.0, [1.0, 0.0], 1.0)
    # independent coordinates: the KL/Jeffrey of a product is the sum of the 1-D ones
    c = sum(gaussian_divergence("jeffrey", m, 2.0, 1.0 - m, 1.0) for m in (0.0, 1.0))
    assert a == pytest.approx(b, rel=1e-14) and a == pytest.approx(c, rel=1e-12)


def test_mc_divergence_reproducible_and_respects_global_rng() -> None:
    p, q = toy.gaussian_1d(0, 1), toy.gaussian_1d(1, 1)
    state = torch.get_rng_state()
    a = mc_divergence("kl", p, q, 1000, generator=7)
    assert torch.equal(state, torch.get_rng_state())
    assert a == mc_divergence("kl", p, q, 1000, generator=7)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert mc_divergence("kl", p, q, 1000, generator=g1) == mc_divergence("kl", p, q, 1000, generator=g2)
    with pytest.raises(ValueError):
        mc_divergence("kl", p, q, 1)


def test_quadrature_of_a_float32_integrand_terminates_and_is_accurate() -> None:
    """A network-like integrand with float32 rounding noise must not refine panels without end."""
    from scipy import integrate, stats

    from gan_lib.data import toy
    from gan_lib.divergences import quad_expectation

    p = toy.gaussian_1d(0.3, 1.2)
    fn = lambda x: torch.tanh(x.float() * 1.7 + 0.2).double()  # noqa: E731 - float32 like a trained net
    got = quad_expectation(fn, p, -10.0, 10.0)
    ref, _ = integrate.quad(lambda t: stats.norm.pdf(t, 0.3, 1.2) * np.tanh(t * 1.7 + 0.2), -10, 10, epsabs=1e-12)
    assert abs(got - ref) < 1e-6
    assert abs(quad_expectation(fn, p, -10.0, 10.0, rtol=1e-7) - ref) < 1e-6


def test_quadrature_is_exact_for_log_ratios_beyond_float_range() -> None:
    """KL(P||Q) with a very narrow Q: log p/q exceeds 700 where P has mass (scipy as reference)."""
    from scipy import integrate, stats

    from gan_lib.divergences import quad_divergence

    p = toy.mixture_1d([-2.0, 2.0], [0.5, 0.5], [0.5, 0.5])
    q = toy.gaussian_1d(2.0, 0.05)

    def log_p(t: float) -> float:
        return float(np.logaddexp(stats.norm.logpdf(t, -2, 0.5), stats.norm.logpdf(t, 2, 0.5)) + np.log(0.5))

    ref, _ = integrate.quad(lambda t: np.exp(log_p(t)) * (log_p(t) - stats.norm.logpdf(t, 2.0, 0.05)),
                            -8, 8, points=[-2, 2], limit=400, epsabs=1e-10)
    assert ref > 1000
    assert quad_divergence("kl", p, q, -8, 8) == pytest.approx(ref, rel=1e-8)


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "pearson", "neyman", "squared_hellinger", "jeffrey",
                                  "jensen_shannon", "gan", "total_variation", "alpha"])
def test_quadrature_matches_scipy_for_every_divergence_with_wide_ratios(name: str) -> None:
    """Every divergence's log-space form of p f(u)/u agrees with the plain integral of q f(p/q)."""
    from scipy import integrate, stats

    from gan_lib.divergences import get_divergence, quad_divergence

    alpha = 0.5 if name == "alpha" else None
    div = get_divergence(name, **({"alpha": alpha} if alpha else {}))
    p, q = toy.gaussian_1d(0.0, 1.0), toy.gaussian_1d(1.5, 0.8)
    # the textbook f in numpy, not div.f
    ref = scipy_divergence(name, lambda t: stats.norm.pdf(t, 0, 1), lambda t: stats.norm.pdf(t, 1.5, 0.8), -12, 12,
                           alpha=alpha, epsabs=1e-12, epsrel=1.49e-8)
    assert quad_divergence(div, p, q, -12, 12) == pytest.approx(ref, rel=1e-7, abs=1e-10)


def test_a_divergent_integral_is_reported_as_inf() -> None:
    from gan_lib.divergences import quad_divergence

    # Pearson chi^2 = int (p-q)^2/q diverges when q is narrower than p/sqrt(2)
    assert quad_divergence("pearson", toy.gaussian_1d(0, 1), toy.gaussian_1d(0, 0.6)) == math.inf
