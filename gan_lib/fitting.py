r"""Generator objectives as data, and Gaussians fitted to a 1-D density by exact divergence minimisation.

Poole, Alemi, Sohl-Dickstein & Angelova (2016, ``poole2016improved``): a discriminator trained with
the usual binary cross-entropy has logit ``V \approx \log(p/q)`` (``P`` data, ``Q`` model), so the
generator can minimise ``E_Q[f_G(e^V)]``, an estimate of ``D_{f_G}(P\|Q) = \int q f_G(p/q)``.
:class:`GeneratorDivergence` holds one member of their family (GAN-standard, GAN-RKL, GAN-KL,
GAN-alpha) with three functions of the density ratio ``u = p/q``:

* ``f``: Poole's ``f_G``; its per-sample generator objective is ``f_G(e^V)`` (:meth:`objective`),
  the loss registered in :mod:`gan_lib.losses` under ``loss_name``.
* the *envelope* objective ``f_G(u) - u f_G'(u) = -f_G^*(f_G'(u))`` (:meth:`envelope_objective`):
  with the ratio held fixed, its gradient is the gradient of ``D_{f_G}`` itself (Danskin's theorem
  applied to the variational form of ``D_{f_G}``, as in the f-GAN minimax generator).
* ``equivalent``: the function ``\tilde f`` with ``\tilde f''(u) = -f_G'(u)/u``. With the ratio held
  fixed at its true value, the gradient of Poole's objective ``E_Q[f_G(e^V)]`` with respect to the
  generator equals the gradient of ``D_{\tilde f}(P\|Q)``, so that (not ``D_{f_G}``) is what an
  ideal-discriminator GAN with this objective descends. Only for GAN-RKL are the two the same.

Each function of ``u`` is a :class:`LogFunction`: its values from ``l = \log u`` and the
perspective ``q f(p/q)`` from log-densities, written so that neither underflow nor overflow of
``p/q`` spoils them.

:func:`divergence_to_gaussian` computes ``\int q f(p/q)`` for a 1-D target ``P`` (a Gaussian or a
Gaussian mixture from :mod:`gan_lib.toy`) and ``Q = N(mu, sigma^2)`` by composite Gauss--Legendre
quadrature on panels placed at multiples of every component's and of ``Q``'s standard deviation;
:func:`fit_gaussian` minimises it over ``(mu, log sigma)`` from several starts and returns the best
fit and every distinct local optimum. :func:`mode_coverage` counts the modes of a mixture that a
sample covers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from scipy.special import ndtr, roots_legendre
from torch import Tensor

__all__ = [
    "LogFunction",
    "GeneratorDivergence",
    "POOLE_NAMES",
    "generator_divergence",
    "poole_family",
    "target_components",
    "divergence_to_gaussian",
    "GaussianFit",
    "FitResult",
    "fit_gaussian",
    "Coverage",
    "mode_coverage",
    "pushforward_masses_1d",
]

POOLE_NAMES: tuple[str, ...] = ("standard", "rkl", "kl", "alpha")
"""Names of Poole et al.'s generator divergences (``alpha`` takes ``alpha=``)."""

_LOG_CLAMP = 60.0  # envelope objectives clamp |alpha V| to this (values and gradients below e^60)


# ------------------------------------------------------------------------------------------------
# Functions of the density ratio, in log space
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFunction:
    r"""A function ``f(u)`` of the density ratio ``u = p/q``, given in log space.

    ``at_log(l) = f(e^l)`` (elementwise, torch); ``perspective(lp, lq) = q f(p/q)`` from the
    log-densities ``lp = log p`` and ``lq = log q``, stable when either density underflows.
    ``tex`` is ``f(u)`` in LaTeX.
    """

    tex: str
    at_log: Callable[[Tensor], Tensor]
    perspective: Callable[[Tensor, Tensor], Tensor]

    def __call__(self, u: Tensor) -> Tensor:
        """``f(u)`` for ``u > 0``."""
        return self.at_log(torch.log(u))


def _alpha_perspective(a: float) -> Callable[[Tensor, Tensor], Tensor]:
    # q f_a(p/q) = (p^a q^(1-a) - q - a (p - q)) / (a (a - 1))
    def persp(lp: Tensor, lq: Tensor) -> Tensor:
        mixed = torch.exp(a * lp + (1.0 - a) * lq)
        return (mixed - torch.exp(lq) - a * (torch.exp(lp) - torch.exp(lq))) / (a * (a - 1.0))

    return persp


def _kl_perspective(lp: Tensor, lq: Tensor) -> Tensor:
    # q f(p/q) with f(u) = u log u - u + 1: p (lp - lq) - p + q
    p = torch.exp(lp)
    return torch.where(p > 0, p * (lp - lq), torch.zeros_like(p)) - p + torch.exp(lq)


def _f_standard() -> LogFunction:
    return LogFunction(
        tex=r"\log\left(1+\frac{1}{u}\right)",
        at_log=lambda l: F.softplus(-l),
        perspective=lambda lp, lq: torch.exp(lq) * F.softplus(lq - lp),
    )


def _f_rkl() -> LogFunction:
    return LogFunction(
        tex=r"-\log u",
        at_log=lambda l: -l,
        perspective=lambda lp, lq: torch.exp(lq) * (lq - lp),
    )


def _f_kl() -> LogFunction:
    return LogFunction(
        tex=r"u\log u",
        at_log=lambda l: l * torch.exp(l),
        perspective=lambda lp, lq: torch.where(
            torch.isneginf(lp), torch.zeros_like(lp), torch.exp(lp) * (lp - lq)
        ),
    )


def _f_alpha(a: float) -> LogFunction:
    return LogFunction(
        tex=r"\frac{u^\alpha-1-\alpha(u-1)}{\alpha(\alpha-1)}",
        at_log=lambda l: (torch.expm1(a * l) - a * torch.expm1(l)) / (a * (a - 1.0)),
        perspective=_alpha_perspective(a),
    )


def _equiv_standard() -> LogFunction:
    # f~(u) = (1 + u) log(1 + 1/u) = -log u - [u log u - (u+1) log(u+1)]:  D = KL(Q||P) - 2 JS + log 4
    return LogFunction(
        tex=r"(1+u)\log\left(1+\frac{1}{u}\right)",
        at_log=lambda l: F.softplus(-l) + torch.exp(l + torch.log(F.softplus(-l).clamp(min=1e-300))),
        perspective=lambda lp, lq: (torch.exp(lq) + torch.exp(lp)) * F.softplus(lq - lp),
    )


def _equiv_kl() -> LogFunction:
    # f~(u) = -u (log u)^2 / 2
    return LogFunction(
        tex=r"-\tfrac12\,u\,(\log u)^2",
        at_log=lambda l: -0.5 * torch.exp(l) * l * l,
        perspective=lambda lp, lq: torch.where(
            torch.isneginf(lp), torch.zeros_like(lp), -0.5 * torch.exp(lp) * (lp - lq) ** 2
        ),
    )


def _equiv_alpha(a: float) -> LogFunction:
    # f~(u) = [(u log u - u + 1) - f_a(u)] / (a - 1):  D = [KL(P||Q) - D_a(P||Q)] / (a - 1)
    fa = _f_alpha(a)
    pa = _alpha_perspective(a)
    return LogFunction(
        tex=r"\frac{(u\log u-u+1)-f_\alpha(u)}{\alpha-1}",
        at_log=lambda l: (l * torch.exp(l) - torch.expm1(l) - fa.at_log(l)) / (a - 1.0),
        perspective=lambda lp, lq: (_kl_perspective(lp, lq) - pa(lp, lq)) / (a - 1.0),
    )


# ------------------------------------------------------------------------------------------------
# Poole et al.'s family
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorDivergence:
    r"""One of Poole et al.'s generator divergences ``f_G``, with what a GAN does with it.

    Attributes:
        name: ``"standard"``, ``"rkl"``, ``"kl"`` or ``"alpha"``.
        label: e.g. ``"GAN-α (α=2)"`` (Poole et al.'s names).
        alpha: the order for ``"alpha"``, else ``None``.
        f: ``f_G`` as a :class:`LogFunction`.
        objective_tex: Poole's per-sample generator objective ``f_G(e^V)`` in terms of the logit.
        envelope_tex: the envelope objective ``f_G(u) - u f_G'(u)`` at ``u = e^V``.
        equivalent: ``\tilde f`` with ``\tilde f'' = -f_G'(u)/u``; ``equivalent_tex`` says what
            ``D_{\tilde f}`` is in familiar terms.
        loss_name, loss_options: the registry entry of :mod:`gan_lib.losses` that implements
            Poole's objective (BCE discriminator).
        mode_seeking_at_zero, covering_at_infinity: ``f_G(0^+)`` and ``\lim_{u\to\infty} f_G(u)/u``,
            the cost per unit of model mass where there is no data, and per unit of data mass
            where there is no model (``inf`` where infinite).
    """

    name: str
    label: str
    alpha: float | None
    f: LogFunction
    objective_tex: str
    envelope_tex: str
    equivalent: LogFunction
    equivalent_tex: str
    loss_name: str
    loss_options: Mapping[str, Any] = field(default_factory=dict)
    mode_seeking_at_zero: float = math.inf
    covering_at_infinity: float = math.inf

    def objective(self, v: Tensor) -> Tensor:
        """Poole's per-sample generator objective ``f_G(e^v)`` on raw logits ``v`` (not reduced)."""
        return self.f.at_log(v)

    def envelope_objective(self, v: Tensor) -> Tensor:
        r"""Per-sample ``f_G(u) - u f_G'(u)`` at ``u = e^v`` (not reduced); logits are clamped so
        that ``|v|`` and ``|alpha v|`` stay below 60.

        GAN-standard: ``softplus(-v) + sigmoid(-v)``; GAN-RKL: ``1 - v``; GAN-KL: ``-e^v``;
        GAN-alpha: ``-(e^{alpha v} - 1)/alpha``.
        """
        if self.name == "standard":
            return F.softplus(-v) + torch.sigmoid(-v)
        if self.name == "rkl":
            return 1.0 - v
        if self.name == "kl":
            return -torch.exp(v.clamp(max=_LOG_CLAMP))
        a = float(self.alpha)  # type: ignore[arg-type]
        bound = _LOG_CLAMP / max(abs(a), 1.0)
        return -torch.expm1(a * v.clamp(-bound, bound)) / a

    def loss(self) -> Any:
        """Poole's objective from :mod:`gan_lib.losses` (BCE discriminator)."""
        from gan_lib import losses

        return losses.get(self.loss_name, **dict(self.loss_options))

    def envelope_loss(self) -> Any:
        """A loss object (``.discriminator``, ``.generator``) with the BCE discriminator and the
        envelope generator objective, mean-reduced."""
        return _EnvelopeLoss(self)


class _EnvelopeLoss:
    def __init__(self, gd: GeneratorDivergence) -> None:
        from gan_lib import losses

        self._bce = losses.get("non_saturating")
        self._gd = gd
        self.name = f"envelope_{gd.name}" + ("" if gd.alpha is None else f"_{gd.alpha:g}")

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return self._bce.discriminator(d_real, d_fake)

    def generator(self, d_fake: Tensor, d_real: Tensor | None = None) -> Tensor:
        return self._gd.envelope_objective(d_fake).mean()


def generator_divergence(name: str, alpha: float | None = None) -> GeneratorDivergence:
    """Poole et al.'s generator divergence ``name`` (one of :data:`POOLE_NAMES`).

    ``alpha`` is required for ``"alpha"`` (finite, not 0 or 1) and refused for the others.
    """
    if name not in POOLE_NAMES:
        raise ValueError(f"unknown generator divergence {name!r}; allowed: {', '.join(POOLE_NAMES)}")
    if name != "alpha":
        if alpha is not None:
            raise ValueError(f"generator divergence {name!r} takes no alpha (got alpha={alpha!r})")
        return _FIXED[name]()
    if alpha is None or isinstance(alpha, bool):
        raise ValueError("generator divergence 'alpha' needs alpha=<float>, any finite value except 0 and 1")
    a = float(alpha)
    if not math.isfinite(a) or a in (0.0, 1.0):
        raise ValueError(f"alpha={alpha!r} not allowed; allowed: any finite number except 0 and 1")
    return GeneratorDivergence(
        name="alpha",
        label=f"GAN-α (α={a:g})",
        alpha=a,
        f=_f_alpha(a),
        objective_tex=r"\frac{e^{\alpha V}-1-\alpha(e^{V}-1)}{\alpha(\alpha-1)}",
        envelope_tex=r"-\frac{e^{\alpha V}-1}{\alpha}",
        equivalent=_equiv_alpha(a),
        equivalent_tex=r"\frac{\mathrm{KL}(P\|Q)-D_\alpha(P\|Q)}{\alpha-1}",
        loss_name="poole_alpha",
        loss_options={"alpha": a, "clamp": True},
        mode_seeking_at_zero=(1.0 / a) if a > 0 else math.inf,
        covering_at_infinity=(1.0 / (1.0 - a)) if a < 1 else math.inf,
    )


def _standard() -> GeneratorDivergence:
    return GeneratorDivergence(
        name="standard",
        label="GAN-standard",
        alpha=None,
        f=_f_standard(),
        objective_tex=r"\log(1+e^{-V})",
        envelope_tex=r"\log(1+e^{-V})+\sigma(-V)",
        equivalent=_equiv_standard(),
        equivalent_tex=r"\mathrm{KL}(Q\|P)-2\,\mathrm{JS}(P,Q)+\log 4",
        loss_name="poole_standard",
        mode_seeking_at_zero=math.inf,
        covering_at_infinity=0.0,
    )


def _rkl() -> GeneratorDivergence:
    return GeneratorDivergence(
        name="rkl",
        label="GAN-RKL",
        alpha=None,
        f=_f_rkl(),
        objective_tex=r"-V",
        envelope_tex=r"1-V",
        equivalent=_f_rkl(),
        equivalent_tex=r"\mathrm{KL}(Q\|P)",
        loss_name="poole_rkl",
        mode_seeking_at_zero=math.inf,
        covering_at_infinity=0.0,
    )


def _kl() -> GeneratorDivergence:
    return GeneratorDivergence(
        name="kl",
        label="GAN-KL",
        alpha=None,
        f=_f_kl(),
        objective_tex=r"V e^{V}",
        envelope_tex=r"-e^{V}",
        equivalent=_equiv_kl(),
        equivalent_tex=r"-\tfrac12\,\mathbb{E}_P\big[(\log\tfrac{p}{q})^2\big]",
        loss_name="poole_kl",
        loss_options={"clamp": True},
        mode_seeking_at_zero=0.0,
        covering_at_infinity=math.inf,
    )


_FIXED: dict[str, Callable[[], GeneratorDivergence]] = {"standard": _standard, "rkl": _rkl, "kl": _kl}


def poole_family(alphas: Sequence[float] = (-1.0, 0.5, 2.0)) -> list[GeneratorDivergence]:
    """GAN-standard, GAN-RKL, GAN-KL and GAN-alpha for each of ``alphas``, in that order."""
    return [generator_divergence(n) for n in ("standard", "rkl", "kl")] + [
        generator_divergence("alpha", alpha=a) for a in alphas
    ]


# ------------------------------------------------------------------------------------------------
# Quadrature between a 1-D Gaussian (mixture) target and a Gaussian model
# ------------------------------------------------------------------------------------------------

_GL_NODES, _GL_WEIGHTS = roots_legendre(24)
_STEPS = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 19.0, 24.0])
_TAIL = np.array([30.0, 40.0, 55.0, 75.0, 100.0, 140.0, 200.0, 300.0])


def target_components(target: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(locs, scales)`` of a 1-D ``torch.distributions.Normal`` or of a mixture of them
    (``MixtureSameFamily`` with ``Normal`` components, e.g. :func:`gan_lib.toy.mixture_1d`)."""
    comp = getattr(target, "component_distribution", target)
    loc = getattr(comp, "loc", None)
    scale = getattr(comp, "scale", None)
    if loc is None or scale is None:
        raise ValueError(
            f"target {type(target).__name__} is not a 1-D Normal or a mixture of Normals "
            "(gan_lib.toy.gaussian_1d / mixture_1d)"
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


# ------------------------------------------------------------------------------------------------
# Mode coverage
# ------------------------------------------------------------------------------------------------


class Coverage(NamedTuple):
    """What :func:`mode_coverage` returns."""

    fractions: np.ndarray  #: fraction of the samples within ``k`` stds of each mode
    covered: int  #: number of modes holding at least ``min_fraction`` of the samples
    low_quality: float  #: fraction of the samples farther than ``k`` stds from every mode


def mode_coverage(
    samples: Any,
    means: Any,
    stds: Any,
    *,
    k: float = 3.0,
    min_fraction: float = 0.01,
) -> Coverage:
    """Which modes of a mixture a sample covers, and the fraction of low-quality samples.

    ``samples``: ``(n,)`` or ``(n, d)``; ``means``: ``(K,)`` or ``(K, d)``; ``stds``: ``(K,)``
    (isotropic). A sample belongs to mode ``j`` when it lies within ``k`` standard deviations of
    its mean (Euclidean distance ``<= k stds[j]``); mode ``j`` is covered when at least
    ``min_fraction`` of all samples belong to it; a sample that belongs to no mode is of low
    quality.
    """
    x = np.asarray(samples, dtype=np.float64)
    m = np.asarray(means, dtype=np.float64)
    s = np.asarray(stds, dtype=np.float64).reshape(-1)
    if x.ndim == 1:
        x = x[:, None]
    if m.ndim == 1:
        m = m[:, None]
    if x.ndim != 2 or m.ndim != 2 or x.shape[1] != m.shape[1] or s.shape[0] != m.shape[0]:
        raise ValueError(f"shapes do not match: samples {x.shape}, means {m.shape}, stds {s.shape}")
    if x.shape[0] == 0:
        raise ValueError("no samples")
    if not (k > 0 and 0 < min_fraction <= 1):
        raise ValueError(f"need k > 0 and 0 < min_fraction <= 1; got k={k}, min_fraction={min_fraction}")
    dist = np.linalg.norm(x[:, None, :] - m[None, :, :], axis=-1)  # (n, K)
    inside = dist <= k * s[None, :]
    fractions = inside.mean(axis=0)
    return Coverage(fractions, int((fractions >= min_fraction).sum()), float((~inside.any(axis=1)).mean()))


# ------------------------------------------------------------------------------------------------
# The density of a 1-D generator
# ------------------------------------------------------------------------------------------------


def pushforward_masses_1d(
    generator: Callable[[Tensor], Tensor],
    edges: Any,
    *,
    n_z: int = 400_000,
    z_max: float = 8.0,
) -> np.ndarray:
    r"""Masses that ``Q = G_\#N(0, 1)`` puts in the bins ``[edges[i], edges[i+1])``, by quadrature in ``z``.

    ``generator`` maps a float32 ``(n, 1)`` tensor of noise to ``(n, 1)`` samples. The noise range
    ``[-z_max, z_max]`` is cut into ``n_z`` cells of equal width; the mass ``\Phi(b) - \Phi(a)``
    of each cell is put in the bin of ``G`` at its midpoint (a midpoint rule for the pushforward,
    deterministic, exact as ``n_z`` grows for a continuous ``G``). Mass mapped outside the edges
    and the ``2(1 - \Phi(z_max))`` beyond the noise range are not counted, so the masses sum to
    at most 1.
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
        raise ValueError("edges must be an increasing 1-D array of at least 2 values")
    if n_z < 2 or not z_max > 0:
        raise ValueError(f"need n_z >= 2 and z_max > 0; got n_z={n_z}, z_max={z_max}")
    z_edges = np.linspace(-z_max, z_max, n_z + 1)
    cell_mass = np.diff(ndtr(z_edges))
    z_mid = torch.from_numpy(((z_edges[:-1] + z_edges[1:]) / 2.0).astype(np.float32)).reshape(-1, 1)
    with torch.no_grad():
        x = generator(z_mid).reshape(-1).double().numpy()
    masses, _ = np.histogram(x, bins=e, weights=cell_mass)
    return masses
