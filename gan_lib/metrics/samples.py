r"""Distances between two samples, and between a sample and a known distribution.

- :func:`mmd` -- squared maximum mean discrepancy with a sum of Gaussian kernels (biased V- or
  unbiased U-statistic), chunked so that 5000 x 5000 samples fit in memory.
- :func:`kde_log_density`, :func:`kde_log_likelihood` -- a Gaussian kernel density estimate with
  Scott's bandwidth (as ``scipy.stats.gaussian_kde``), the log-likelihood Song & Ermon (2020)
  report for their 2-D experiments.
- :func:`emd` -- the exact earth mover's distance between two samples (Euclidean ground cost).
- :func:`wasserstein1_1d`, :func:`wasserstein1_quantile` -- exact 1-D Wasserstein-1 distances
  between two samples, and between two distributions given their quantile functions.
- :func:`mixture_quality` -- modes covered and the fraction of high-quality samples, for a
  dataset with known modes (a thin layer over :func:`~gan_lib.metrics.coverage.mode_coverage`).

Inputs may be torch tensors or numpy arrays of any real dtype (float16 included); every
computation runs in float64 and returns a Python ``float``. Empty or non-finite samples and
mismatched dimensions raise ``ValueError``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from gan_lib.divergences.quadrature import adaptive_integrate
from gan_lib.losses.mmd import check_bandwidths, gaussian_kernel
from gan_lib.validation import boolean, integer_number, named, real_number

from .coverage import _real, check_coverage_options, mode_coverage

__all__ = [
    "SONG_ERMON_BANDWIDTH",
    "mmd",
    "kde_log_density",
    "kde_log_likelihood",
    "emd",
    "wasserstein1_1d",
    "wasserstein1_quantile",
    "MixtureQuality",
    "mixture_quality",
]

#: The bandwidth ``h`` for which :func:`mmd`'s kernel ``exp(-|x - y|^2 / (2 h^2))`` is Song &
#: Ermon's (2020) ``exp(-|x - y|^2 / 4)``: ``h = sqrt(2)``.
SONG_ERMON_BANDWIDTH: float = math.sqrt(2.0)

#: Largest number of kernel entries evaluated at once (32 MiB of float64).
_CHUNK_ENTRIES = 1 << 22

#: A KDE's covariance whose smallest eigenvalue is at most this fraction of its largest is refused
#: as singular: samples spread over a subspace, with rounding noise (float32's is about 1e-14 in
#: this ratio) across it. Real spreads differing by a factor up to 1e6 in standard deviation pass.
_KDE_MIN_EIGEN_RATIO = 1e-12

#: Growth exponent ``a`` of ``|F_P^{-1}(u) - F_Q^{-1}(u)| ~ u^{-a}`` near an end from which
#: :func:`wasserstein1_quantile` warns that ``W_1`` may be infinite (``a >= 1`` is not integrable).
_W1_DIVERGENT_SLOPE = 0.98


def _points(name: str, x: Any, *, min_rows: int = 1, finite: bool = True) -> Tensor:
    """``x`` as a float64 ``(n, d)`` tensor (a 1-D input is ``(n, 1)``), checked (``finite=False``
    lets nan and inf through)."""
    t = _real(name, x)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, d); got shape {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise ValueError(f"{name} has {t.shape[0]} points; at least {min_rows} needed")
    if t.shape[1] == 0:
        raise ValueError(f"{name} has shape {tuple(t.shape)}: points with no coordinate; at least one needed")
    if finite and not torch.isfinite(t).all():
        raise ValueError(f"{name} contains nan or inf; all values must be finite")
    return t


def _pair(x: Any, y: Any, min_rows: int = 1) -> tuple[Tensor, Tensor]:
    a, b = _points("x", x, min_rows=min_rows), _points("y", y, min_rows=min_rows)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x has dimension {a.shape[1]} but y has {b.shape[1]}; they must match")
    return a, b


def _no_overflow(a: Tensor, b: Tensor) -> None:
    """Refuse points so far apart that their squared distances overflow float64 (they would give nan)."""
    if not (torch.isfinite(a.square().sum(1)).all() and torch.isfinite(b.square().sum(1)).all()):
        largest = max(float(a.abs().max()), float(b.abs().max()))
        raise ValueError(f"x and y hold coordinates up to {largest:.3g} from their pooled mean, whose squares "
                         f"overflow float64 (above about 1.3e154): rescale the points (and the bandwidths) together")


def _sq_dists(a: Tensor, b: Tensor, b_sq: Tensor) -> Tensor:
    d2 = (a**2).sum(1, keepdim=True) + b_sq[None, :] - 2.0 * a @ b.T
    return d2.clamp_min_(0.0)


# ------------------------------------------------------------------------------------------------
# Maximum mean discrepancy
# ------------------------------------------------------------------------------------------------


def _kernel_sum(a: Tensor, b: Tensor, bandwidths: tuple[float, ...]) -> float:
    """``sum_{i,j} k(a_i, b_j)`` for :func:`~gan_lib.losses.mmd.gaussian_kernel`, in chunks of rows of ``a``.
    When ``b`` is ``a``, the pairs ``i = j`` count ``k(a_i, a_i) = len(bandwidths)`` exactly
    (``gaussian_kernel``'s ``same_from``)."""
    step = max(1, _CHUNK_ENTRIES // b.shape[0])
    return sum(float(gaussian_kernel(a[start : start + step], b, bandwidths, same_from=start if a is b else None).sum())
               for start in range(0, a.shape[0], step))


def mmd(x: Any, y: Any, bandwidths: float | Sequence[float] = (SONG_ERMON_BANDWIDTH,), unbiased: bool = False) -> float:
    r"""The **squared** maximum mean discrepancy ``MMD^2(P, Q)`` estimated from ``x ~ P``, ``y ~ Q``.

    Kernel: a sum of Gaussians ``k(a, b) = sum_h exp(-|a - b|^2 / (2 h^2))`` over ``bandwidths``
    (a number or a sequence of numbers > 0). The default, :data:`SONG_ERMON_BANDWIDTH` ``= sqrt(2)``,
    gives Song & Ermon's (2020) kernel ``exp(-|a - b|^2 / 4)``; their tables print ``10^3 * mmd(x, y)``.

    Biased V-statistic (default; Gretton et al. 2012), every pair including ``i = j``::

        MMD_b^2 = mean_{i,i'} k(x_i, x_i') + mean_{j,j'} k(y_j, y_j') - 2 mean_{i,j} k(x_i, y_j)  >= 0

    ``unbiased=True``: the U-statistic, whose first two means leave out ``i = i'`` and
    ``j = j'`` (needs at least two points in each sample; may be negative). ``x`` is ``(n, d)``,
    ``y`` is ``(m, d)`` (or 1-D); any sizes; the kernel matrices are summed in chunks.
    """
    unb = named("unbiased", unbiased, boolean)
    a, b = _pair(x, y, min_rows=2 if unb else 1)
    hs = check_bandwidths(bandwidths)
    n, m = a.shape[0], b.shape[0]
    # measured from the pooled mean: the kernel sees only differences, and |a|^2 + |b|^2 - 2 a.b
    # loses digits to a common offset much larger than the spread
    centre = torch.cat([a, b]).mean(0)
    a, b = a - centre, b - centre
    _no_overflow(a, b)
    with torch.no_grad():
        s_xx, s_yy, s_xy = _kernel_sum(a, a, hs), _kernel_sum(b, b, hs), _kernel_sum(a, b, hs)
    if unb:
        k0 = float(len(hs))  # k(a, a): each Gaussian is 1 on the diagonal
        return (s_xx - n * k0) / (n * (n - 1)) + (s_yy - m * k0) / (m * (m - 1)) - 2.0 * s_xy / (n * m)
    return s_xx / n**2 + s_yy / m**2 - 2.0 * s_xy / (n * m)


# ------------------------------------------------------------------------------------------------
# Kernel density estimate
# ------------------------------------------------------------------------------------------------


def _kde_inputs(samples: Any, points: Any, points_name: str) -> tuple[Tensor, Tensor]:
    """``samples`` and the evaluation points checked, the points under the caller's name for them."""
    xs = _points("samples", samples, min_rows=2)
    ys = _points(points_name, points)
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"samples have dimension {xs.shape[1]} but {points_name} have {ys.shape[1]}; they must match")
    if xs.shape[0] <= xs.shape[1]:
        raise ValueError(f"the KDE needs more samples than dimensions, for a non-singular covariance; "
                         f"got {xs.shape[0]} samples in {xs.shape[1]} dimensions")
    return xs, ys


def kde_log_density(samples: Any, points: Any) -> Tensor:
    r"""Log-density at ``points`` of a Gaussian KDE fitted on ``samples`` (float64 tensor, ``(m,)``).

    ``log p(y) = logsumexp_i log N(y; x_i, H) - log n`` with ``H = n^{-2/(d+4)} C``, where ``C``
    is the sample covariance of ``samples`` (divisor ``n - 1``) and ``n^{-1/(d+4)}`` is Scott's
    factor: the estimate ``scipy.stats.gaussian_kde(samples.T).logpdf(points.T)`` computes, here in
    torch with a Cholesky whitening and a chunked log-sum-exp. ``samples`` is ``(n, d)`` with
    ``n > d`` and a non-singular covariance (one whose smallest eigenvalue is at most ``1e-12``
    of its largest is refused as singular: samples on a line, up to rounding); ``points`` is ``(m, d)``.
    """
    return _kde_log_density(*_kde_inputs(samples, points, "points"))


def _kde_log_density(xs: Tensor, ys: Tensor) -> Tensor:
    n, d = xs.shape
    mean = xs.mean(0)
    centred = xs - mean
    cov = centred.T @ centred / (n - 1) * n ** (-2.0 / (d + 4))
    chol, info = torch.linalg.cholesky_ex(cov)
    eig = torch.linalg.eigvalsh(cov)
    # a covariance this close to singular is rounding, not spread: the samples lie in a subspace
    if int(info) != 0 or not float(eig[0]) > _KDE_MIN_EIGEN_RATIO * float(eig[-1]):
        raise ValueError(f"the covariance of the {n} samples is singular or nearly so (smallest / largest "
                         f"eigenvalue {float(eig[0]) / float(eig[-1]) if float(eig[-1]) > 0 else 0.0:.2g}, "
                         f"at most {_KDE_MIN_EIGEN_RATIO:g} allowed); the KDE needs samples that span all {d} dimensions")
    # whitened relative to the samples' mean (distances do not change, and a common offset costs no digits)
    xw = torch.linalg.solve_triangular(chol, centred.T, upper=False).T
    yw = torch.linalg.solve_triangular(chol, (ys - mean).T, upper=False).T
    const = -math.log(n) - 0.5 * d * math.log(2.0 * math.pi) - float(torch.log(torch.diagonal(chol)).sum())
    x_sq = (xw**2).sum(1)
    out = torch.empty(ys.shape[0], dtype=torch.float64)
    step = max(1, _CHUNK_ENTRIES // n)
    with torch.no_grad():
        for start in range(0, ys.shape[0], step):
            d2 = _sq_dists(yw[start : start + step], xw, x_sq)
            out[start : start + step] = torch.logsumexp(-0.5 * d2, dim=1) + const
    return out


def kde_log_likelihood(samples: Any, data: Any) -> float:
    """Mean log-density of ``data`` under a Gaussian KDE (Scott's bandwidth) fitted on ``samples``.

    Song & Ermon (2020) fit the KDE on 5000 generated samples and report this for 5000 fresh data
    points (higher is better; its negative is their "NLL"). See :func:`kde_log_density`.
    """
    return float(_kde_log_density(*_kde_inputs(samples, data, "data")).mean())


# ------------------------------------------------------------------------------------------------
# Wasserstein-1 / earth mover's distance
# ------------------------------------------------------------------------------------------------


def emd(x: Any, y: Any, *, max_iter: int = 100_000_000) -> float:
    r"""The exact earth mover's distance ``W_1`` between the empirical distributions of ``x`` and ``y``.

    ``min_pi sum_ij pi_ij |x_i - y_j|`` over couplings ``pi`` of the uniform weights ``1/n`` on
    ``x`` (``(n, d)``) and ``1/m`` on ``y`` (``(m, d)``), Euclidean ground cost, solved by POT's
    network simplex (``ot.emd2``, Bonneel et al. 2011). Time grows about as ``(n + m)^3``
    (5000 x 5000 takes tens of seconds and 200 MB for the cost matrix). Raises ``RuntimeError``
    when the solver stops before ``max_iter`` iterations prove optimality.
    """
    import ot  # imported here: POT takes seconds to import and most users of the metrics never need it

    a, b = _pair(x, y)
    iters = named("max_iter", max_iter, lambda v: integer_number(v, lo=1))
    cost = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").numpy()  # exact zeros
    if not np.isfinite(cost).all():
        largest = max(float(a.abs().max()), float(b.abs().max()))
        raise ValueError(f"x and y hold coordinates up to {largest:.3g}, whose distances overflow float64 "
                         f"(the squares of differences above about 1.3e154 do): rescale the points")
    wa = np.full(a.shape[0], 1.0 / a.shape[0])
    wb = np.full(b.shape[0], 1.0 / b.shape[0])
    with warnings.catch_warnings():  # POT also warns when it stops early; the error below says it once
        warnings.filterwarnings("ignore", message=".*numItermax.*")
        value, log = ot.emd2(wa, wb, cost, numItermax=iters, log=True)
    if log.get("warning"):
        raise RuntimeError(f"ot.emd2 did not reach the optimum: {log['warning']} (raise max_iter={iters})")
    return float(value)


def _one_d(name: str, x: Any) -> np.ndarray:
    t = _points(name, x)
    if t.shape[1] != 1:
        raise ValueError(f"{name} must be 1-D samples of shape (n,) or (n, 1); got shape {tuple(t.shape)}")
    return np.sort(t[:, 0].numpy())


def wasserstein1_1d(x: Any, y: Any) -> float:
    r"""Exact ``W_1`` between the empirical distributions of two 1-D samples (any sizes).

    ``W_1 = int_0^1 |F_x^{-1}(u) - F_y^{-1}(u)| du = int |F_x(t) - F_y(t)| dt``; with both
    empirical CDFs piecewise constant between the pooled sorted values ``t_(k)``, the second
    integral is the finite sum ``sum_k |F_x(t_(k)) - F_y(t_(k))| (t_(k+1) - t_(k))``.
    """
    xs, ys = _one_d("x", x), _one_d("y", y)
    pooled = np.sort(np.concatenate([xs, ys]))
    widths = np.diff(pooled)
    fx = np.searchsorted(xs, pooled[:-1], side="right") / xs.size
    fy = np.searchsorted(ys, pooled[:-1], side="right") / ys.size
    return float(np.sum(np.abs(fx - fy) * widths))


def _quantile_values(icdf: Callable[[Tensor], Any], u: Tensor) -> Tensor:
    out = icdf(u)
    t = out if isinstance(out, Tensor) else torch.as_tensor(np.asarray(out, dtype=np.float64))
    if t.shape != u.shape and t.numel() != u.numel():
        raise ValueError(f"a quantile function returned shape {tuple(t.shape)} for u of shape {tuple(u.shape)}; "
                         f"it must return one value per u")
    return t.detach().to(torch.float64).reshape(u.shape)


def wasserstein1_quantile(
    icdf_p: Callable[[Tensor], Any],
    icdf_q: Callable[[Tensor], Any],
    *,
    rtol: float = 1e-10,
    tail: float = 1e-15,
) -> float:
    r"""Exact ``W_1(P, Q) = int_0^1 |F_P^{-1}(u) - F_Q^{-1}(u)| du`` for two 1-D distributions.

    ``icdf_p``, ``icdf_q``: quantile functions, called with a float64 tensor of ``u`` in
    ``(0, 1)`` and returning a tensor or array of the same shape (a ``torch.distributions``
    ``.icdf`` or a scipy frozen distribution's ``.ppf``). Integrated by the library's adaptive
    Gauss--Legendre rule (:func:`gan_lib.divergences.quadrature.adaptive_integrate`, which never
    evaluates the end points) on panels that shrink geometrically towards ``0`` and ``1``, where a
    quantile function of unbounded support diverges (integrably when ``W_1`` is finite). The two
    tails ``u < tail`` and ``u > 1 - tail`` are integrated too, on one panel each, so ``tail`` only
    shapes the panels. Nodes are clamped to ``[2^-53, 1 - 2^-53]`` (closer to 1 they round to 1 in
    float64, and ``torch.distributions.Normal.icdf`` is infinite below ``2^-53``), which changes
    the integral by about ``1e-16`` times the largest quantile used, unless the tails are heavy:
    a ``RuntimeWarning`` says when the difference of the quantiles grows near an end like
    ``u^{-a}`` with ``a`` near 1 or above (Cauchy against normal, whose ``W_1`` is infinite), or
    when the part cut off is estimated to exceed ``rtol`` of the value. ``tail`` must be in
    ``[1e-15, 1e-2)``.
    """
    tol = named("rtol", rtol, real_number)
    t = named("tail", tail, real_number)
    if not (0 < tol < 1 and 1e-15 <= t < 1e-2):
        raise ValueError(f"need 0 < rtol < 1 and 1e-15 <= tail < 1e-2 (1 - tail must differ from 1 in float64); "
                         f"got rtol={rtol}, tail={tail}")
    exps = np.arange(math.floor(math.log10(t)), -1)
    low = np.concatenate([[0.0], 10.0 ** exps.astype(np.float64)])  # 0, tail, ..., 1e-2
    mid = np.linspace(1e-2, 1 - 1e-2, 33)[1:-1]
    edges = np.concatenate([low, mid, 1.0 - low[::-1]])

    half_eps = 2.0**-53

    def integrand(u: Tensor) -> Tensor:
        # nodes within 1e-16 of 1 round to 1, where a quantile is infinite; torch's Normal.icdf,
        # through erfinv(2u - 1), is also infinite below u = 2^-53
        u = u.clamp(min=half_eps, max=1.0 - half_eps)
        return (_quantile_values(icdf_p, u) - _quantile_values(icdf_q, u)).abs()

    value = float(adaptive_integrate(integrand, rtol=tol, atol=1e-15, edges=edges))
    if math.isnan(value):
        raise ValueError("a quantile function returned nan on (0, 1); both must be finite there")
    _warn_if_tails_cut(integrand, value, tol, half_eps)
    return value


def _warn_if_tails_cut(integrand: Callable[[Tensor], Tensor], value: float, rtol: float, eps: float) -> None:
    """Warn when the integral beyond the clamped nodes (``u < eps``, ``u > 1 - eps``) may matter.

    Near each end the integrand is taken to grow like ``u^{-a}`` (``a`` from its values at
    ``eps``, ``10^3 eps`` and ``10^6 eps``, the smaller of the two slopes): with ``a >= 0.98`` it is
    not (or barely) integrable and ``W_1`` may be infinite; with ``0 < a < 1`` the part cut off is
    about ``eps f(eps) a / (1 - a)``, which is reported when it exceeds ``rtol`` of the value.
    """
    k = 1e3
    steps = torch.tensor([eps, k * eps, k * k * eps], dtype=torch.float64)
    cut, worst = 0.0, 0.0
    for u in (steps, 1.0 - steps):
        f = integrand(u).tolist()
        if not all(math.isfinite(v) and v > 0 for v in f):
            continue
        a = min(math.log(f[0] / f[1]), math.log(f[1] / f[2])) / math.log(k)
        worst = max(worst, a)
        if 0 < a < _W1_DIVERGENT_SLOPE:
            cut += eps * f[0] * a / (1 - a)
    if worst >= _W1_DIVERGENT_SLOPE:
        warnings.warn(f"near u = 0 or 1 the quantiles' difference grows like u^-{worst:.2f}, which is not "
                      f"integrable: W_1 may be infinite; the value returned ({value:.6g}) stops at u = 2^-53",
                      RuntimeWarning, stacklevel=3)
    elif cut > rtol * abs(value):
        warnings.warn(f"heavy tails: the integral beyond u = 2^-53, where the nodes stop, is about {cut:.2g}, "
                      f"more than rtol={rtol:g} of the value returned ({value:.6g}), which is short by about that",
                      RuntimeWarning, stacklevel=3)


# ------------------------------------------------------------------------------------------------
# Mixtures: modes covered, high-quality fraction
# ------------------------------------------------------------------------------------------------


class MixtureQuality(NamedTuple):
    """What :func:`mixture_quality` returns."""

    covered: int  #: number of modes holding at least ``min_fraction`` of the samples
    n_modes: int  #: number of modes of the dataset
    high_quality: float  #: fraction of the samples within ``k`` stds of some mode
    fractions: np.ndarray  #: fraction of the samples within ``k`` stds of each mode, ``(K,)``


def mixture_quality(samples: Any, dataset: Any, *, k: float = 3.0, min_fraction: float = 0.01) -> MixtureQuality:
    """Modes covered and high-quality fraction of ``samples`` for a mixture ``dataset``.

    ``dataset`` has ``.modes`` with ``means`` ``(K, d)`` and ``stds`` ``(K,)`` (e.g.
    ``gan_lib.data.get("ring8")``), or is the name of a 2-D dataset (``"ring8"``: its default
    options); datasets whose ``modes`` is ``None`` are refused. A sample is
    of high quality when it lies within ``k`` standard deviations (Euclidean distance) of some
    mode's mean; a mode is covered when at least ``min_fraction`` of all samples lie within ``k``
    of its standard deviations (the convention of Srivastava et al. 2017, VEEGAN, with ``k = 3``).
    Computed by :func:`~gan_lib.metrics.coverage.mode_coverage`; ``high_quality`` is one minus its
    ``low_quality``. Non-finite samples count as low quality.
    """
    check_coverage_options(k, min_fraction)  # before the dataset is looked up, as mode_coverage checks them
    if isinstance(dataset, str):
        from gan_lib.data import get  # the 2-D datasets by name (unknown names refused there, with the list)

        dataset = get(dataset)
    if not hasattr(dataset, "modes"):
        raise TypeError(
            f"dataset={dataset!r} not allowed; give a 2-D dataset's name (e.g. 'grid25') or an object "
            "with .modes (means (K, d) and stds (K,)), e.g. gan_lib.data.get('grid25')"
        )
    modes = dataset.modes
    if modes is None:
        raise ValueError(
            f"dataset {getattr(dataset, 'name', dataset)!r} has no modes; give a mixture "
            "(an object whose .modes has means (K, d) and stds (K,), e.g. gan_lib.data.get('grid25'))"
        )
    x = _points("samples", samples, finite=False).numpy()
    x = np.where(np.isfinite(x), x, np.inf)  # a nan lies within no distance of a mode: low quality
    means = modes.means.numpy() if isinstance(modes.means, Tensor) else np.asarray(modes.means)
    stds = modes.stds.numpy() if isinstance(modes.stds, Tensor) else np.asarray(modes.stds)
    cov = mode_coverage(x, means, stds, k=k, min_fraction=min_fraction)
    return MixtureQuality(cov.covered, int(len(stds)), 1.0 - cov.low_quality, cov.fractions)
