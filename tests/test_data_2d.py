"""Tests of gan_lib.data.two_d against references computed another way.

References: composite Gauss--Legendre quadrature written here in numpy (the densities integrate to
one; the mass of each histogram bin), closed-form moments, scipy.stats (KS tests of marginals and
of standardised conditionals, multivariate_normal for the mixtures, chi-square of bin counts),
scipy.integrate.quad for the funnel's variance. Moments must agree to within four standard errors.
"""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.special import logsumexp

from gan_lib import data
from gan_lib.data import Dataset2D, get, names_2d

Z = 4.0  # tolerance in standard errors
P_MIN = 1e-4  # smallest p-value a correct sampler is allowed (for each test)

ALL = ("mog", "banana", "rings", "square", "cosine", "funnel", "ring8", "grid25")


# --- quadrature helpers (numpy) ---------------------------------------------------------------


def gl(lo: float, hi: float, panels: int, order: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of composite Gauss--Legendre on [lo, hi]."""
    t, w = np.polynomial.legendre.leggauss(order)
    e = np.linspace(lo, hi, panels + 1)
    half = np.diff(e)[:, None] / 2.0
    mid = (e[:-1] + e[1:])[:, None] / 2.0
    return (mid + half * t).reshape(-1), (half * w).reshape(-1)


def integral(ds: Dataset2D, x0_lo, x0_hi, centre, half, panels0=100, panels1=16) -> float:
    """int p(x0, x1) over x0 in [x0_lo, x0_hi] and x1 in centre(x0) +- half(x0)."""
    x0, w0 = gl(x0_lo, x0_hi, panels0)
    t, wt = gl(-1.0, 1.0, panels1)
    c, h = centre(x0), half(x0)
    x1 = c[:, None] + h[:, None] * t[None, :]
    pts = np.stack([np.broadcast_to(x0[:, None], x1.shape), x1], axis=-1)
    p = np.exp(ds.log_prob(torch.from_numpy(pts)).numpy())
    return float(np.einsum("i,ij,j,i->", w0, p, wt, h))


def funnel_var(x0: np.ndarray) -> np.ndarray:
    return np.minimum(np.exp(-x0), 10.0)


# --- normalisation ----------------------------------------------------------------------------

CASES = {
    "mog": (get("mog"), -10, 10, lambda a: 0 * a, lambda a: 0 * a + 5),
    "mog_opts": (get("mog", offset=1.0, std=1.5), -14, 14, lambda a: 0 * a, lambda a: 0 * a + 14),
    "banana": (get("banana"), -20, 20, lambda a: 0.2 * (a**2 - 4), lambda a: 0 * a + 10),
    "rings": (get("rings"), -6.5, 6.5, lambda a: 0 * a, lambda a: 0 * a + 6.5),
    "cosine": (get("cosine"), -4, 4, lambda a: 3 * np.cos(2 * a), lambda a: 0 * a + 10),
    "funnel": (get("funnel"), -24, 24, lambda a: 0 * a, lambda a: 12 * np.sqrt(funnel_var(a))),
    "ring8": (get("ring8", std=0.25), -4, 4, lambda a: 0 * a, lambda a: 0 * a + 4),
    "grid25": (get("grid25", std=0.4), -7, 7, lambda a: 0 * a, lambda a: 0 * a + 7),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_density_integrates_to_one(case):
    ds, lo, hi, centre, half = CASES[case]
    assert integral(ds, lo, hi, centre, half) == pytest.approx(1.0, abs=1e-9)


def test_rings_density_counts_both_radial_branches():
    # with a wide ring (radius 0.5, std 1) a draw with r < 0 is common: only the two-branch density
    # integrates to one (the r > 0 branch alone would integrate to Phi(0.5) = 0.69)
    ds = get("rings", radius=0.5, std=1.0)
    x0, w0 = gl(-7, 7, 60)
    pts = np.stack(np.meshgrid(x0, x0, indexing="ij"), axis=-1)
    # nodes never hit the origin, where the density has an integrable 1/|x| peak
    p = np.exp(ds.log_prob(torch.from_numpy(pts)).numpy())
    assert float(w0 @ p @ w0) == pytest.approx(1.0, abs=2e-3)
    rho = 1.3
    ref = (stats.norm.pdf(rho, 0.5, 1.0) + stats.norm.pdf(-rho, 0.5, 1.0)) / (2 * math.pi * rho)
    assert math.exp(float(ds.log_prob(torch.tensor([0.0, rho], dtype=torch.float64)))) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("radius, std, rho", [(5.0, 0.2, 1e-170), (5.0, 0.2, 3e-160), (1e200, 1e199, 1e200),
                                              (1e200, 1e199, 3e200)])
def test_rings_density_far_out_and_near_the_origin(radius, std, rho):
    # the radius is taken without squaring the coordinates: |x|^2 under- or overflows float64 here
    ds = get("rings", radius=radius, std=std)
    branches = logsumexp([stats.norm.logpdf(rho, radius, std), stats.norm.logpdf(-rho, radius, std)])
    ref = branches - math.log(2 * math.pi) - math.log(rho)
    for x in ([rho, 0.0], [0.0, -rho], [rho / math.sqrt(2), rho / math.sqrt(2)]):
        assert float(ds.log_prob(torch.tensor(x, dtype=torch.float64))) == pytest.approx(ref, rel=1e-12)


def test_square_and_cosine_supports():
    sq = get("square")
    inside = torch.tensor([[0.0, 0.0], [2.999, -2.999], [3.0, 3.0], [-1.0, 2.0]])
    outside = torch.tensor([[3.001, 0.0], [0.0, -3.5], [10.0, 10.0]])
    assert torch.allclose(sq.log_prob(inside), torch.full((4,), math.log(1 / 36), dtype=torch.float64))
    assert torch.all(sq.log_prob(outside) == -math.inf)
    assert float(get("square", half_width=0.5).log_prob(torch.zeros(2))) == pytest.approx(0.0)
    cos = get("cosine")
    x = torch.tensor([[0.3, -0.2], [4.5, 0.0], [-4.01, 3.0]], dtype=torch.float64)
    lp = cos.log_prob(x)
    assert float(lp[0]) == pytest.approx(math.log(1 / 8) + stats.norm.logpdf(-0.2, 3 * math.cos(0.6), 1.0), rel=1e-12)
    assert torch.all(lp[1:] == -math.inf)


def test_log_prob_against_scipy_pointwise():
    x = np.array([[0.3, -1.2], [-2.5, 0.7], [1.0, 4.0], [-6.0, -0.1]])
    t = torch.from_numpy(x)
    banana = stats.norm.logpdf(x[:, 0], 0, 2) + stats.norm.logpdf(x[:, 1], 0.2 * (x[:, 0] ** 2 - 4), 1)
    funnel = stats.norm.logpdf(x[:, 0], 0, 2) + stats.norm.logpdf(x[:, 1], 0, np.sqrt(funnel_var(x[:, 0])))
    np.testing.assert_allclose(get("banana").log_prob(t).numpy(), banana, rtol=1e-12)
    np.testing.assert_allclose(get("funnel").log_prob(t).numpy(), funnel, rtol=1e-12)
    # the funnel's clip: far left the variance is 10, far right it is exp(-x0) (no underflow)
    far = torch.tensor([[-30.0, 1.0], [800.0, 0.0]], dtype=torch.float64)
    lp = get("funnel").log_prob(far).numpy()
    assert lp[0] == pytest.approx(stats.norm.logpdf(-30, 0, 2) + stats.norm.logpdf(1.0, 0, math.sqrt(10)), rel=1e-12)
    assert lp[1] == pytest.approx(stats.norm.logpdf(800, 0, 2) + 400 - 0.5 * math.log(2 * math.pi), rel=1e-12)


@pytest.mark.parametrize("name", ["mog", "ring8", "grid25"])
def test_mixture_log_prob_against_scipy(name):
    ds = get(name)
    if name == "mog":
        means = np.array([[-4.0, 0.0], [4.0, 0.0]])
        std = 0.5
    elif name == "ring8":
        a = np.arange(8) * np.pi / 4
        means = 2.0 * np.stack([np.cos(a), np.sin(a)], 1)
        std = 0.02
    else:
        means = np.array([(i, j) for i in (-4, -2, 0, 2, 4) for j in (-4, -2, 0, 2, 4)], dtype=float)
        std = 0.05
    x = ds.sample(500, generator=3).double().numpy()
    x[:50] += np.random.default_rng(0).normal(0, 0.3, size=(50, 2))  # some points between modes
    comp = np.stack([stats.multivariate_normal(m, std**2 * np.eye(2)).logpdf(x) for m in means], 1)
    ref = logsumexp(comp, axis=1) - np.log(len(means))
    np.testing.assert_allclose(ds.log_prob(torch.from_numpy(x)).numpy(), ref, rtol=1e-10, atol=1e-10)
    m = ds.modes
    assert m is not None and m.means.shape == (len(means), 2) and m.stds.shape == (len(means),)
    got = {tuple(np.round(r, 9)) for r in m.means.numpy()}
    assert got == {tuple(np.round(r, 9)) for r in means}
    np.testing.assert_allclose(m.stds.numpy(), std)


def test_modes_none_for_non_mixtures():
    for name in ("banana", "rings", "square", "cosine", "funnel"):
        assert get(name).modes is None


# --- the sampler against the density: bin counts ----------------------------------------------


def bin_masses(ds: Dataset2D, e0: np.ndarray, e1: np.ndarray, sub: int = 6, order: int = 8) -> np.ndarray:
    """Mass of each bin [e0_i, e0_i+1) x [e1_j, e1_j+1) by composite Gauss--Legendre."""
    t, w = np.polynomial.legendre.leggauss(order)

    def nodes(e):
        fine = np.concatenate([np.linspace(a, b, sub + 1)[:-1] for a, b in zip(e[:-1], e[1:])] + [e[-1:]])
        half = np.diff(fine)[:, None] / 2
        mid = (fine[:-1] + fine[1:])[:, None] / 2
        return (mid + half * t).reshape(len(e) - 1, -1), (half * w).reshape(len(e) - 1, -1)

    n0, w0 = nodes(e0)
    n1, w1 = nodes(e1)
    pts = np.stack(np.meshgrid(n0.reshape(-1), n1.reshape(-1), indexing="ij"), -1)
    p = np.exp(ds.log_prob(torch.from_numpy(pts)).numpy())
    p = p.reshape(n0.shape[0], n0.shape[1], n1.shape[0], n1.shape[1])
    return np.einsum("iajb,ia,jb->ij", p, w0, w1)


HIST = {
    "mog": (get("mog"), np.linspace(-6, 6, 25), np.linspace(-2, 2, 9)),
    "banana": (get("banana"), np.linspace(-5, 5, 21), np.linspace(-4, 6, 21)),
    "rings": (get("rings"), np.linspace(-6, 6, 25), np.linspace(-6, 6, 25)),
    "cosine": (get("cosine"), np.linspace(-4, 4, 17), np.linspace(-5, 5, 21)),
    "funnel": (get("funnel"), np.linspace(-5, 3, 17), np.linspace(-6, 6, 25)),
    "square": (get("square"), np.linspace(-3, 3, 7), np.linspace(-3, 3, 7)),
}


@pytest.mark.parametrize("name", sorted(HIST))
def test_sample_histogram_matches_log_prob(name):
    ds, e0, e1 = HIST[name]
    n = 100_000
    x = ds.sample(n, generator=11).double().numpy()
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[e0, e1])
    mass = bin_masses(ds, e0, e1)
    exp = n * mass.reshape(-1)
    obs = counts.reshape(-1)
    big = exp >= 20
    obs_all = np.append(obs[big], n - obs[big].sum())
    exp_all = np.append(exp[big], n - exp[big].sum())
    assert big.sum() >= 20 and exp_all[-1] >= -1e-6
    keep = exp_all > 5
    chi2 = float(((obs_all[keep] - exp_all[keep]) ** 2 / exp_all[keep]).sum())
    dof = int(keep.sum()) - 1
    assert stats.chi2.sf(chi2, dof) > P_MIN, (chi2, dof)


# --- moments and marginals --------------------------------------------------------------------


def assert_mean(values: np.ndarray, mean: float, var: float):
    se = math.sqrt(var / len(values))
    assert abs(values.mean() - mean) < Z * se, (values.mean(), mean, se)


def test_moments_against_closed_forms():
    n = 200_000
    b = get("banana").sample(n, generator=1).double().numpy()
    assert_mean(b[:, 0], 0.0, 4.0)
    # E x1 = 0.2 (E x0^2 - 4) = 0; Var x1 = 0.04 Var(x0^2) + 1 = 0.04 * 2 * 16 + 1
    assert_mean(b[:, 1], 0.0, 0.04 * 32 + 1)
    assert_mean(b[:, 1] ** 2, 0.04 * 32 + 1, 40.0)  # generous variance bound for x1^2
    m = get("mog").sample(n, generator=2).double().numpy()
    assert_mean(m[:, 0], 0.0, 16.25)
    assert_mean(m[:, 0] ** 2, 16.25, 4 * 16 * 0.25 + 2 * 0.25**2)  # Var(x0^2) for +-4 + N(0, 0.25)
    r = get("rings").sample(n, generator=3).double().numpy()
    r2 = (r**2).sum(1)
    assert_mean(r2, 25.04, 4 * 25 * 0.04 + 2 * 0.04**2)
    s = get("square").sample(n, generator=4).double().numpy()
    assert_mean(s[:, 0] ** 2, 3.0, 81 / 5 - 9)
    c = get("cosine").sample(n, generator=5).double().numpy()
    assert_mean(c[:, 1], 3 * math.sin(8) / 8, 1 + 9 * 0.5)  # E 3 cos(2 x0) for x0 ~ U(-4, 4)
    f = get("funnel").sample(n, generator=6).double().numpy()
    ev, _ = integrate.quad(lambda a: min(math.exp(-a), 10.0) * stats.norm.pdf(a, 0, 2), -40, 40, points=[-math.log(10)])
    assert_mean(f[:, 1] ** 2, ev, 3 * 100)  # E x1^4 <= 3 * 10^2
    assert_mean(f[:, 1], 0.0, ev)


@pytest.mark.parametrize(
    "name, transform, cdf",
    [
        ("banana", lambda x: x[:, 0], stats.norm(0, 2).cdf),
        ("banana", lambda x: x[:, 1] - 0.2 * (x[:, 0] ** 2 - 4), "norm"),
        ("square", lambda x: x[:, 1], stats.uniform(-3, 6).cdf),
        ("cosine", lambda x: x[:, 0], stats.uniform(-4, 8).cdf),
        ("cosine", lambda x: x[:, 1] - 3 * np.cos(2 * x[:, 0]), "norm"),
        ("funnel", lambda x: x[:, 0], stats.norm(0, 2).cdf),
        ("funnel", lambda x: x[:, 1] / np.sqrt(funnel_var(x[:, 0])), "norm"),
        ("rings", lambda x: np.arctan2(x[:, 0], x[:, 1]), stats.uniform(-np.pi, 2 * np.pi).cdf),
        ("rings", lambda x: np.hypot(x[:, 0], x[:, 1]), stats.norm(5, 0.2).cdf),
        ("mog", lambda x: x[:, 1], stats.norm(0, 0.5).cdf),
    ],
)
def test_ks_marginals(name, transform, cdf):
    x = get(name).sample(20_000, generator=7).double().numpy()
    assert stats.kstest(transform(x), cdf).pvalue > P_MIN


def test_ring8_and_grid25_samples_sit_on_their_modes():
    for name, means, std in [
        ("ring8", 2.0 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1), 0.02),
        ("grid25", np.array([(i, j) for i in range(-4, 5, 2) for j in range(-4, 5, 2)], float), 0.05),
    ]:
        x = get(name).sample(25_000, generator=8).double().numpy()
        d = np.linalg.norm(x[:, None] - means[None], axis=-1)
        nearest = d.argmin(1)
        # squared distance / std^2 to the own mode is chi-square with 2 dof
        assert stats.kstest((d.min(1) / std) ** 2, stats.chi2(2).cdf).pvalue > P_MIN
        counts = np.bincount(nearest, minlength=len(means))
        assert stats.chisquare(counts).pvalue > P_MIN


# --- reproducibility, shapes, errors ----------------------------------------------------------


def test_sampling_reproducible_and_shapes():
    for name in ALL:
        ds = get(name)
        a, b = ds.sample(100, generator=5), ds.sample(100, seed=5)
        assert a.dtype == torch.float32 and a.shape == (100, 2) and torch.equal(a, b)
        with pytest.raises(TypeError, match="not both"):
            ds.sample(3, generator=5, seed=5)
        with pytest.raises(TypeError, match="seed"):
            ds.sample(3, seed="five")
        assert not torch.equal(a, ds.sample(100, generator=6))
        g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
        assert torch.equal(ds.sample(10, g1), ds.sample(10, g2))
        torch.manual_seed(1)
        c = ds.sample(10)
        torch.manual_seed(1)
        assert torch.equal(c, ds.sample(10))
        e = ds.sample(0, generator=1)
        assert e.shape == (0, 2) and e.dtype == torch.float32
        assert ds.log_prob(e).shape == (0,)
        grid = torch.zeros(3, 4, 2)
        assert ds.log_prob(grid).shape == (3, 4)


def test_names_options_and_errors():
    assert names_2d() == ALL
    assert data.get is get
    assert dict(get("mog").options) == {"offset": 4.0, "std": 0.5}
    assert dict(get("ring8", radius=3).options) == {"radius": 3.0, "std": 0.02}
    assert float(get("mog", offset=2.0).modes.means[1, 0]) == 2.0
    with pytest.raises(TypeError):
        get("mog").options["std"] = 1.0  # read-only
    ds = get("ring8", std=0.1)
    assert pickle.loads(pickle.dumps(ds)) == ds and copy.deepcopy(ds) == ds
    assert {ds: 1}[get("ring8", std=0.1)] == 1 and get("mog") == get("mog", std=0.5) and get("mog") != get("mog", std=0.4)
    with pytest.raises(ValueError, match="allowed: mog, banana, rings, square, cosine, funnel, ring8, grid25"):
        get("moons")
    with pytest.raises(ValueError, match=r"'sd'.*allowed: offset \(default 4\), std \(default 0.5\)"):
        get("mog", sd=1.0)
    with pytest.raises(ValueError, match="allowed: none"):
        get("banana", std=1.0)
    for bad in (-1.0, 0.0, math.inf, math.nan, "1", True):
        with pytest.raises(ValueError, match="std="):
            get("grid25", std=bad)
    for n in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="n="):
            get("mog").sample(n)
    for bad in ("seed", -1, 2**64, 1.5):  # torch's seeds are 64-bit: 2**64 used to fail inside torch
        with pytest.raises(TypeError, match=r"generator=.*an integer seed in \[0, 2\*\*64\)"):
            get("mog").sample(3, generator=bad)
    class OnCuda(torch.Generator):  # a CUDA generator's device, without needing CUDA
        @property
        def device(self) -> torch.device:
            return torch.device("cuda", 0)

    with pytest.raises(ValueError, match=r"generator is on cuda:0; the 2-D datasets draw on the CPU"):
        get("mog").sample(3, generator=OnCuda())
    top = get("mog").sample(3, generator=2**64 - 1)
    assert torch.equal(top, get("mog").sample(3, generator=torch.Generator().manual_seed(2**64 - 1)))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        get("mog").log_prob(torch.zeros(4, 3))
    with pytest.raises(TypeError, match=r"log_prob needs real-valued points of shape \(\.\.\., 2\); got 'ab'"):
        get("mog").log_prob("ab")
    lp = get("banana").log_prob(torch.tensor([[math.nan, 0.0], [0.0, 0.0]]))
    assert math.isnan(lp[0]) and math.isfinite(lp[1])
    assert math.isinf(float(get("rings").log_prob(torch.zeros(2))))  # the integrable 1/|x| peak


def test_log_prob_where_a_scale_over_or_underflows():
    # the funnel at x1 = 0 far out: variance e^{-x0}, 1/std overflows float64 above x0 ~ 1420;
    # closed form: log N(x0; 0, 4) + log N(0; 0, e^{-x0}) = -x0^2/8 - log 2 - log(2 pi) + x0/2
    x0 = 1500.0
    ref = -x0**2 / 8 - math.log(2.0) - math.log(2 * math.pi) + x0 / 2
    lp = get("funnel").log_prob([[x0, 0.0], [1e300, 0.0]])
    assert float(lp[0]) == pytest.approx(ref, rel=1e-14) and float(lp[1]) == -math.inf
    # a mixture with std 1e-200 (s^2 underflows) at a mode's mean: log(1/K) - log(2 pi s^2)
    s = 1e-200
    ref = -math.log(2.0) - math.log(2 * math.pi) - 2 * math.log(s)
    assert float(get("mog", std=s).log_prob([[4.0, 0.0]])[0]) == pytest.approx(ref, rel=1e-14)
    # rings at the origin: +inf (the 1/rho peak) for any std, also when the radial factor underflows
    assert float(get("rings", std=1e-200).log_prob([[0.0, 0.0]])[0]) == math.inf


@pytest.mark.parametrize("name", ALL)
def test_log_prob_at_infinite_points_is_minus_infinity(name):
    # every density vanishes at infinity; the funnel's two log-factors alone would give -inf + inf
    # at x0 = +inf (its conditional sd exp(-x0/2) shrinks to 0 there), and the banana's
    # x1 - 0.2 (x0^2 - 4) would be inf - inf at the corners (x0 = +-inf, x1 = +inf)
    inf = math.inf
    pts = torch.tensor([[inf, 0.0], [inf, 1.0], [-inf, 0.0], [0.0, inf], [0.0, -inf],
                        [inf, inf], [-inf, inf], [inf, -inf], [-inf, -inf]], dtype=torch.float64)
    assert torch.all(get(name).log_prob(pts) == -math.inf)


@pytest.mark.parametrize("name, options", [("ring8", {"std": 1e300}), ("mog", {"offset": 1e39})])
def test_options_whose_draws_overflow_float32_are_refused(name, options):
    # the draw is made in float64 and rounded to float32: no silent +-inf
    with pytest.raises(ValueError, match=r"beyond float32's range"):
        get(name, **options).sample(4, generator=0)
