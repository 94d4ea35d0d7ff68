r"""Gaussians fitted to a 1-D density by exact divergence minimisation.

:func:`divergence_to_gaussian` computes ``\int q f(p/q)`` for a 1-D target ``P`` (a Gaussian or a
Gaussian mixture from :mod:`gan_lib.data`) and ``Q = N(mu, sigma^2)`` by the adaptive quadrature of
:mod:`.quadrature`, starting from panels placed at multiples of every component's and of ``Q``'s
standard deviation; :func:`fit_gaussian` minimises it over ``(mu, log sigma)`` from several starts
and returns the best fit and every distinct local optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from gan_lib.validation import is_real

from .generator import GeneratorDivergence, LogFunction
from .quadrature import adaptive_integrate

__all__ = [
    "target_components",
    "divergence_to_gaussian",
    "GaussianFit",
    "FitResult",
    "fit_gaussian",
]


# ------------------------------------------------------------------------------------------------
# Quadrature between a 1-D Gaussian (mixture) target and a Gaussian model
# ------------------------------------------------------------------------------------------------

#: Initial panel edges at ``c +- k s`` for every component ``(c, s)`` of the target and for ``Q``.
_STEPS = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 15.0, 19.0, 24.0])
#: Absolute tolerance of the quadrature. The integrand's terms are densities (each integrates to 1)
#: whose rounding alone is about 1e-16 of them, so near ``P = Q``, where the divergence is close to
#: 0, a relative tolerance cannot be met and the adaptive rule would refine without end.
_ATOL = 1e-13
#: Widening of the range (in multiples of the largest standard deviation) while the integrand is not
#: negligible at its ends.
_TAIL = np.array([30.0, 40.0, 55.0, 75.0, 100.0, 140.0, 200.0, 300.0])


def target_components(target: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(locs, scales)`` of a 1-D ``torch.distributions.Normal`` or of a mixture of them
    (``MixtureSameFamily`` with ``Normal`` components, e.g. :func:`gan_lib.data.mixture_1d`)."""
    comp = getattr(target, "component_distribution", target)
    loc = getattr(comp, "loc", None)
    scale = getattr(comp, "scale", None)
    if loc is None or scale is None:
        raise ValueError(
            f"target {type(target).__name__} is not a 1-D Normal or a mixture of Normals "
            "(gan_lib.data.gaussian_1d / mixture_1d)"
        )
    locs = np.atleast_1d(np.asarray(loc.detach().cpu(), dtype=np.float64))
    scales = np.atleast_1d(np.asarray(scale.detach().cpu(), dtype=np.float64))
    if locs.ndim != 1 or scales.shape != locs.shape:
        raise ValueError(f"target must be one-dimensional; got component locs of shape {locs.shape}")
    return locs, scales


def _components(target: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(locs, scales, weights)`` of a target accepted by :func:`target_components`."""
    locs, scales = target_components(target)
    probs = getattr(getattr(target, "mixture_distribution", None), "probs", None)
    weights = np.ones(1) if probs is None else np.asarray(probs.detach().cpu(), dtype=np.float64).reshape(-1)
    if weights.shape != locs.shape:
        raise ValueError(f"target has {weights.size} mixture weights for {locs.size} components")
    return locs, scales, weights


_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class _ToGaussian:
    r"""``(mu, sigma) -> \int q f(p/q)`` for one ``f`` and one target, the target's components read
    once (:func:`fit_gaussian` evaluates it some thousand times)."""

    def __init__(self, f: LogFunction | GeneratorDivergence, target: Any, rtol: float) -> None:
        self.fn = f.f if isinstance(f, GeneratorDivergence) else f
        self.rtol = rtol
        locs, scales, weights = _components(target)
        self.locs, self.scales = locs, scales
        # log p summed over the components directly (logaddexp, one at a time): the target's own
        # log_prob costs ~0.5 ms a call in argument checks, more than the quadrature itself
        self.comps = [
            (float(c), 1.0 / float(s), float(math.log(w) - math.log(s) - _HALF_LOG_2PI))
            for c, s, w in zip(locs, scales, weights)
            if w > 0
        ]
        self.offsets = np.concatenate([-_STEPS[:0:-1], _STEPS])  # -24 ... 0 ... 24

    def __call__(self, mu: float, sigma: float) -> float:
        fn, rtol = self.fn, self.rtol
        centres = np.append(self.locs, mu)
        widths = np.append(self.scales, sigma)
        edges = np.unique((centres[:, None] + widths[:, None] * self.offsets[None, :]).ravel())
        c_lo, c_hi, big = float(centres.min()), float(centres.max()), float(widths.max())
        log_norm = math.log(sigma) + _HALF_LOG_2PI
        comps = self.comps

        def integrand(x: Tensor) -> Tensor:
            lp: Tensor | None = None
            for c, inv_s, log_w in comps:
                z = (x - c) * inv_s
                term = log_w - 0.5 * z * z
                lp = term if lp is None else torch.logaddexp(lp, term)
            z = (x - mu) / sigma
            return fn.perspective(lp, -0.5 * z * z - log_norm)

        def values(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return integrand(torch.from_numpy(x)).numpy()

        def trapezoids(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
            """Trapezoid rule for ``|y|`` and for ``y``."""
            dx = np.diff(x)
            mid = 0.5 * (y[1:] + y[:-1])
            return float(np.dot(np.abs(mid), dx)), float(np.dot(mid, dx))

        def infinite(value: float) -> float:
            return math.inf if value > 0 or math.isnan(value) else -math.inf

        # The range is widened while the integrand at its ends, times its width, is not negligible
        # against the integral: first against a trapezoid estimate of the integral of |integrand|
        # from its values at the edges, then against the quadrature. Widening evaluates the
        # integrand only at the new edges (9 per side), so a divergent integral is found without
        # adaptive refinement of its tails; the quadrature integrates each piece once.
        y = values(edges)
        with np.errstate(over="ignore", invalid="ignore"):  # inf/nan: a divergent integral, below
            scale, signed = trapezoids(y, edges)
        tails = iter(_TAIL)
        lo, hi = float(edges[0]), float(edges[-1])
        y_lo, y_hi = float(y[0]), float(y[-1])
        pending = [edges]  # edges of the pieces still to integrate
        total = 0.0
        engine_rtol = 0.1 * rtol
        while True:
            while True:
                if not (math.isfinite(y_lo) and math.isfinite(y_hi) and math.isfinite(scale)):
                    return infinite(signed if math.isfinite(signed) else (y_hi if math.isfinite(y_lo) else y_lo))
                if max(abs(y_lo), abs(y_hi)) * (hi - lo) <= rtol * scale:
                    break
                step = next(tails, None)
                if step is None:
                    return infinite(signed)  # still not negligible 300 standard deviations out
                lo_new, hi_new = min(lo, c_lo - step * big), max(hi, c_hi + step * big)
                x_lo, x_hi = np.linspace(lo_new, lo, 9), np.linspace(hi, hi_new, 9)
                y_new = values(np.concatenate([x_lo[:-1], x_hi[1:]]))
                ys_lo, ys_hi = np.append(y_new[:8], y_lo), np.insert(y_new[8:], 0, y_hi)
                with np.errstate(over="ignore", invalid="ignore"):
                    for xs, ys in ((x_lo, ys_lo), (x_hi, ys_hi)):
                        more_abs, more = trapezoids(ys, xs)
                        scale, signed = scale + more_abs, signed + more
                pending += [x_lo, x_hi]
                lo, hi, y_lo, y_hi = lo_new, hi_new, float(ys_lo[0]), float(ys_hi[-1])
            # the tails' tolerance is relative to the integral found so far
            atol = max(_ATOL, engine_rtol * abs(total))
            for piece in pending:
                total += adaptive_integrate(integrand, edges=piece, rtol=engine_rtol, atol=atol)
            pending = []
            if not math.isfinite(total):
                return infinite(total)
            scale = max(abs(total), 1e-300)
            if max(abs(y_lo), abs(y_hi)) * (hi - lo) <= rtol * scale:
                return total
            signed = total


def _check_gaussian(mu: Any, sigma: Any) -> tuple[float, float]:
    if not (is_real(mu) and is_real(sigma) and math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"need finite real mu and sigma > 0; got mu={mu!r}, sigma={sigma!r}")
    return float(mu), float(sigma)


def divergence_to_gaussian(
    f: LogFunction | GeneratorDivergence,
    target: Any,
    mu: float,
    sigma: float,
    *,
    rtol: float = 1e-10,
) -> float:
    r"""``\int q f(p/q) dx`` for the 1-D target ``P`` and ``Q = N(mu, sigma^2)``, by quadrature.

    ``f``: a :class:`LogFunction` or a :class:`GeneratorDivergence` (its ``f_G``). The adaptive
    Gauss--Legendre engine of :mod:`.quadrature` (:func:`adaptive_integrate`, relative tolerance
    ``rtol / 10``, absolute ``1e-13``) starts from panels that end at ``c \pm k s`` for every
    component ``(c, s)`` of ``P`` and for ``(mu, sigma)``, ``k`` up to 24; while the integrand is not
    negligible at the ends of the range (its value there times the range's width above ``rtol``
    times the integral) the range is widened, up to 300 standard deviations, and ``inf`` is returned
    when the integral has still not converged there (a divergent integral, e.g. ``\int p^2/q`` for
    a too narrow ``Q``). Relative accuracy about ``1e-10``.
    """
    mu, sigma = _check_gaussian(mu, sigma)
    if not (is_real(rtol) and 0 < rtol < 1):
        raise ValueError(f"rtol={rtol!r} must be a real number in (0, 1)")
    return _ToGaussian(f, target, float(rtol))(mu, sigma)


# ------------------------------------------------------------------------------------------------
# Fitting N(mu, sigma^2)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianFit:
    """A local minimum of ``D_f(P || N(mu, sigma^2))``, found from ``start = (mu0, sigma0)``.

    ``at_bound`` is true when the optimiser stopped on the box of allowed ``(mu, log sigma)``,
    i.e. the divergence kept decreasing towards the edge (no interior minimum there)."""

    mu: float
    sigma: float
    value: float
    start: tuple[float, float]
    at_bound: bool = False


@dataclass(frozen=True)
class FitResult:
    """``best``: the lowest local minimum; ``optima``: every distinct one, lowest first;
    ``fits``: the result from each start, in the order of the starts."""

    best: GaussianFit
    optima: tuple[GaussianFit, ...]
    fits: tuple[GaussianFit, ...]


def _default_starts(locs: np.ndarray, scales: np.ndarray, weights: np.ndarray) -> list[tuple[float, float]]:
    mean = float(np.dot(weights, locs))
    std = float(math.sqrt(np.dot(weights, scales**2 + locs**2) - mean**2))
    starts = [(mean, std), (mean, float(scales.min()))]
    for c, s in zip(locs, scales):
        starts += [(float(c), float(s)), (float(c), 0.5 * (float(s) + std))]
    return starts


def fit_gaussian(
    f: LogFunction | GeneratorDivergence,
    target: Any,
    starts: Sequence[tuple[float, float]] | None = None,
    *,
    mu_bounds: tuple[float, float] | None = None,
    sigma_bounds: tuple[float, float] | None = None,
    merge_tol: float = 1e-3,
) -> FitResult:
    r"""Fit ``N(mu, sigma^2)`` to the 1-D target by minimising ``D_f(P\|N(mu, sigma^2))`` directly.

    The divergence is :func:`divergence_to_gaussian` (exact up to quadrature error); it is minimised
    over ``(mu, log sigma)`` by bounded Nelder--Mead from every start (default: the moment-matched
    Gaussian, a narrow one at the mixture mean, and two per component centred on it). Results
    closer than ``merge_tol`` (in ``mu`` and in ``log sigma``, relative to the target's spread)
    are merged. Default bounds: ``mu`` within the components' span widened by 5 standard
    deviations, ``sigma`` from ``1e-2`` times the smallest component scale to 5 times the
    moment-matched standard deviation.
    """
    locs, scales, weights = _components(target)
    mean = float(np.dot(weights, locs))
    std = float(math.sqrt(max(np.dot(weights, scales**2 + locs**2) - mean**2, 0.0)))
    if mu_bounds is None:
        mu_bounds = (float(locs.min() - 5 * scales.max()), float(locs.max() + 5 * scales.max()))
    if sigma_bounds is None:
        sigma_bounds = (1e-2 * float(scales.min()), 5.0 * std)
    bounds_ok = all(is_real(b) and math.isfinite(b) for b in (*mu_bounds, *sigma_bounds))
    if not (bounds_ok and mu_bounds[0] < mu_bounds[1] and 0 < sigma_bounds[0] < sigma_bounds[1]):
        raise ValueError(
            f"bad bounds mu_bounds={mu_bounds}, sigma_bounds={sigma_bounds}: need finite real numbers "
            "with mu_lo < mu_hi and 0 < sigma_lo < sigma_hi"
        )
    starts = list(_default_starts(locs, scales, weights) if starts is None else starts)
    if not starts:
        raise ValueError("give at least one start (mu0, sigma0)")
    for mu0, s0 in starts:
        try:
            _check_gaussian(mu0, s0)
        except ValueError:
            raise ValueError(f"start ({mu0!r}, {s0!r}) not allowed: need finite real mu0 and sigma0 > 0") from None
    box = [mu_bounds, (math.log(sigma_bounds[0]), math.log(sigma_bounds[1]))]

    divergence = _ToGaussian(f, target, 1e-10)

    def objective(theta: np.ndarray) -> float:
        val = divergence(float(theta[0]), math.exp(float(theta[1])))
        if math.isnan(val) or val == math.inf:
            return 1e300
        return max(val, -1e300)

    fits: list[GaussianFit] = []
    for mu0, s0 in starts:
        x0 = np.array([min(max(mu0, box[0][0]), box[0][1]), min(max(math.log(s0), box[1][0]), box[1][1])])
        simplex = np.array([x0, x0 + [0.25 * std, 0.0], x0 + [0.0, 0.25]])
        simplex[:, 0] = np.clip(simplex[:, 0], *box[0])
        simplex[:, 1] = np.clip(simplex[:, 1], *box[1])
        res = minimize(
            objective, x0, method="Nelder-Mead", bounds=box,
            options={"initial_simplex": simplex, "xatol": 1e-8, "fatol": 1e-13, "maxiter": 4000, "maxfev": 8000},
        )
        mu, ls = float(res.x[0]), float(res.x[1])
        span = np.array([box[0][1] - box[0][0], box[1][1] - box[1][0]])
        near = min(mu - box[0][0], box[0][1] - mu) < 1e-4 * span[0] or min(ls - box[1][0], box[1][1] - ls) < 1e-4 * span[1]
        value = divergence(mu, math.exp(ls))
        fits.append(GaussianFit(mu, math.exp(ls), value, (float(mu0), float(s0)), bool(near)))
    finite = [g for g in fits if g.value < math.inf]
    if not finite:
        raise ValueError("the divergence is infinite at every start; give starts where it is finite")
    optima: list[GaussianFit] = []
    for fit in sorted(finite, key=lambda g: g.value):
        if not any(
            abs(fit.mu - o.mu) < merge_tol * max(std, 1e-12) and abs(math.log(fit.sigma / o.sigma)) < merge_tol
            for o in optima
        ):
            optima.append(fit)
    return FitResult(best=optima[0], optima=tuple(optima), fits=tuple(fits))
