"""Tests of gan_lib.metrics.samples against references computed another way.

References: numpy double loops and scipy.spatial.distance.cdist (MMD), the closed-form population
MMD between two Gaussians, scipy.stats.gaussian_kde (KDE), scipy.optimize.linear_sum_assignment
and scipy.stats.wasserstein_distance (EMD, 1-D W1), closed-form W1 between Gaussians and between
uniforms, and a plain-Python loop over samples and modes (mixture quality).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from gan_lib.data import get
from gan_lib.metrics import (
    SONG_ERMON_BANDWIDTH,
    emd,
    kde_log_density,
    kde_log_likelihood,
    mixture_quality,
    mmd,
    wasserstein1_1d,
    wasserstein1_quantile,
)

RNG = np.random.default_rng(20240611)


# --- MMD ---------------------------------------------------------------------------------------


def mmd_loops(x: np.ndarray, y: np.ndarray, hs, unbiased: bool) -> float:
    def k(a, b):
        return sum(math.exp(-float(np.sum((a - b) ** 2)) / (2 * h * h)) for h in hs)

    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if not (unbiased and i == j))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if not (unbiased and i == j))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    if unbiased:
        return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)
    return sxx / n**2 + syy / m**2 - 2 * sxy / (n * m)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("hs", [(0.5,), (0.3, 1.0, 4.0)])
def test_mmd_against_double_loop(unbiased, hs):
    x, y = RNG.normal(size=(9, 3)), RNG.normal(0.5, 1.2, size=(6, 3))
    ref = mmd_loops(x, y, hs, unbiased)
    assert mmd(torch.from_numpy(x), y, bandwidths=hs, unbiased=unbiased) == pytest.approx(ref, rel=1e-12, abs=1e-14)
    if len(hs) == 1:
        assert mmd(x, y, bandwidths=hs[0], unbiased=unbiased) == pytest.approx(ref, rel=1e-12)


def test_mmd_default_is_song_ermons_kernel_and_chunks():
    # 2100 x 2100 is more than one chunk of kernel entries
    x = RNG.normal(size=(2100, 2))
    y = RNG.normal(0.2, 1.0, size=(1500, 2))
    kern = lambda a, b: np.exp(-cdist(a, b, "sqeuclidean") / 4.0)  # noqa: E731  Song & Ermon's kernel
    ref = kern(x, x).mean() + kern(y, y).mean() - 2 * kern(x, y).mean()
    assert SONG_ERMON_BANDWIDTH == pytest.approx(math.sqrt(2))
    assert mmd(x, y) == pytest.approx(ref, rel=1e-9)
    assert mmd(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == pytest.approx(ref, rel=1e-4)


def test_mmd_biased_unbiased_and_population():
    x = RNG.normal(size=(50, 2))
    assert abs(mmd(x, x)) < 1e-13  # the V-statistic of a sample with itself is exactly zero
    # unbiased of a sample with itself: -2/(n(n-1)) * sum_{i != j} k + ... = -2 B / (n - 1) ... by loops
    assert mmd(x, x, unbiased=True) == pytest.approx(mmd_loops(x, x, (SONG_ERMON_BANDWIDTH,), True), rel=1e-12)
    # biased minus unbiased: (B - offdiag mean of Kxx)/n + (B - offdiag mean of Kyy)/m, B = 1
    y = RNG.normal(1.0, 1.0, size=(30, 2))
    kxx, kyy = np.exp(-cdist(x, x, "sqeuclidean") / 4), np.exp(-cdist(y, y, "sqeuclidean") / 4)
    off = lambda k: (k.sum() - len(k)) / (len(k) * (len(k) - 1))  # noqa: E731
    assert mmd(x, y) - mmd(x, y, unbiased=True) == pytest.approx((1 - off(kxx)) / 50 + (1 - off(kyy)) / 30, rel=1e-10)
    # population MMD^2 between N(0, s^2 I) and N(delta, s^2 I) in d = 2 with bandwidth h:
    # 2 (h^2 / (h^2 + 2 s^2)) (1 - exp(-|delta|^2 / (2 (h^2 + 2 s^2))))
    h2, s2, delta2 = 2.0, 1.0, 1.0
    pop = 2 * h2 / (h2 + 2 * s2) * (1 - math.exp(-delta2 / (2 * (h2 + 2 * s2))))
    a, b = RNG.normal(size=(2000, 2)), RNG.normal(size=(2000, 2)) + np.array([1.0, 0.0])
    assert mmd(a, b, unbiased=True) == pytest.approx(pop, abs=0.03)  # standard error 0.0066 (observed)
    # same distribution: the U-statistic averages to zero, the V-statistic does not
    reps = np.array([[mmd(RNG.normal(size=(15, 2)), RNG.normal(size=(15, 2)), unbiased=u) for u in (True, False)] for _ in range(300)])
    se = reps[:, 0].std() / math.sqrt(len(reps))
    assert abs(reps[:, 0].mean()) < 4 * se
    assert reps[:, 1].mean() > 10 * se


def test_mmd_input_errors_and_dtypes():
    x = RNG.normal(size=(20, 2))
    x16 = torch.from_numpy(x).half()
    assert mmd(x16, x16[:10]) == pytest.approx(mmd(x16.double().numpy(), x16[:10].double().numpy()), rel=1e-12)
    assert mmd(x[:, 0], x[:5, 0]) == pytest.approx(mmd(x[:, :1], x[:5, :1]))  # 1-D is (n, 1)
    with pytest.raises(ValueError, match="dimension 2 but y has 3"):
        mmd(x, RNG.normal(size=(5, 3)))
    with pytest.raises(ValueError, match="y has 0 points"):
        mmd(x, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        mmd(x, x[:1], unbiased=True)
    with pytest.raises(ValueError, match="nan or inf"):
        mmd(x, np.array([[0.0, np.nan]]))
    with pytest.raises(TypeError, match="real numbers"):
        mmd(x.astype(complex), x)
    for bad in (0.0, -1.0, (), (1.0, math.inf), "2"):
        with pytest.raises(ValueError, match="bandwidths="):
            mmd(x, x, bandwidths=bad)
    for bad in (torch.tensor([1.0, 2.0]), torch.tensor(1.0, requires_grad=True), [0.5, torch.tensor(1.0)]):
        with pytest.raises(ValueError, match=r"bandwidths=.*tolist\(\).*no gradient"):
            mmd(x, x, bandwidths=bad)
    with pytest.raises(ValueError, match="True or False"):
        mmd(x, x, unbiased=1)


# --- KDE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3])
def test_kde_against_scipy(d):
    cov = np.eye(d) + 0.5 * np.ones((d, d))
    fit = RNG.multivariate_normal(np.zeros(d), cov, size=1500).astype(np.float32)
    data = RNG.multivariate_normal(np.ones(d) * 0.3, cov, size=3000)  # 4.5e6 kernel entries: chunked
    ref = stats.gaussian_kde(fit.astype(np.float64).T).logpdf(data.T)
    np.testing.assert_allclose(kde_log_density(torch.from_numpy(fit), data).numpy(), ref, rtol=1e-9)
    assert kde_log_likelihood(fit, data) == pytest.approx(ref.mean(), rel=1e-10)


def test_kde_far_points_and_errors():
    fit = RNG.normal(size=(500, 2))
    far = np.array([[40.0, -40.0]])  # the density underflows exp(): only a log-sum-exp gives it
    assert float(kde_log_density(fit, far)[0]) == pytest.approx(float(stats.gaussian_kde(fit.T).logpdf(far.T)[0]), rel=1e-8)
    line = np.stack([np.arange(10.0), 2 * np.arange(10.0)], 1)
    with pytest.raises(ValueError, match="singular"):
        kde_log_likelihood(line, fit)
    with pytest.raises(ValueError, match="dimension"):
        kde_log_likelihood(fit, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        kde_log_likelihood(fit[:1], fit)


# --- EMD and 1-D W1 ----------------------------------------------------------------------------


def test_emd_against_assignment():
    x, y = RNG.normal(size=(60, 2)), RNG.normal(1.0, 2.0, size=(60, 2))
    c = cdist(x, y)
    r, k = linear_sum_assignment(c)
    assert emd(x, y) == pytest.approx(c[r, k].mean(), rel=1e-10)
    assert emd(x, x) == pytest.approx(0.0, abs=1e-12)
    # unequal sizes: 4 points against 6 equals 12 against 12 with each point repeated
    a, b = RNG.normal(size=(4, 3)), RNG.normal(size=(6, 3))
    big_a, big_b = np.repeat(a, 3, axis=0), np.repeat(b, 2, axis=0)
    c = cdist(big_a, big_b)
    r, k = linear_sum_assignment(c)
    assert emd(torch.from_numpy(a), b) == pytest.approx(c[r, k].mean(), rel=1e-10)
    # in 1-D the earth mover's distance is scipy's wasserstein_distance
    u, v = RNG.normal(size=70), RNG.exponential(size=45)
    assert emd(u, v) == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-10)
    with pytest.raises(ValueError, match="dimension"):
        emd(x, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="x has 0 points"):
        emd(np.zeros((0, 2)), x)


def test_wasserstein1_1d_against_scipy():
    for n, m in [(1, 1), (5, 5), (100, 37), (1000, 2000)]:
        x, y = RNG.normal(size=n), RNG.standard_t(3, size=m)
        assert wasserstein1_1d(x, y) == pytest.approx(stats.wasserstein_distance(x, y), rel=1e-10)
    tied = np.array([0.0, 0.0, 1.0, 1.0, 1.0]), np.array([1.0, 0.0, 2.0])
    assert wasserstein1_1d(*tied) == pytest.approx(stats.wasserstein_distance(*tied), rel=1e-12)
    assert wasserstein1_1d(torch.tensor([[0.0], [1.0]]), [3.0]) == pytest.approx(2.5)
    with pytest.raises(ValueError, match=r"1-D samples"):
        wasserstein1_1d(np.zeros((3, 2)), np.zeros(3))


def test_wasserstein1_quantile_closed_forms():
    N = torch.distributions.Normal
    assert wasserstein1_quantile(stats.norm(1.0, 0.7).ppf, stats.norm(-0.5, 0.7).ppf) == pytest.approx(1.5, rel=1e-9)
    # N(0, 1) vs N(0, s^2): |1 - s| E|Z| = |1 - s| sqrt(2 / pi)
    for s in (0.3, 2.0, 5.0):
        ref = abs(1 - s) * math.sqrt(2 / math.pi)
        assert wasserstein1_quantile(stats.norm(0, 1).ppf, stats.norm(0, s).ppf) == pytest.approx(ref, rel=1e-9)
        assert wasserstein1_quantile(N(0.0, 1.0).icdf, N(0.0, s).icdf) == pytest.approx(ref, rel=1e-6)
    assert wasserstein1_quantile(stats.uniform(0, 1).ppf, stats.uniform(0.25, 1).ppf) == pytest.approx(0.25, rel=1e-10)
    # U(0, 1) vs U(0, 2): int_0^1 |u - 2u| du = 1/2; quantiles that cross: U(0, 2) vs U(0.5, 1):
    # int_0^1 |2u - 0.5 - 0.5 u| du = int |1.5 u - 0.5| du = 1/12 + 1/3 = 5/12
    assert wasserstein1_quantile(stats.uniform(0, 1).ppf, stats.uniform(0, 2).ppf) == pytest.approx(0.5, rel=1e-10)
    assert wasserstein1_quantile(stats.uniform(0, 2).ppf, stats.uniform(0.5, 0.5).ppf) == pytest.approx(5 / 12, rel=1e-9)
    # exponential(1) vs its shift by 2
    assert wasserstein1_quantile(stats.expon().ppf, stats.expon(2.0).ppf) == pytest.approx(2.0, rel=1e-9)
    with pytest.raises(ValueError, match="nan"):
        wasserstein1_quantile(lambda u: u * np.nan, stats.norm().ppf)
    with pytest.raises(ValueError, match="rtol"):
        wasserstein1_quantile(stats.norm().ppf, stats.norm().ppf, rtol=2.0)


# --- mixtures ----------------------------------------------------------------------------------


def quality_loops(x, means, stds, k=3.0, min_fraction=0.01):
    n, K = len(x), len(means)
    counts = [0] * K
    good = 0
    for i in range(n):
        hit = False
        for j in range(K):
            if math.dist(x[i], means[j]) <= k * stds[j]:
                counts[j] += 1
                hit = True
        good += hit
    return sum(c >= min_fraction * n for c in counts), good / n, np.array(counts) / n


@pytest.mark.parametrize("name", ["mog", "ring8", "grid25"])
def test_mixture_quality_against_loops(name):
    ds = get(name)
    x = ds.sample(400, generator=4).double().numpy()
    x[:120] *= 1.0 + RNG.normal(0, 0.1, size=(120, 1))  # blur some samples off their modes
    x = x[x[:, 0] > -1.0]  # drop the modes on the left
    means, stds = ds.modes.means.numpy(), ds.modes.stds.numpy()
    covered, high, fractions = quality_loops(x, means, stds)
    q = mixture_quality(torch.from_numpy(x).float(), ds)
    assert (q.covered, q.n_modes) == (covered, len(means))
    assert covered < len(means)
    assert q.high_quality == pytest.approx(high, abs=3 / len(x))  # float32 may move a border sample
    np.testing.assert_allclose(q.fractions, fractions, atol=3 / len(x))
    q64 = mixture_quality(x, ds, k=2.0, min_fraction=0.05)
    ref = quality_loops(x, means, stds, k=2.0, min_fraction=0.05)
    assert (q64.covered, q64.high_quality) == (ref[0], pytest.approx(ref[1]))


def test_mixture_quality_edge_cases():
    ds = get("ring8")
    x = ds.sample(100, generator=0)
    x[:10] = float("nan")
    _, high, _ = quality_loops(x[10:].double().numpy(), ds.modes.means.numpy(), ds.modes.stds.numpy())
    assert mixture_quality(x, ds).high_quality == pytest.approx(high * 0.9)
    with pytest.raises(ValueError, match="'banana' has no modes"):
        mixture_quality(x, get("banana"))
    # a name is the dataset with its default options; other objects are refused with what was given
    by_name = mixture_quality(x, "ring8")
    assert (by_name.covered, by_name.n_modes) == (8, 8)
    assert by_name.high_quality == pytest.approx(high * 0.9)
    with pytest.raises(ValueError, match="'banana' has no modes"):
        mixture_quality(x, "banana")
    with pytest.raises(ValueError, match="unknown 2-D dataset 'ring9'"):
        mixture_quality(x, "ring9")
    with pytest.raises(TypeError, match="dataset=3 not allowed"):
        mixture_quality(x, 3)
    for bad in ({"k": 0.0}, {"k": True}, {"min_fraction": 1.5}, {"min_fraction": math.nan}):
        with pytest.raises(ValueError, match="not allowed"):
            mixture_quality(x, ds, **bad)


def test_bad_options_and_inputs_are_named() -> None:
    x, y = torch.randn(30, 2), torch.randn(20, 2)
    with pytest.raises(ValueError, match=r"unbiased=1 not allowed: must be True or False"):
        mmd(x, y, unbiased=1)
    with pytest.raises(ValueError, match=r"max_iter=0 not allowed: must be an integer in \[1"):
        emd(x, y, max_iter=0)
    for name, bad in (("rtol", "a"), ("tail", math.nan)):
        with pytest.raises(ValueError, match=rf"{name}=.* not allowed"):
            wasserstein1_quantile(lambda u: u, lambda u: u, **{name: bad})
    with pytest.raises(ValueError, match="data has 0 points"):
        kde_log_likelihood(x, y[:0])
    with pytest.raises(ValueError, match="samples have dimension 2 but data have 3"):
        kde_log_likelihood(x, torch.randn(5, 3))
    with pytest.raises(ValueError, match="samples has 0 points"):
        mixture_quality(torch.empty(0, 2), "ring8")
    with pytest.raises(TypeError, match="samples must be a tensor or array of real numbers"):
        mixture_quality([["a", "b"]], "ring8")


def test_emd_that_stops_early_raises_once_without_pots_warning() -> None:
    x, y = torch.randn(60, 2, dtype=torch.float64), torch.randn(60, 2, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # POT's own UserWarning would turn into an error here
        with pytest.raises(RuntimeError, match=r"did not reach the optimum.*max_iter=3"):
            emd(x, y, max_iter=3)


# --- inputs at the edges ---------------------------------------------------------------------


def test_mmd_and_kde_ignore_a_common_offset():
    # both depend on differences only: with the samples moved far from the origin they must give
    # what the references compute on the samples where they are (the reference sees no offset)
    x, y = RNG.normal(size=(300, 2)), RNG.normal(0.3, 1.2, size=(200, 2))
    ref_mmd = float(np.mean(np.exp(-cdist(x, x, "sqeuclidean") / 4)) + np.mean(np.exp(-cdist(y, y, "sqeuclidean") / 4))
                    - 2 * np.mean(np.exp(-cdist(x, y, "sqeuclidean") / 4)))
    ref_kde = float(stats.gaussian_kde(x.T).logpdf(y.T).mean())
    for offset in (1e6, 1e8):  # 1e8: the old |a|^2 + |b|^2 - 2 a.b lost 1e-3 of the MMD, 2.4 nats of the KDE
        shift = np.array([offset, -offset])
        assert mmd(x + shift, y + shift) == pytest.approx(ref_mmd, rel=1e-6)
        assert kde_log_likelihood(x + shift, y + shift) == pytest.approx(ref_kde, rel=1e-7)


def test_kde_refuses_too_few_or_nearly_singular_samples():
    with pytest.raises(ValueError, match="3 samples in 3 dimensions"):
        kde_log_likelihood(RNG.normal(size=(3, 3)), RNG.normal(size=(5, 3)))
    # a line stored in float32: rounding gives it a width of 1e-8 across, which Cholesky accepts
    t = torch.linspace(-3, 3, 50)
    line = torch.stack([t, 0.3 * t + 1], 1)
    with pytest.raises(ValueError, match="nearly so"):
        kde_log_likelihood(line, line[:5])
    # a real spread with one axis 1e4 times narrower than the other passes, and matches scipy
    thin = RNG.normal(size=(400, 2)) * np.array([1.0, 1e-4])
    ref = float(stats.gaussian_kde(thin.T).logpdf(thin[:50].T).mean())
    assert kde_log_likelihood(thin, thin[:50]) == pytest.approx(ref, rel=1e-9)


def test_quantile_tail_must_leave_one_minus_tail_below_one():
    norm = stats.norm()
    with pytest.raises(ValueError, match="1e-15 <= tail"):
        wasserstein1_quantile(norm.ppf, norm.ppf, tail=1e-300)
    assert wasserstein1_quantile(norm.ppf, stats.norm(loc=0.5).ppf, tail=1e-15) == pytest.approx(0.5, rel=1e-9)


def test_mode_coverage_takes_any_real_tensor_and_names_bad_options():
    from gan_lib.metrics.coverage import mode_coverage

    x = torch.tensor([[0.0, 0.1], [3.0, 3.0], [0.2, -0.1], [9.0, 9.0]])
    means, stds = torch.tensor([[0.0, 0.0], [3.0, 3.0]]), torch.tensor([0.1, 0.1])
    # by hand: the first and third points lie within 3 stds (0.3) of mode 0, the second at mode 1
    for samples in (x.to(torch.bfloat16), x.clone().requires_grad_(True), x.numpy()):
        cov = mode_coverage(samples, means, stds, min_fraction=0.3)
        np.testing.assert_allclose(cov.fractions, [0.5, 0.25])
        assert cov.covered == 1 and cov.low_quality == 0.25
    with pytest.raises(ValueError, match="k='3'"):
        mode_coverage(x, means, stds, k="3")
    with pytest.raises(ValueError, match="stds must be finite and > 0"):
        mode_coverage(x, means, torch.tensor([0.1, -1.0]))
    with pytest.raises(ValueError, match="stds must be finite and > 0"):
        mode_coverage(x, means, torch.tensor([0.1, math.nan]))


def test_quantile_w1_warns_when_heavy_tails_may_make_it_infinite_or_cut():
    # Cauchy against normal: the quantiles differ like 1/(pi u) near 0, so W1 is infinite
    with pytest.warns(RuntimeWarning, match=r"u\^-1.00, which is not integrable"):
        value = wasserstein1_quantile(stats.cauchy().ppf, stats.norm().ppf)
    assert math.isfinite(value)  # the integral up to u = 2^-53, as the warning says
    # Student t with 1.5 degrees of freedom: finite W1, but its quantile grows like u^(-2/3), so the
    # part below u = 2^-53 is about 2 eps f(eps) = 1e-5, far above rtol
    with pytest.warns(RuntimeWarning, match=r"beyond u = 2\^-53, .* is about 1e-05"):
        wasserstein1_quantile(stats.t(1.5).ppf, stats.norm().ppf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # finite cases stay silent: a shift (W1 = 0.5), a scale (W1 = (2 - 1) E|Z| = sqrt(2/pi)),
        # lighter tails (t with 3 degrees of freedom: the part cut off is about 1e-11), a shift of
        # a uniform with a wide tail panel, and one law through two implementations (W1 = 0 up to rounding)
        assert wasserstein1_quantile(stats.norm(0.5).ppf, stats.norm().ppf) == pytest.approx(0.5, rel=1e-9)
        assert wasserstein1_quantile(stats.norm(0, 2).ppf, stats.norm().ppf) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-9)
        wasserstein1_quantile(stats.t(3).ppf, stats.norm().ppf)
        assert wasserstein1_quantile(lambda u: u, lambda u: u + 0.3, tail=1e-3) == pytest.approx(0.3, rel=1e-12)
        normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
        assert wasserstein1_quantile(stats.norm().ppf, normal.icdf) < 1e-14


@pytest.mark.parametrize("n, m", [(50, 70), (2100, 30)])  # 2100 rows: the self-kernel in more than one chunk
def test_mmd_at_a_bandwidth_far_below_the_spacing_counts_each_point_once(n, m):
    # distinct points and h = 1e-9: every kernel matrix is the identity (k(a, a) = 1, 0 elsewhere), so
    # the biased MMD is exactly 1/n + 1/m and the unbiased one 0. Through |a|^2 + |a|^2 - 2 a.a the
    # diagonal distances are rounding (about 1e-16 |a|^2), which exp(-d2 / 2h^2) turns into k < 1.
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(m, 2))
    assert mmd(x, y, bandwidths=1e-9) == pytest.approx(1 / n + 1 / m, rel=1e-12)
    assert mmd(x, y, bandwidths=1e-9, unbiased=True) == pytest.approx(0.0, abs=1e-15)
    far = rng.normal(size=(500, 2)) * 1e4, rng.normal(size=(500, 2)) * 1e4
    assert mmd(*far, bandwidths=1e-4) == pytest.approx(2 / 500, rel=1e-12)


def test_gaussian_kernel_of_a_sample_with_itself_has_an_exact_diagonal():
    from gan_lib.losses.mmd import gaussian_kernel, mmd2

    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.normal(size=(50, 2)) * 100.0)
    k = gaussian_kernel(x, x, (1e-9, 1.0))
    assert torch.equal(torch.diagonal(k), torch.full((50,), 2.0, dtype=torch.float64))
    y = torch.from_numpy(rng.normal(size=(60, 2)) * 100.0)
    assert mmd2(x, y, 1e-9).item() == 0.0  # unbiased: the identity kernels leave nothing
    assert mmd2(x, y, 1e-9, unbiased=False).item() == pytest.approx(1 / 50 + 1 / 60, rel=1e-12)


def test_points_whose_distances_overflow_or_have_no_coordinate_are_refused():
    # finite float64 input whose squared distances overflow gave nan (mmd) or POT's "infeasible,
    # raise max_iter" (emd); both now say what overflowed and what to do
    with pytest.raises(ValueError, match=r"coordinates up to 5e\+154 .* overflow float64 .*rescale"):
        mmd([[0.0], [1e155]], [[0.0], [1e155]])
    with pytest.raises(ValueError, match=r"coordinates up to 1e\+308, whose distances overflow float64"):
        emd([[-1e308], [1e308]], [[0.0], [0.0]])
    # just below the limit both still give their exact values
    assert mmd([[0.0], [1e150]], [[0.0], [1e150]]) == 0.0
    assert emd([[0.0], [1e150]], [[0.0], [1e150]]) == 0.0
    for metric in (mmd, emd, kde_log_likelihood):
        with pytest.raises(ValueError, match=r"shape \(5, 0\): points with no coordinate"):
            metric(np.zeros((5, 0)), np.zeros((5, 0)))


def test_a_quantile_function_of_the_wrong_shape_is_named():
    for bad in (lambda u: 0.5, lambda u: np.zeros(3)):
        with pytest.raises(ValueError, match=r"returned shape .* for u of shape .*one value per u"):
            wasserstein1_quantile(bad, stats.norm().ppf)
    # a column of the right length is fine
    assert wasserstein1_quantile(lambda u: stats.norm().ppf(u.numpy())[:, None], stats.norm(1.0).ppf) == pytest.approx(1.0, rel=1e-9)
