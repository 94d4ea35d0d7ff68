r"""Gaussians fitted to a 1-D density by exact divergence minimisation.

:func:`divergence_to_gaussian` computes ``\int q f(p/q)`` for a 1-D target ``P`` (a Gaussian or a
Gaussian mixture from :mod:`gan_lib.data`) and ``Q = N(mu, sigma^2)`` by quadrature on panels
placed at multiples of every component's and of ``Q``'s standard deviation; :func:`fit_gaussian`
minimises it over ``(mu, log sigma)`` from several starts and returns the best fit and every
distinct local optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import roots_legendre

from .generator import GeneratorDivergence, LogFunction

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

_GL_NODES, _GL_WEIGHTS = roots_legendre(24)
_STEPS = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 19.0, 24.0])
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


def _panels(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = edges[:-1], edges[1:]
    half = (b - a) / 2.0
    x = ((a + b) / 2.0)[:, None] + half[:, None] * _GL_NODES[None, :]
    w = half[:, None] * _GL_WEIGHTS[None, :]
    return x.reshape(-1), w.reshape(-1)


def divergence_to_gaussian(
    f: LogFunction | GeneratorDivergence,
    target: Any,
    mu: float,
    sigma: float,
    *,
    rtol: float = 1e-10,
) -> float:
    r"""``\int q f(p/q) dx`` for the 1-D target ``P`` and ``Q = N(mu, sigma^2)``, by quadrature.

    ``f``: a :class:`LogFunction` or a :class:`GeneratorDivergence` (its ``f_G``). Composite
    Gauss--Legendre (24 nodes per panel) on panels that end at ``c \pm k s`` for every component
    ``(c, s)`` of ``P`` and for ``(mu, sigma)``, ``k`` up to 24; if the integrand is not
    negligible at the ends (relative ``rtol``) the range is widened up to 300 standard deviations,
    and ``inf`` is returned when the integral still has not converged there (a divergent
    integral, e.g. ``\int p^2/q`` for a too narrow ``Q``). Relative accuracy about ``1e-10``.
    """
    fn = f.f if isinstance(f, GeneratorDivergence) else f
    if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"need finite mu and sigma > 0; got mu={mu}, sigma={sigma}")
    locs, scales = target_components(target)
    centres = np.concatenate([locs, [mu]])
    widths = np.concatenate([scales, [sigma]])
    edges = np.unique((centres[:, None] + widths[:, None] * np.concatenate([-_STEPS, _STEPS])[None, :]).ravel())
    big = float(widths.max())
    log_norm = math.log(sigma) + 0.5 * math.log(2.0 * math.pi)

    def integrate(edges_: np.ndarray) -> tuple[float, float]:
        x, w = _panels(edges_)
        xt = torch.from_numpy(np.concatenate([x, edges_[[0, -1]]]))
        with torch.no_grad():
            lp = target.log_prob(xt).to(torch.float64)
            lq = -0.5 * ((xt - mu) / sigma) ** 2 - log_norm
            y = fn.perspective(lp, lq).numpy()
        total = float(np.dot(w, y[:-2]))
        ends = float(np.abs(y[-2:]).max()) * float(edges_[-1] - edges_[0])
        return total, ends

    total, ends = integrate(edges)
    if not math.isfinite(total):
        return math.inf if total > 0 or math.isnan(total) else -math.inf
    if ends <= rtol * max(abs(total), 1e-300):
        return total
    lo, hi = edges[0], edges[-1]
    for step in _TAIL:
        lo_new = min(lo, float(centres.min()) - step * big)
        hi_new = max(hi, float(centres.max()) + step * big)
        extra_lo = np.linspace(lo_new, lo, 9)[:-1]
        extra_hi = np.linspace(hi, hi_new, 9)[1:]
        edges = np.concatenate([extra_lo, edges, extra_hi])
        lo, hi = lo_new, hi_new
        total, ends = integrate(edges)
        if not math.isfinite(total):
            return math.inf if total > 0 or math.isnan(total) else -math.inf
        if ends <= rtol * max(abs(total), 1e-300):
            return total
    return math.inf if total > 0 else -math.inf


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
    locs, scales = target_components(target)
    probs = getattr(getattr(target, "mixture_distribution", None), "probs", None)
    weights = np.ones(1) if probs is None else np.asarray(probs.detach().cpu(), dtype=np.float64)
    mean = float(np.dot(weights, locs))
    std = float(math.sqrt(max(np.dot(weights, scales**2 + locs**2) - mean**2, 0.0)))
    if mu_bounds is None:
        mu_bounds = (float(locs.min() - 5 * scales.max()), float(locs.max() + 5 * scales.max()))
    if sigma_bounds is None:
        sigma_bounds = (1e-2 * float(scales.min()), 5.0 * std)
    if not (mu_bounds[0] < mu_bounds[1] and 0 < sigma_bounds[0] < sigma_bounds[1]):
        raise ValueError(f"bad bounds mu_bounds={mu_bounds}, sigma_bounds={sigma_bounds}")
    starts = list(_default_starts(locs, scales, weights) if starts is None else starts)
    if not starts:
        raise ValueError("give at least one start (mu0, sigma0)")
    box = [mu_bounds, (math.log(sigma_bounds[0]), math.log(sigma_bounds[1]))]

    def objective(theta: np.ndarray) -> float:
        val = divergence_to_gaussian(f, target, float(theta[0]), math.exp(float(theta[1])))
        if math.isnan(val) or val == math.inf:
            return 1e300
        return max(val, -1e300)

    fits: list[GaussianFit] = []
    for mu0, s0 in starts:
        if not s0 > 0:
            raise ValueError(f"start sigma must be > 0; got {s0}")
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
        value = divergence_to_gaussian(f, target, mu, math.exp(ls))
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
