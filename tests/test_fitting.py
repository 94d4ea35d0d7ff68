"""Tests for gan_lib.divergences (generator divergences, Gaussian fits) and gan_lib.metrics.coverage against references computed another way.

References here do not call the code under test: Poole et al.'s table written out in numpy,
scipy.integrate.quad of numpy integrands, the closed forms of gan_lib.divergences.gaussian_divergence
(its own tests check them against the textbook formulas), moment matching in closed form, finite
differences of numpy functions, and hand-made samples for the mode count.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.stats import norm

from gan_lib import losses
from gan_lib.divergences import gaussian_divergence
from gan_lib.divergences import (
    POOLE_NAMES,
    divergence_to_gaussian,
    fit_gaussian,
    generator_divergence,
    poole_family,
)
from gan_lib.metrics import mode_coverage, pushforward_masses_1d
from gan_lib.data.toy import gaussian_1d, mixture_1d

ALPHAS = (-1.0, 0.5, 2.0, 3.0)
U = np.array([1e-3, 0.05, 0.3, 1.0, 2.0, 7.5, 40.0])


# --- Poole et al.'s table, in numpy -------------------------------------------------------------


def table_f(name: str, u: np.ndarray, alpha: float | None = None) -> np.ndarray:
    if name == "standard":
        return np.log(1.0 + 1.0 / u)
    if name == "rkl":
        return -np.log(u)
    if name == "kl":
        return u * np.log(u)
    a = alpha
    return (u**a - 1.0 - a * (u - 1.0)) / (a * (a - 1.0))


def table_objective(name: str, v: np.ndarray, alpha: float | None = None) -> np.ndarray:
    """The 'generator objective (minimized)' column of the table, as a function of the logit V."""
    if name == "standard":
        return np.log(1.0 + np.exp(-v))
    if name == "rkl":
        return -v
    if name == "kl":
        return v * np.exp(v)
    a = alpha
    return (np.exp(a * v) - 1.0 - a * (np.exp(v) - 1.0)) / (a * (a - 1.0))


def members() -> list[tuple[str, float | None]]:
    return [("standard", None), ("rkl", None), ("kl", None)] + [("alpha", a) for a in ALPHAS]


def ids() -> list[str]:
    return [n if a is None else f"alpha={a:g}" for n, a in members()]


def f_prime(name: str, u: np.ndarray, alpha: float | None) -> np.ndarray:
    """f_G'(u), differentiated by hand from the table."""
    if name == "standard":
        return -1.0 / (u * (1.0 + u))
    if name == "rkl":
        return -1.0 / u
    if name == "kl":
        return 1.0 + np.log(u)
    return (u ** (alpha - 1.0) - 1.0) / (alpha - 1.0)


def test_f_prime_by_hand_matches_finite_differences() -> None:
    h = 1e-6
    for name, alpha in members():
        fd = (table_f(name, U * (1 + h), alpha) - table_f(name, U * (1 - h), alpha)) / (2 * h * U)
        np.testing.assert_allclose(f_prime(name, U, alpha), fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,alpha", members(), ids=ids())
def test_f_matches_poole_table(name: str, alpha: float | None) -> None:
    gd = generator_divergence(name, alpha=alpha)
    got = gd.f(torch.from_numpy(U)).numpy()
    np.testing.assert_allclose(got, table_f(name, U, alpha), rtol=1e-12, atol=1e-12)
    v = np.log(U)
    np.testing.assert_allclose(gd.objective(torch.from_numpy(v)).numpy(), table_objective(name, v, alpha), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,alpha", members(), ids=ids())
def test_registry_loss_is_the_table_objective(name: str, alpha: float | None) -> None:
    """The loss named by ``loss_name`` computes the table's objective (mean over the batch)."""
    gd = generator_divergence(name, alpha=alpha)
    loss = gd.loss()
    v = np.array([-3.0, -0.7, 0.0, 0.4, 2.5])
    for vi in v:
        got = float(loss.generator(torch.tensor([vi], dtype=torch.float64)))
        assert got == pytest.approx(float(table_objective(name, np.array(vi), alpha)), rel=1e-10, abs=1e-12)
    batch = float(loss.generator(torch.from_numpy(v)))
    assert batch == pytest.approx(float(table_objective(name, v, alpha).mean()), rel=1e-10)


@pytest.mark.parametrize("name,alpha", members(), ids=ids())
def test_envelope_is_f_minus_u_fprime(name: str, alpha: float | None) -> None:
    gd = generator_divergence(name, alpha=alpha)
    v = np.log(U[1:-1])
    u = np.exp(v)
    want = table_f(name, u, alpha) - u * f_prime(name, u, alpha)
    got = gd.envelope_objective(torch.from_numpy(v)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_envelope_kl_and_rkl_are_the_fgan_minimax_generators() -> None:
    """With the f-GAN critic's optimum v = 1 + log u (KL) and v = log u (reverse KL)."""
    v = torch.linspace(-4.0, 3.0, 15, dtype=torch.float64)
    kl = losses.get("fgan_kl", generator="minimax")
    rkl = losses.get("fgan_reverse_kl", generator="minimax")
    for vi in v:
        one = vi.reshape(1)
        assert float(generator_divergence("kl").envelope_objective(one)) == pytest.approx(float(kl.generator(one + 1.0)), rel=1e-12)
        assert float(generator_divergence("rkl").envelope_objective(one)) == pytest.approx(float(rkl.generator(one)), rel=1e-12)


@pytest.mark.parametrize("name,alpha", members(), ids=ids())
def test_equivalent_second_derivative(name: str, alpha: float | None) -> None:
    r"""``\tilde f''(u) = -f_G'(u) / u``, by finite differences of the numpy table."""
    gd = generator_divergence(name, alpha=alpha)
    u = np.array([0.2, 0.6, 1.0, 1.7, 4.0])
    h = 1e-3
    ft = lambda x: gd.equivalent(torch.from_numpy(x)).numpy()  # noqa: E731
    second = (ft(u * (1 + h)) - 2 * ft(u) + ft(u * (1 - h))) / (h * u) ** 2
    np.testing.assert_allclose(second, -f_prime(name, u, alpha) / u, rtol=2e-5, atol=1e-6)


def test_limits() -> None:
    """f_G(0+) and lim f_G(u)/u, from the numpy table at extreme ratios."""
    for gd in poole_family(ALPHAS):
        name, a = gd.name, gd.alpha
        at0 = table_f(name, np.array(1e-12), a)
        at_inf = table_f(name, np.array(1e12), a) / 1e12
        if math.isinf(gd.mode_seeking_at_zero):
            assert at0 > 20
        else:
            assert at0 == pytest.approx(gd.mode_seeking_at_zero, abs=1e-5)
        if math.isinf(gd.covering_at_infinity):
            assert at_inf > 20
        else:
            assert at_inf == pytest.approx(gd.covering_at_infinity, abs=1e-3)


def test_bad_names_and_alphas() -> None:
    with pytest.raises(ValueError, match="unknown generator divergence"):
        generator_divergence("js")
    for bad in (0, 1, 1.0, float("nan"), float("inf"), None, True):
        with pytest.raises(ValueError, match="alpha"):
            generator_divergence("alpha", alpha=bad)
    with pytest.raises(ValueError, match="takes no alpha"):
        generator_divergence("kl", alpha=2.0)
    assert set(POOLE_NAMES) == {"standard", "rkl", "kl", "alpha"}


# --- quadrature ---------------------------------------------------------------------------------

MIX = dict(means=[-2.0, 0.5, 2.5], stds=[0.5, 0.3, 0.8], weights=[0.5, 0.2, 0.3])


def mix_pdf(x: np.ndarray, means=MIX["means"], stds=MIX["stds"], weights=MIX["weights"]) -> np.ndarray:
    w = np.asarray(weights) / np.sum(weights)
    return sum(wi * norm.pdf(x, m, s) for wi, m, s in zip(w, means, stds))


def scipy_divergence(name: str, alpha: float | None, mu: float, sigma: float) -> float:
    def integrand(x: float) -> float:
        p, q = mix_pdf(np.array(x)), norm.pdf(x, mu, sigma)
        if q == 0.0:
            return 0.0
        return float(q * table_f(name, np.array(max(p / q, 1e-300)), alpha))

    pts = sorted(MIX["means"] + [mu])
    val, _ = integrate.quad(integrand, -25, 25, points=pts, limit=400, epsabs=1e-13, epsrel=1e-11)
    return val


@pytest.mark.parametrize("name,alpha", members(), ids=ids())
@pytest.mark.parametrize("mu,sigma", [(0.0, 1.5), (-1.0, 0.9), (2.0, 1.1)])
def test_divergence_matches_scipy_quad(name: str, alpha: float | None, mu: float, sigma: float) -> None:
    target = mixture_1d(**MIX)
    got = divergence_to_gaussian(generator_divergence(name, alpha=alpha), target, mu, sigma)
    want = scipy_divergence(name, alpha, mu, sigma)
    if name == "alpha":
        # int p^a q^(1-a) diverges in the tails unless the exponent of x^2 is negative there
        s = max(MIX["stds"])
        divergent = (1 - alpha) / sigma**2 <= -alpha / s**2 if alpha < 0 else alpha / s**2 <= (alpha - 1) / sigma**2
        assert math.isinf(got) == divergent
        if divergent:
            return
    assert got == pytest.approx(want, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("lib,name,alpha", [("kl", "kl", None), ("reverse_kl", "rkl", None), ("alpha", "alpha", -1.0), ("alpha", "alpha", 0.5), ("alpha", "alpha", 2.0)])
def test_divergence_between_gaussians_matches_closed_form(lib: str, name: str, alpha: float | None) -> None:
    opts = {} if alpha is None else {"alpha": alpha}
    for (m1, s1), (m2, s2) in [((0.0, 1.0), (0.3, 1.2)), ((1.0, 0.5), (-0.5, 0.6)), ((2.0, 2.0), (2.5, 1.5))]:
        got = divergence_to_gaussian(generator_divergence(name, alpha=alpha), gaussian_1d(m1, s1), m2, s2)
        want = gaussian_divergence(lib, m1, s1**2, m2, s2**2, **opts)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_kl_survives_extreme_ratios() -> None:
    """KL(P||Q) when p/q exceeds e^700 where P has mass: compare with E_P[log p - log q] by scipy."""
    target = mixture_1d([-2.0, 2.0], [0.5, 0.5], [0.5, 0.5])
    mu, sigma = 2.0, 0.05

    def integrand(x: float) -> float:
        lp = math.log(0.5 * norm.pdf(x, -2, 0.5) + 0.5 * norm.pdf(x, 2, 0.5) + 1e-320)
        return math.exp(lp) * (lp - norm.logpdf(x, mu, sigma))

    want, _ = integrate.quad(integrand, -12, 12, points=[-2, 2], limit=400, epsrel=1e-11)
    got = divergence_to_gaussian(generator_divergence("kl"), target, mu, sigma)
    assert want > 1500
    assert got == pytest.approx(want, rel=1e-8)


def test_divergent_integral_is_inf() -> None:
    # alpha = 2: int p^2 / q diverges when sigma^2 <= s^2 / 2
    assert divergence_to_gaussian(generator_divergence("alpha", alpha=2.0), gaussian_1d(0.0, 1.0), 0.0, 0.6) == math.inf
    assert math.isfinite(divergence_to_gaussian(generator_divergence("alpha", alpha=2.0), gaussian_1d(0.0, 1.0), 0.0, 0.8))


def test_standard_equivalent_is_rkl_minus_2js() -> None:
    r"""D_{\tilde f} for GAN-standard equals KL(Q||P) - 2 JS(P, Q) + log 4 (Arjovsky & Bottou 2017, Thm 2.5)."""
    target = mixture_1d(**MIX)
    mu, sigma = 0.3, 1.4
    q = lambda x: norm.pdf(x, mu, sigma)  # noqa: E731
    p = lambda x: mix_pdf(np.array(x))  # noqa: E731
    kl_qp = integrate.quad(lambda x: q(x) * math.log(q(x) / p(x)), -20, 20, limit=300, epsrel=1e-11)[0]
    m = lambda x: 0.5 * (p(x) + q(x))  # noqa: E731
    js = 0.5 * integrate.quad(lambda x: p(x) * math.log(p(x) / m(x)), -20, 20, limit=300, epsrel=1e-11)[0]
    js += 0.5 * integrate.quad(lambda x: q(x) * math.log(q(x) / m(x)), -20, 20, limit=300, epsrel=1e-11)[0]
    got = divergence_to_gaussian(generator_divergence("standard").equivalent, target, mu, sigma)
    assert got == pytest.approx(kl_qp - 2 * js + math.log(4.0), rel=1e-8)


def _frozen_gradient(h, mu: float, sigma: float) -> np.ndarray:
    r"""Gradient in (mu, log sigma) of E_z[h(V(mu + sigma z))] with V = log p - log q_theta held fixed."""

    def dlogp(x: float) -> float:
        w = np.asarray(MIX["weights"]) / np.sum(MIX["weights"])
        comps = [wi * norm.pdf(x, m, s) for wi, m, s in zip(w, MIX["means"], MIX["stds"])]
        return sum(c * (m - x) / s**2 for c, m, s in zip(comps, MIX["means"], MIX["stds"])) / sum(comps)

    def hprime(v: float, e: float = 1e-6) -> float:
        return (h(v + e) - h(v - e)) / (2 * e)

    def part(x: float) -> float:
        v = math.log(mix_pdf(np.array(x))) - norm.logpdf(x, mu, sigma)
        return hprime(v) * (dlogp(x) + (x - mu) / sigma**2)

    gm = integrate.quad(lambda x: norm.pdf(x, mu, sigma) * part(x), mu - 12 * sigma, mu + 12 * sigma, limit=300)[0]
    gs = integrate.quad(lambda x: norm.pdf(x, mu, sigma) * part(x) * (x - mu), mu - 12 * sigma, mu + 12 * sigma, limit=300)[0]
    return np.array([gm, gs])


def _fd_gradient(f, mu: float, sigma: float, e: float = 1e-5) -> np.ndarray:
    target = mixture_1d(**MIX)
    d = lambda m, s: divergence_to_gaussian(f, target, m, s)  # noqa: E731
    return np.array([
        (d(mu + e, sigma) - d(mu - e, sigma)) / (2 * e),
        (d(mu, sigma * math.exp(e)) - d(mu, sigma * math.exp(-e))) / (2 * e),
    ])


@pytest.mark.parametrize("name,alpha", [("standard", None), ("rkl", None), ("kl", None), ("alpha", 0.5), ("alpha", -1.0)])
def test_frozen_ratio_gradient_is_gradient_of_equivalent(name: str, alpha: float | None) -> None:
    """Poole's objective with the exact ratio held fixed descends D_{f~}, the envelope descends D_{f_G}."""
    gd = generator_divergence(name, alpha=alpha)
    mu, sigma = 0.4, 0.7
    poole = _frozen_gradient(lambda v: float(table_objective(name, np.array(v), alpha)), mu, sigma)
    np.testing.assert_allclose(poole, _fd_gradient(gd.equivalent, mu, sigma), rtol=1e-5, atol=1e-7)
    env = lambda v: float(table_f(name, np.exp(np.array(v)), alpha) - np.exp(v) * f_prime(name, np.exp(np.array(v)), alpha))  # noqa: E731
    np.testing.assert_allclose(_frozen_gradient(env, mu, sigma), _fd_gradient(gd, mu, sigma), rtol=1e-5, atol=1e-7)
    if name != "rkl":  # the two differ, so the test can tell them apart
        assert np.abs(poole - _fd_gradient(gd, mu, sigma)).max() > 1e-3


# --- fitting ------------------------------------------------------------------------------------


def test_kl_fit_is_moment_matching() -> None:
    target = mixture_1d(**MIX)
    w = np.asarray(MIX["weights"]) / np.sum(MIX["weights"])
    m, s = np.asarray(MIX["means"]), np.asarray(MIX["stds"])
    mean = float(w @ m)
    std = math.sqrt(float(w @ (s**2 + m**2)) - mean**2)
    res = fit_gaussian(generator_divergence("kl"), target)
    assert res.best.mu == pytest.approx(mean, abs=1e-5)
    assert res.best.sigma == pytest.approx(std, abs=1e-5)
    assert len(res.optima) == 1  # KL(P||Q) is convex in the natural parameters: one optimum


@pytest.mark.parametrize("name,alpha", members(), ids=ids())
def test_gaussian_target_is_recovered(name: str, alpha: float | None) -> None:
    res = fit_gaussian(generator_divergence(name, alpha=alpha), gaussian_1d(1.3, 0.7))
    assert res.best.mu == pytest.approx(1.3, abs=1e-4)
    assert res.best.sigma == pytest.approx(0.7, abs=1e-4)
    gd = generator_divergence(name, alpha=alpha)
    floor = math.log(2.0) if name == "standard" else 0.0  # f_G(1) = log 2 for GAN-standard
    assert res.best.value == pytest.approx(floor, abs=1e-8)
    assert gd.f(torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(floor, abs=1e-12)


def test_reverse_kl_lands_on_one_component() -> None:
    means, stds, weights = [-4.0, 0.0, 5.0], [0.5, 0.7, 0.6], [0.3, 0.5, 0.2]
    target = mixture_1d(means, stds, weights)
    res = fit_gaussian(generator_divergence("rkl"), target)
    # best: the heaviest component; every component is a local optimum
    assert res.best.mu == pytest.approx(0.0, abs=0.02)
    assert res.best.sigma == pytest.approx(0.7, rel=0.02)
    for m, s in zip(means, stds):
        assert any(abs(o.mu - m) < 0.02 and abs(o.sigma / s - 1) < 0.02 for o in res.optima)
    # and the reverse KL there is close to -log(weight) (the model sees one component)
    assert res.best.value == pytest.approx(-math.log(0.5), abs=0.01)


def test_unbounded_equivalent_runs_to_the_box() -> None:
    target = mixture_1d([-1.2, 1.2], [0.6, 0.6], [0.7, 0.3])
    res = fit_gaussian(generator_divergence("kl").equivalent, target, starts=[(0.0, 1.0)])
    assert res.best.at_bound and res.best.value < -10


# --- mode coverage and pushforward --------------------------------------------------------------


def test_mode_coverage_counts_by_hand() -> None:
    means = [[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]
    x = np.array([[0.1, 0.0]] * 6 + [[4.0, 0.2]] * 3 + [[2.0, 2.0]])
    cov = mode_coverage(x, means, [0.1, 0.1, 0.1], k=3.0, min_fraction=0.25)
    np.testing.assert_allclose(cov.fractions, [0.6, 0.3, 0.0])
    assert cov.covered == 2 and cov.low_quality == pytest.approx(0.1)
    # 1-D, with a sample exactly on the 3-sigma boundary counted in
    cov1 = mode_coverage(np.array([0.3, 5.0]), np.array([0.0]), [0.1], k=3.0, min_fraction=0.5)
    assert cov1.covered == 1 and cov1.low_quality == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mode_coverage(x, means, [0.1, 0.1])


def test_pushforward_of_affine_map_is_gaussian() -> None:
    edges = np.linspace(-3.0, 5.0, 81)
    masses = pushforward_masses_1d(lambda z: 1.0 + 0.5 * z, edges, n_z=200_000)
    want = np.diff(norm.cdf(edges, 1.0, 0.5))
    np.testing.assert_allclose(masses, want, atol=2e-5)
    # a two-branch map: |z| has density 2 phi on (0, inf)
    masses = pushforward_masses_1d(lambda z: z.abs(), np.linspace(0.0, 4.0, 41), n_z=200_000)
    np.testing.assert_allclose(masses, 2 * np.diff(norm.cdf(np.linspace(0.0, 4.0, 41))), atol=2e-5)


def test_envelope_loss_object() -> None:
    v_real = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    v_fake = torch.tensor([-0.5, 0.1, -2.2], dtype=torch.float64)
    loss = generator_divergence("alpha", alpha=2.0).envelope_loss()
    bce = np.mean(np.log1p(np.exp(-v_real.numpy()))) + np.mean(np.log1p(np.exp(v_fake.numpy())))
    assert float(loss.discriminator(v_real, v_fake)) == pytest.approx(bce, rel=1e-12)
    assert float(loss.generator(v_fake)) == pytest.approx(float(np.mean(-(np.exp(2 * v_fake.numpy()) - 1) / 2)), rel=1e-12)
