r"""f-divergences as data: one frozen :class:`FDivergence` per divergence.

Convention (Nowozin, Cseke & Tomioka 2016, ``nowozin2016fgan``, Tables 1, 2 and 6)::

    D_f(P || Q) = \int q(x) f(p(x) / q(x)) dx,      P = data, Q = model.

The critic outputs a raw value ``v``; the output activation maps it into the domain of the
convex conjugate, ``T = g_f(v)``; the discriminator maximises the variational lower bound

    E_P[T] - E_Q[f^*(T)]   <=   D_f(P || Q),

with equality at the optimal critic ``T^*(x) = f'(p(x) / q(x))``. Fenchel--Young gives
``f^*(f'(u)) = u f'(u) - f(u)``.

Each object carries ``f``, the table's ``f_star``, the activation ``g_f``, the composite
``conjugate_of_activation(v) = f^*(g_f(v))`` computed stably *from the raw value* (softplus,
log-space), the optimal critic ``t_star(u) = f'(u)`` and its inverse, and short LaTeX strings from
which the book renders its table, so prose and code cannot disagree.

Naming caveats (see ``/work/shared/references/fgan-table.md``):

* Pearson: ``f(u) = (u-1)^2`` so ``D_f = \int (p-q)^2 / q``. Neyman: ``f(u) = (1-u)^2 / u`` so
  ``D_f = \int (p-q)^2 / p``.
* Pearson's ``f_star`` is the table's ``t^2/4 + t``; for ``f`` restricted to ``u >= 0`` the exact
  conjugate is that only for ``t >= -2`` (and ``-1`` below). With the identity activation f-GAN uses
  the table form; it is still an upper bound of the exact conjugate, so the bound stays valid.
* Jensen--Shannon with the table's ``f``: ``D_f = 2 JS(P, Q)`` (range ``[0, 2 log 2]``); with the
  GAN ``f``: ``D_f = 2 JS - log 4``.
* alpha > 1 uses the identity activation and the *exact* conjugate, equal to ``-1/alpha`` below
  ``t = 1/(1 - alpha)``.

Float32 safety: for divergences whose activation or conjugate grows exponentially in ``v``
``safe_logit_range`` gives the range of raw ``v`` in which ``g_f(v)``, ``f^*(g_f(v))`` and their
derivatives stay below about ``e^70`` (so even batch sums of a million terms stay finite in
float32). ``None`` means they are finite (polynomial growth) for every ``|v| <= 1e4``. Losses should
clamp raw critic outputs to this range.

The module also holds the numerical tools the book uses to check claims: closed forms between
Gaussians (:func:`gaussian_divergence`), adaptive Gauss--Legendre quadrature between 1-D densities
(:func:`quad_divergence`, :func:`quad_expectation`, :func:`jsd`), Monte Carlo
(:func:`mc_divergence`) and the f-GAN value on raw critic outputs (:func:`variational_bound`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "perspective",
    "FDivergence",
    "DIVERGENCES",
    "GAUSSIAN_CLOSED_FORMS",
    "LOG_SAFE_BUDGET",
    "get_divergence",
    "wright_omega",
    "log_softplus",
    "inverse_softplus",
    "gaussian_divergence",
    "quad_divergence",
    "quad_expectation",
    "jsd",
    "mc_divergence",
    "variational_bound",
]

logger = logging.getLogger(__name__)

#: ``safe_logit_range`` keeps exp-growing terms (and their derivatives) below ``e^LOG_SAFE_BUDGET``.
LOG_SAFE_BUDGET: float = 70.0

_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class FDivergence:
    r"""One f-divergence ``D_f(P||Q) = \int q f(p/q)`` with its f-GAN ingredients.

    All callables are elementwise torch functions that work in float32 and float64.
    ``dom_star`` is the interval ``(lo, hi)`` of ``dom f^*`` (``hi`` excluded unless stated in
    ``dom_tex``); ``f_prime_inverse`` maps a critic value ``T`` back to the density ratio
    ``u = (f')^{-1}(T)`` (``None`` where ``f'`` is not invertible, i.e. total variation);
    ``activation_inverse`` maps ``T`` back to the raw value ``v``.
    """

    name: str
    label: str
    f: Callable[[Tensor], Tensor]
    f_star: Callable[[Tensor], Tensor]
    activation: Callable[[Tensor], Tensor]
    conjugate_of_activation: Callable[[Tensor], Tensor]
    t_star: Callable[[Tensor], Tensor]
    f_prime_1: float
    f_tex: str
    f_star_tex: str
    activation_tex: str
    t_star_tex: str
    dom_tex: str
    citation: str
    safe_logit_range: tuple[float, float] | None
    dom_star: tuple[float, float]
    activation_inverse: Callable[[Tensor], Tensor]
    f_prime_inverse: Callable[[Tensor], Tensor] | None
    alpha: float | None = None


# ----------------------------------------------------------------------------------------------
# Stable scalar helpers
# ----------------------------------------------------------------------------------------------


def _softplus(x: Tensor) -> Tensor:
    """``log(1 + e^x)`` exactly in float64 (``F.softplus`` returns ``x`` itself above 20)."""
    return torch.logaddexp(x, torch.zeros_like(x))


def log_softplus(x: Tensor) -> Tensor:
    r"""``log(softplus(x)) = log(log(1 + e^x))`` without underflow for very negative ``x``.

    For ``x < 0`` we write ``softplus(x) = e^x h(e^x)`` with ``h(r) = log1p(r)/r`` so that
    ``log softplus(x) = x + log h(e^x)``; ``h`` is replaced by its series ``1 - r/2 + r^2/3 - r^3/4``
    for ``r < 1e-4``. Gradients are finite everywhere.
    """
    x_pos = x.clamp(min=0.0)
    x_neg = x.clamp(max=0.0)
    upper = torch.log(_softplus(x_pos))  # softplus >= log 2 here
    r = torch.exp(x_neg)  # in (0, 1]
    small = r < 1e-4
    r_safe = torch.where(small, torch.ones_like(r), r)
    series = 1.0 - r * (0.5 - r * (1.0 / 3.0 - 0.25 * r))
    h = torch.where(small, series, torch.log1p(r_safe) / r_safe)
    lower = x_neg + torch.log(h)
    return torch.where(x > 0, upper, lower)


def inverse_softplus(y: Tensor) -> Tensor:
    """``softplus^{-1}(y) = log(e^y - 1) = y + log(-expm1(-y))`` for ``y > 0``."""
    return y + torch.log(-torch.expm1(-y))


def _wright_omega_iterate(x: Tensor) -> Tensor:
    """Solve ``w + log w = x`` (float64) by fourth-order Fritsch--Shafer--Crowley steps."""
    far_left = x < -30.0  # omega(x) = exp(x - e^x) to double precision there
    xs = torch.where(far_left, torch.zeros_like(x), x)
    w = torch.where(xs > 1.0, xs - torch.log(xs.clamp(min=1.0)), _softplus(xs))
    for _ in range(5):
        r = xs - w - torch.log(w)
        a = (1.0 + w) * (1.0 + w + 2.0 * r / 3.0)  # may overflow to inf for huge x: then the
        w = w * (1.0 + r / (1.0 + w) * (1.0 + 0.5 * r / (a - r)))  # step is Newton's, still exact
        w = w.clamp(min=1e-300)
    return torch.where(far_left, torch.exp(x - torch.exp(x)), w)  # omega = exp(x - omega)


class _WrightOmega(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        w = _wright_omega_iterate(x.detach().to(torch.float64)).to(x.dtype)
        ctx.save_for_backward(w)
        return w

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        (w,) = ctx.saved_tensors
        return grad * w / (1.0 + w)  # d omega / dx = omega / (1 + omega)


def wright_omega(x: Tensor) -> Tensor:
    r"""Wright omega ``omega(x) = W(e^x)``: the solution of ``w + log w = x`` (``corless1996lambertw``).

    Computed in float64 by five fourth-order (Fritsch--Shafer--Crowley) iterations from an
    asymptotic start, returned in ``x``'s dtype; ``omega(x) = exp(x - e^x)`` below ``x = -30``.
    Differentiable (``omega' = omega / (1 + omega)``, twice differentiable too).
    """
    return _WrightOmega.apply(x)


# ----------------------------------------------------------------------------------------------
# The divergences
# ----------------------------------------------------------------------------------------------

_INF = math.inf


def _neg_inv_softplus_of(y: Tensor) -> Tensor:
    """The ``v`` with ``softplus(-v) = y``."""
    return -inverse_softplus(y)


def _kl() -> FDivergence:
    b = LOG_SAFE_BUDGET
    return FDivergence(
        name="kl",
        label="Kullback–Leibler",
        f=lambda u: torch.xlogy(u, u),
        f_star=lambda t: torch.exp(t - 1.0),
        activation=lambda v: v,
        conjugate_of_activation=lambda v: torch.exp(v - 1.0),
        t_star=lambda u: 1.0 + torch.log(u),
        f_prime_1=1.0,
        f_tex=r"u\log u",
        f_star_tex=r"e^{t-1}",
        activation_tex=r"v",
        t_star_tex=r"1+\log u",
        dom_tex=r"\mathbb{R}",
        citation="nowozin2016fgan",
        safe_logit_range=(-_INF, b + 1.0),
        dom_star=(-_INF, _INF),
        activation_inverse=lambda t: t,
        f_prime_inverse=lambda t: torch.exp(t - 1.0),
    )


def _reverse_kl() -> FDivergence:
    b = LOG_SAFE_BUDGET
    return FDivergence(
        name="reverse_kl",
        label="reverse Kullback–Leibler",
        f=lambda u: -torch.log(u),
        f_star=lambda t: -1.0 - torch.log(-t),
        activation=lambda v: -torch.exp(-v),
        conjugate_of_activation=lambda v: v - 1.0,
        t_star=lambda u: -1.0 / u,
        f_prime_1=-1.0,
        f_tex=r"-\log u",
        f_star_tex=r"-1-\log(-t)",
        activation_tex=r"-e^{-v}",
        t_star_tex=r"-1/u",
        dom_tex=r"t<0",
        citation="nowozin2016fgan",
        safe_logit_range=(-b, _INF),
        dom_star=(-_INF, 0.0),
        activation_inverse=lambda t: -torch.log(-t),
        f_prime_inverse=lambda t: -1.0 / t,
    )


def _pearson() -> FDivergence:
    return FDivergence(
        name="pearson",
        label="Pearson χ²",
        f=lambda u: (u - 1.0) ** 2,
        f_star=lambda t: 0.25 * t * t + t,
        activation=lambda v: v,
        conjugate_of_activation=lambda v: 0.25 * v * v + v,
        t_star=lambda u: 2.0 * (u - 1.0),
        f_prime_1=0.0,
        f_tex=r"(u-1)^2",
        f_star_tex=r"\tfrac14 t^2+t",
        activation_tex=r"v",
        t_star_tex=r"2(u-1)",
        dom_tex=r"\mathbb{R}",
        citation="nowozin2016fgan",
        safe_logit_range=None,
        dom_star=(-_INF, _INF),
        activation_inverse=lambda t: t,
        f_prime_inverse=lambda t: 1.0 + 0.5 * t,
    )


def _neyman() -> FDivergence:
    b = LOG_SAFE_BUDGET
    return FDivergence(
        name="neyman",
        label="Neyman χ²",
        f=lambda u: (1.0 - u) ** 2 / u,
        f_star=lambda t: 2.0 - 2.0 * torch.sqrt(1.0 - t),
        activation=lambda v: -torch.expm1(-v),
        conjugate_of_activation=lambda v: 2.0 - 2.0 * torch.exp(-0.5 * v),
        t_star=lambda u: 1.0 - u.pow(-2),
        f_prime_1=0.0,
        f_tex=r"(1-u)^2/u",
        f_star_tex=r"2-2\sqrt{1-t}",
        activation_tex=r"1-e^{-v}",
        t_star_tex=r"1-u^{-2}",
        dom_tex=r"t<1",
        citation="nowozin2016fgan",
        safe_logit_range=(-b, _INF),
        dom_star=(-_INF, 1.0),
        activation_inverse=lambda t: -torch.log1p(-t),
        f_prime_inverse=lambda t: torch.rsqrt(1.0 - t),
    )


def _squared_hellinger() -> FDivergence:
    b = LOG_SAFE_BUDGET
    return FDivergence(
        name="squared_hellinger",
        label="squared Hellinger",
        f=lambda u: (torch.sqrt(u) - 1.0) ** 2,
        f_star=lambda t: t / (1.0 - t),
        activation=lambda v: -torch.expm1(-v),
        conjugate_of_activation=lambda v: torch.expm1(v),
        t_star=lambda u: 1.0 - torch.rsqrt(u),
        f_prime_1=0.0,
        f_tex=r"(\sqrt{u}-1)^2",
        f_star_tex=r"t/(1-t)",
        activation_tex=r"1-e^{-v}",
        t_star_tex=r"1-u^{-1/2}",
        dom_tex=r"t<1",
        citation="nowozin2016fgan",
        safe_logit_range=(-b, b),
        dom_star=(-_INF, 1.0),
        activation_inverse=lambda t: -torch.log1p(-t),
        f_prime_inverse=lambda t: (1.0 - t).pow(-2),
    )


def _jeffrey_f_star(t: Tensor) -> Tensor:
    # f*(t) = w + 1/w + t - 2 with w = W(e^{1-t}) = omega(1-t); 1/w = exp(w - (1-t)) since log w = x - w.
    x = 1.0 - t
    w = wright_omega(x)
    return w + torch.exp(w - x) + t - 2.0


def _jeffrey() -> FDivergence:
    b = LOG_SAFE_BUDGET
    return FDivergence(
        name="jeffrey",
        label="Jeffrey",
        f=lambda u: (u - 1.0) * torch.log(u),
        f_star=_jeffrey_f_star,
        activation=lambda v: v,
        conjugate_of_activation=_jeffrey_f_star,
        t_star=lambda u: 1.0 + torch.log(u) - 1.0 / u,
        f_prime_1=0.0,
        f_tex=r"(u-1)\log u",
        f_star_tex=r"W(e^{1-t})+1/W(e^{1-t})+t-2",
        activation_tex=r"v",
        t_star_tex=r"1+\log u-1/u",
        dom_tex=r"\mathbb{R}",
        citation="nowozin2016fgan",
        # 1/W(e^{1-v}) ~ e^{v-1}
        safe_logit_range=(-_INF, b),
        dom_star=(-_INF, _INF),
        activation_inverse=lambda t: t,
        f_prime_inverse=lambda t: torch.exp(wright_omega(1.0 - t) - (1.0 - t)),
    )


def _jensen_shannon() -> FDivergence:
    return FDivergence(
        name="jensen_shannon",
        label="Jensen–Shannon",
        f=lambda u: torch.xlogy(u, u) - (u + 1.0) * torch.log((u + 1.0) / 2.0),
        f_star=lambda t: -torch.log(2.0 - torch.exp(t)),
        activation=lambda v: _LOG2 - _softplus(-v),
        conjugate_of_activation=lambda v: _softplus(v) - _LOG2,
        t_star=lambda u: torch.log(2.0 * u / (1.0 + u)),
        f_prime_1=0.0,
        f_tex=r"u\log u-(u+1)\log\tfrac{u+1}{2}",
        f_star_tex=r"-\log(2-e^{t})",
        activation_tex=r"\log 2-\log(1+e^{-v})",
        t_star_tex=r"\log\tfrac{2u}{1+u}",
        dom_tex=r"t<\log 2",
        citation="nowozin2016fgan",
        safe_logit_range=None,
        dom_star=(-_INF, _LOG2),
        activation_inverse=lambda t: _neg_inv_softplus_of(_LOG2 - t),
        f_prime_inverse=lambda t: torch.exp(t) / (2.0 - torch.exp(t)),
    )


def _gan_f(u: Tensor) -> Tensor:
    # u log u - (u+1) log(u+1) = -u log1p(1/u) - log1p(u): no cancellation for large u
    pos = u > 0
    u_safe = torch.where(pos, u, torch.ones_like(u))
    head = torch.where(pos, -u_safe * torch.log1p(1.0 / u_safe), torch.zeros_like(u))
    return head - torch.log1p(u)


def _gan() -> FDivergence:
    return FDivergence(
        name="gan",
        label="GAN (2·JS − log 4)",
        f=_gan_f,
        f_star=lambda t: -torch.log(-torch.expm1(t)),
        activation=lambda v: -_softplus(-v),
        conjugate_of_activation=lambda v: _softplus(v),
        t_star=lambda u: torch.log(u / (1.0 + u)),
        f_prime_1=-_LOG2,
        f_tex=r"u\log u-(u+1)\log(u+1)",
        f_star_tex=r"-\log(1-e^{t})",
        activation_tex=r"-\log(1+e^{-v})",
        t_star_tex=r"\log\tfrac{u}{1+u}",
        dom_tex=r"t<0",
        citation="goodfellow2014gan",
        safe_logit_range=None,
        dom_star=(-_INF, 0.0),
        activation_inverse=lambda t: _neg_inv_softplus_of(-t),
        f_prime_inverse=lambda t: torch.exp(t) / (-torch.expm1(t)),
    )


def _total_variation() -> FDivergence:
    return FDivergence(
        name="total_variation",
        label="total variation",
        f=lambda u: 0.5 * torch.abs(u - 1.0),
        f_star=lambda t: t,
        activation=lambda v: 0.5 * torch.tanh(v),
        conjugate_of_activation=lambda v: 0.5 * torch.tanh(v),
        t_star=lambda u: 0.5 * torch.sign(u - 1.0),
        f_prime_1=0.0,
        f_tex=r"\tfrac12|u-1|",
        f_star_tex=r"t",
        activation_tex=r"\tfrac12\tanh v",
        t_star_tex=r"\tfrac12\operatorname{sign}(u-1)",
        dom_tex=r"|t|\le\tfrac12",
        citation="nowozin2016fgan",
        safe_logit_range=None,
        dom_star=(-0.5, 0.5),
        activation_inverse=lambda t: torch.atanh(2.0 * t),
        f_prime_inverse=None,
    )


@lru_cache(maxsize=64)
def _alpha(alpha: float) -> FDivergence:
    a = float(alpha)
    c = a / (a - 1.0)  # exponent of the conjugate
    hi_t = 1.0 / (1.0 - a)  # 1/(1 - alpha): edge of dom f* (alpha < 1) / kink of f* (alpha > 1)
    b = LOG_SAFE_BUDGET

    def f(u: Tensor) -> Tensor:
        return (torch.expm1(a * torch.log(u)) - a * (u - 1.0)) / (a * (a - 1.0))

    def t_star(u: Tensor) -> Tensor:
        return torch.expm1((a - 1.0) * torch.log(u)) / (a - 1.0)

    def f_prime_inverse(t: Tensor) -> Tensor:
        return torch.exp(torch.log1p((a - 1.0) * t) / (a - 1.0))

    if a < 1.0:

        def f_star(t: Tensor) -> Tensor:
            base = t * (a - 1.0) + 1.0
            ok = base > 0
            val = torch.expm1(c * torch.log(torch.where(ok, base, torch.ones_like(base)))) / a
            return torch.where(ok, val, torch.full_like(base, math.inf))

        def conj(v: Tensor) -> Tensor:
            # t(alpha-1)+1 = (1-alpha) softplus(-v) for t = g(v): work in log-space.
            return torch.expm1(c * (math.log(1.0 - a) + log_softplus(-v))) / a

        if a > 0.0:
            # exponent E = c (log(1-a) + log softplus(-v)), c < 0; keep E plus the prefactors 1/a
            # (value) and 1/(1-a) (derivative) below the budget: softplus(-v) >= exp(L).
            budget = b - max(0.0, -math.log(a), -math.log(1.0 - a))
            big_l = -budget / abs(c) - math.log(1.0 - a)
            y = math.exp(big_l)  # v_hi = -softplus^{-1}(y); softplus^{-1}(y) = log y + O(y)
            v_hi = -big_l if big_l < -30.0 else -(y + math.log(-math.expm1(-y)))
            safe: tuple[float, float] | None = (-_INF, v_hi)
        else:
            safe = None
        return FDivergence(
            name="alpha",
            label=f"α-divergence (α = {a:g})",
            f=f,
            f_star=f_star,
            activation=lambda v: hi_t - _softplus(-v),
            conjugate_of_activation=conj,
            t_star=t_star,
            f_prime_1=0.0,
            f_tex=r"\frac{u^{\alpha}-1-\alpha(u-1)}{\alpha(\alpha-1)}",
            f_star_tex=r"\tfrac1\alpha\big(t(\alpha-1)+1\big)^{\alpha/(\alpha-1)}-\tfrac1\alpha",
            activation_tex=r"\tfrac{1}{1-\alpha}-\log(1+e^{-v})",
            t_star_tex=r"\frac{u^{\alpha-1}-1}{\alpha-1}",
            dom_tex=r"t<\tfrac{1}{1-\alpha}",
            citation="nowozin2016fgan",
            safe_logit_range=safe,
            dom_star=(-_INF, hi_t),
            activation_inverse=lambda t: _neg_inv_softplus_of(hi_t - t),
            f_prime_inverse=f_prime_inverse,
            alpha=a,
        )

    def f_star_exact(t: Tensor) -> Tensor:
        base = (t * (a - 1.0) + 1.0).clamp(min=0.0)
        return (base.pow(c) - 1.0) / a

    # (base)^c <= e^budget with base = (a-1) v + 1; derivative is a^{-1} c (a-1) base^{c-1} <= base^c.
    v_hi = math.expm1(b / c) / (a - 1.0)
    safe_hi: tuple[float, float] | None = None if v_hi > 1e4 else (-_INF, v_hi)
    return FDivergence(
        name="alpha",
        label=f"α-divergence (α = {a:g})",
        f=f,
        f_star=f_star_exact,
        activation=lambda v: v,
        conjugate_of_activation=f_star_exact,
        t_star=t_star,
        f_prime_1=0.0,
        f_tex=r"\frac{u^{\alpha}-1-\alpha(u-1)}{\alpha(\alpha-1)}",
        f_star_tex=(
            r"\tfrac1\alpha\big(\max(t(\alpha-1)+1,0)\big)^{\alpha/(\alpha-1)}-\tfrac1\alpha"
        ),
        activation_tex=r"v",
        t_star_tex=r"\frac{u^{\alpha-1}-1}{\alpha-1}",
        dom_tex=r"\mathbb{R}",
        citation="nowozin2016fgan",
        safe_logit_range=safe_hi,
        dom_star=(-_INF, _INF),
        activation_inverse=lambda t: t,
        f_prime_inverse=f_prime_inverse,
        alpha=a,
    )


_BUILDERS: dict[str, Callable[[], FDivergence]] = {
    "kl": _kl,
    "reverse_kl": _reverse_kl,
    "pearson": _pearson,
    "neyman": _neyman,
    "squared_hellinger": _squared_hellinger,
    "jeffrey": _jeffrey,
    "jensen_shannon": _jensen_shannon,
    "gan": _gan,
    "total_variation": _total_variation,
}

#: Registry keys, in the order of the book's table.
DIVERGENCES: tuple[str, ...] = tuple(_BUILDERS) + ("alpha",)


@lru_cache(maxsize=None)
def _cached(name: str) -> FDivergence:
    return _BUILDERS[name]()


def get_divergence(name: str, **options: Any) -> FDivergence:
    """Return the :class:`FDivergence` registered as ``name`` (one of :data:`DIVERGENCES`).

    ``"alpha"`` needs ``alpha=<finite float not 0 or 1>``; every other name takes no option.
    Raises ``ValueError`` naming the bad value and what is allowed.
    """
    if name not in DIVERGENCES:
        raise ValueError(f"unknown divergence {name!r}; allowed: {', '.join(DIVERGENCES)}")
    if name == "alpha":
        extra = sorted(set(options) - {"alpha"})
        if extra:
            raise ValueError(f"unknown option(s) {extra} for 'alpha'; allowed: ['alpha']")
        if "alpha" not in options:
            raise ValueError("divergence 'alpha' needs alpha=<float>, any finite value except 0 and 1")
        try:
            a = float(options["alpha"])
        except (TypeError, ValueError):
            raise ValueError(
                f"alpha={options['alpha']!r} is not a number; allowed: any finite float except 0 and 1"
            ) from None
        if not math.isfinite(a) or a in (0.0, 1.0):
            raise ValueError(f"alpha={a!r} not allowed; allowed: any finite float except 0 and 1")
        return _alpha(a)
    if options:
        raise ValueError(f"divergence {name!r} takes no options; got {sorted(options)}")
    return _cached(name)


def _resolve(div: str | FDivergence, **options: Any) -> FDivergence:
    if isinstance(div, FDivergence):
        if options:
            raise ValueError(f"options {sorted(options)} given together with an FDivergence object")
        return div
    return get_divergence(div, **options)


# ----------------------------------------------------------------------------------------------
# f-GAN value
# ----------------------------------------------------------------------------------------------


def variational_bound(div: str | FDivergence, v_real: Tensor, v_fake: Tensor) -> Tensor:
    r"""f-GAN value on raw critic outputs: ``mean g_f(v_real) - mean f^*(g_f(v_fake))``.

    A lower bound on ``D_f(P||Q)`` for samples ``v_real`` from P and ``v_fake`` from Q
    (``nowozin2016fgan``, Eq. 6); differentiable; the conjugate is taken from the stable composite.
    """
    d = _resolve(div)
    return d.activation(v_real).mean() - d.conjugate_of_activation(v_fake).mean()


# ----------------------------------------------------------------------------------------------
# Gaussian closed forms
# ----------------------------------------------------------------------------------------------

#: Divergences with a closed form between two Gaussians (``"alpha"`` for any alpha).
GAUSSIAN_CLOSED_FORMS: tuple[str, ...] = (
    "kl",
    "reverse_kl",
    "jeffrey",
    "squared_hellinger",
    "pearson",
    "neyman",
    "alpha",
)


def _as_gaussian(mean: Any, cov: Any, which: str) -> tuple[Tensor, Tensor]:
    mu = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
    d = mu.numel()
    S = torch.as_tensor(cov, dtype=torch.float64)
    if S.ndim == 0:
        S = S * torch.eye(d, dtype=torch.float64)
    elif S.ndim == 1:
        if S.numel() != d:
            raise ValueError(f"cov_{which} has {S.numel()} entries but mean_{which} has {d}")
        S = torch.diag(S)
    if S.shape != (d, d):
        raise ValueError(f"cov_{which} has shape {tuple(S.shape)}; expected ({d}, {d}) or a scalar variance")
    if not (torch.isfinite(mu).all() and torch.isfinite(S).all()):
        raise ValueError(f"mean_{which}/cov_{which} contain non-finite values")
    if not torch.allclose(S, S.T):
        raise ValueError(f"cov_{which} must be symmetric")
    if torch.linalg.eigvalsh(S).min() <= 0:
        raise ValueError(f"cov_{which} must be positive definite (a 1-D scalar is a variance, std^2)")
    return mu, S


def _gauss_kl(mp: Tensor, Sp: Tensor, mq: Tensor, Sq: Tensor) -> float:
    d = mp.numel()
    Lq = torch.linalg.cholesky(Sq)
    delta = (mq - mp).reshape(-1, 1)
    trace = torch.cholesky_solve(Sp, Lq).diagonal().sum()
    maha = (delta * torch.cholesky_solve(delta, Lq)).sum()
    logdet = torch.linalg.slogdet(Sq)[1] - torch.linalg.slogdet(Sp)[1]
    return float(0.5 * (trace + maha - d + logdet))


def _gauss_log_chernoff(a: float, mp: Tensor, Sp: Tensor, mq: Tensor, Sq: Tensor) -> float:
    r"""``log \int p^a q^{1-a}`` for Gaussians; ``+inf`` when ``a Sq + (1-a) Sp`` is not positive definite."""
    Sa = a * Sq + (1.0 - a) * Sp
    Sa = 0.5 * (Sa + Sa.T)
    if torch.linalg.eigvalsh(Sa).min() <= 0:
        return math.inf
    La = torch.linalg.cholesky(Sa)
    delta = (mp - mq).reshape(-1, 1)
    maha = (delta * torch.cholesky_solve(delta, La)).sum()
    val = (
        0.5 * a * (a - 1.0) * maha
        - 0.5 * torch.linalg.slogdet(Sa)[1]
        + 0.5 * (1.0 - a) * torch.linalg.slogdet(Sp)[1]
        + 0.5 * a * torch.linalg.slogdet(Sq)[1]
    )
    return float(val)


def _alpha_from_chernoff(a: float, mp: Tensor, Sp: Tensor, mq: Tensor, Sq: Tensor) -> float:
    """alpha-divergence ``(\\int p^a q^{1-a} - 1) / (a (a - 1))``."""
    lc = _gauss_log_chernoff(a, mp, Sp, mq, Sq)
    if math.isinf(lc):
        return math.inf
    try:
        return math.expm1(lc) / (a * (a - 1.0))
    except OverflowError:
        return math.inf


def gaussian_divergence(
    name_or_div: str | FDivergence,
    mean_p: Any,
    cov_p: Any,
    mean_q: Any,
    cov_q: Any,
    **options: Any,
) -> float:
    r"""``D_f(N(mean_p, cov_p) || N(mean_q, cov_q))`` in closed form, any dimension.

    ``cov`` may be a scalar variance (std^2, times the identity in d > 1), a vector (diagonal) or a
    matrix. Formulas: KL the usual one; reverse KL = KL(Q||P); Jeffrey = their sum; the others from
    the Chernoff coefficient ``C_a = \int p^a q^{1-a}``, with
    ``log C_a = a(a-1)/2 Δ^T Σ_a^{-1} Δ - ½ log|Σ_a| + (1-a)/2 log|Σ_p| + a/2 log|Σ_q|``,
    ``Σ_a = a Σ_q + (1-a) Σ_p`` (finite only where ``Σ_a`` is positive definite): squared Hellinger
    ``2 - 2 C_{1/2}`` (Bhattacharyya), Pearson ``C_2 - 1`` (needs ``2Σ_q - Σ_p > 0``), Neyman
    ``C_{-1} - 1`` (needs ``2Σ_p - Σ_q > 0``), alpha ``(C_a - 1)/(a(a-1))``. Returns ``math.inf``
    where the divergence is infinite. ``options`` (``alpha=``) go to :func:`get_divergence`.
    """
    d = _resolve(name_or_div, **options)
    if d.name not in GAUSSIAN_CLOSED_FORMS:
        raise ValueError(
            f"no Gaussian closed form for {d.name!r}; closed forms exist for: "
            f"{', '.join(GAUSSIAN_CLOSED_FORMS)} (use quad_divergence or mc_divergence instead)"
        )
    mp, Sp = _as_gaussian(mean_p, cov_p, "p")
    mq, Sq = _as_gaussian(mean_q, cov_q, "q")
    if mp.numel() != mq.numel():
        raise ValueError(f"P has dimension {mp.numel()} but Q has {mq.numel()}")
    if d.name == "kl":
        return _gauss_kl(mp, Sp, mq, Sq)
    if d.name == "reverse_kl":
        return _gauss_kl(mq, Sq, mp, Sp)
    if d.name == "jeffrey":
        return _gauss_kl(mp, Sp, mq, Sq) + _gauss_kl(mq, Sq, mp, Sp)
    if d.name == "squared_hellinger":
        return -2.0 * math.expm1(_gauss_log_chernoff(0.5, mp, Sp, mq, Sq))
    if d.name == "pearson":
        return 2.0 * _alpha_from_chernoff(2.0, mp, Sp, mq, Sq)
    if d.name == "neyman":
        return 2.0 * _alpha_from_chernoff(-1.0, mp, Sp, mq, Sq)
    assert d.alpha is not None
    return _alpha_from_chernoff(d.alpha, mp, Sp, mq, Sq)


# ----------------------------------------------------------------------------------------------
# Quadrature (1-D) and Monte Carlo
# ----------------------------------------------------------------------------------------------

_GL_ORDER = 15


@lru_cache(maxsize=4)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    return x, w


def _adaptive_integrate(
    fn: Callable[[Tensor], Tensor],
    lo: float,
    hi: float,
    rtol: float = 1e-11,
    atol: float = 1e-15,
    init_panels: int = 64,
    max_rounds: int = 60,
    max_panels: int = 1 << 14,
) -> float:
    """Adaptive Gauss--Legendre (order 15) on [lo, hi]; each round evaluates ``fn`` once, batched.

    A panel is accepted when its one-panel and two-half-panel estimates agree to within its share
    (by width) of ``max(atol, rtol * |integral|)``; otherwise it is halved. At most ``max_panels``
    panels are refined in one round: an integrand that is noisy at the level of ``rtol`` (e.g. a
    network evaluated in float32) would otherwise double the panels every round without end; past
    the cap the remaining panels are accepted as they are, with a warning.
    """
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"need finite lo < hi; got lo={lo}, hi={hi}")
    nodes, weights = _gauss_legendre(_GL_ORDER)
    length = hi - lo
    edges = np.linspace(lo, hi, init_panels + 1)
    a, b = edges[:-1], edges[1:]
    total = 0.0
    scale: float | None = None
    for round_ in range(max_rounds):
        m = (a + b) / 2.0
        # whole panel, left half, right half
        pa = np.concatenate([a, a, m])
        pb = np.concatenate([b, m, b])
        half = (pb - pa) / 2.0
        mid = (pa + pb) / 2.0
        x = mid[:, None] + half[:, None] * nodes[None, :]
        with torch.no_grad():
            y = fn(torch.from_numpy(x.reshape(-1))).to(torch.float64).reshape(x.shape).numpy()
        est = (y * weights[None, :]).sum(axis=1) * half
        k = a.size
        whole, two = est[:k], est[k : 2 * k] + est[2 * k :]
        if scale is None:
            scale = abs(float(two.sum()))
        if not np.all(np.isfinite(two)):
            bad = two[~np.isfinite(two)]
            if np.all(bad == np.inf):
                return math.inf  # a divergent integral (e.g. Pearson with a too-narrow Q)
            return float(np.sum(two))  # propagate -inf / nan
        err = np.abs(two - whole)
        tol = max(atol, rtol * scale) * (b - a) / length
        # a panel narrower than 1e-12 of the range holds at most a jump/kink: accept it
        ok = (err <= tol) | (b - a < 1e-12 * length)
        last = round_ == max_rounds - 1 or int((~ok).sum()) > max_panels // 2
        done = ok | last
        if last and not np.all(ok):
            logger.warning(
                "adaptive quadrature stopped refining %d panels (worst panel error %.2e); "
                "is the integrand noisy, e.g. evaluated in float32?", int((~ok).sum()), float(err.max())
            )
        total += float(two[done].sum())
        a_left, b_left = a[~done], b[~done]
        if a_left.size == 0:
            break
        mid_left = (a_left + b_left) / 2.0
        a = np.concatenate([a_left, mid_left])
        b = np.concatenate([mid_left, b_left])
        scale = max(scale, abs(total))
    return total


def _auto_bounds(dists: Sequence[Any], k: float = 12.0) -> tuple[float, float]:
    los, his = [], []
    for dist in dists:
        try:
            mean = float(torch.as_tensor(dist.mean, dtype=torch.float64).reshape(()))
            std = float(torch.as_tensor(dist.stddev, dtype=torch.float64).reshape(()))
        except Exception as err:  # torch.distributions raise several kinds for an undefined mean/stddev
            raise ValueError(
                f"cannot choose integration bounds for {type(dist).__name__} (no scalar mean/stddev); "
                "pass lo and hi"
            ) from err
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"{type(dist).__name__} has mean={mean}, stddev={std}; pass lo and hi")
        los.append(mean - k * std)
        his.append(mean + k * std)
    return min(los), max(his)


def _log_prob64(dist: Any, x: Tensor) -> Tensor:
    return dist.log_prob(x).to(torch.float64)


def _exact_p_f_over_u(div: FDivergence) -> Callable[[Tensor, Tensor, Tensor], Tensor] | None:
    """``(lp, lq, t) -> p f(u)/u`` for ``u = p/q > 1`` (``t = log u``), written as sums of exponentials
    of log-quantities so that it stays exact when ``u = e^t`` is far beyond float range; ``None`` for
    a divergence without such a form."""
    e = torch.exp
    forms: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
        "kl": lambda lp, lq, t: e(lp) * t,
        "reverse_kl": lambda lp, lq, t: -t * e(lq),
        "pearson": lambda lp, lq, t: e(lp + t) - 2.0 * e(lp) + e(lq),
        "neyman": lambda lp, lq, t: e(lp) * (1.0 - e(-t)) ** 2,
        "squared_hellinger": lambda lp, lq, t: e(lp) * (1.0 - e(-0.5 * t)) ** 2,
        "jeffrey": lambda lp, lq, t: (e(lp) - e(lq)) * t,
        "jensen_shannon": lambda lp, lq, t: e(lp) * t - (e(lp) + e(lq)) * (_softplus(t) - math.log(2.0)),
        "gan": lambda lp, lq, t: e(lp) * t - (e(lp) + e(lq)) * _softplus(t),
        "total_variation": lambda lp, lq, t: 0.5 * (e(lp) - e(lq)).abs(),
    }
    if div.name == "alpha" and div.alpha is not None:
        a = div.alpha
        return lambda lp, lq, t: (e(lp + (a - 1.0) * t) - e(lq) - a * (e(lp) - e(lq))) / (a * (a - 1.0))
    return forms.get(div.name)


def perspective(
    f: Callable[[Tensor], Tensor],
    lp: Tensor,
    lq: Tensor,
    p_f_over_u: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """``q f(p/q)`` from log-densities ``lp``, ``lq``: ``q f(u)`` where ``u = p/q <= 1`` and
    ``p f(u)/u`` where ``u > 1``, so a density that underflows in a tail gives no ``0 * inf``.

    ``u`` is formed from the log-ratio clamped to ``[-700, 700]``; for an ``f`` that grows faster than
    linearly pass ``p_f_over_u(t)``, the exact ``p f(u)/u`` as a function of ``t = log u >= 0``, which
    is then used where ``u > 1`` (so log-ratios beyond float range keep their exact value).
    """
    both_zero = torch.isneginf(lp) & torch.isneginf(lq)
    lr_raw = torch.nan_to_num(lp - lq, nan=0.0)
    lr = lr_raw.clamp(-700.0, 700.0)
    fu = f(torch.exp(lr))
    below = torch.exp(lq) * fu
    above = torch.exp(lp - lr) * fu if p_f_over_u is None else p_f_over_u(lr_raw.clamp(min=0.0))
    val = torch.where(lr <= 0, below, above)
    return torch.where(both_zero, torch.zeros_like(val), val)


def _perspective(div: FDivergence, lp: Tensor, lq: Tensor) -> Tensor:
    """:func:`perspective` for a divergence of this module, with its exact log-space form."""
    exact = _exact_p_f_over_u(div)
    return perspective(div.f, lp, lq, None if exact is None else (lambda t: exact(lp, lq, t)))


def quad_expectation(
    fn: Callable[[Tensor], Tensor],
    p: Any,
    lo: float | None = None,
    hi: float | None = None,
    rtol: float = 1e-11,
) -> float:
    r"""``E_p[fn(X)] = \int p(x) fn(x) dx`` for a 1-D ``p`` with ``.log_prob``, by adaptive quadrature.

    ``fn`` maps a float64 tensor of points to a tensor of values. ``lo``/``hi`` default to
    ``mean -/+ 12 stddev`` of ``p``. Pass a looser ``rtol`` (e.g. ``1e-7``) when ``fn`` is computed
    in float32, such as a trained network: its rounding noise cannot be integrated to 1e-11.
    """
    if lo is None or hi is None:
        auto = _auto_bounds([p])
        lo = auto[0] if lo is None else lo
        hi = auto[1] if hi is None else hi

    def integrand(x: Tensor) -> Tensor:
        return torch.exp(_log_prob64(p, x)) * fn(x).to(torch.float64)

    return _adaptive_integrate(integrand, float(lo), float(hi), rtol=rtol)


def quad_divergence(
    div: str | FDivergence,
    p: Any,
    q: Any,
    lo: float | None = None,
    hi: float | None = None,
    **options: Any,
) -> float:
    r"""``D_f(P||Q) = \int q f(p/q) dx`` between 1-D densities by adaptive Gauss--Legendre quadrature.

    ``p``, ``q``: objects with ``.log_prob(Tensor) -> Tensor`` (``torch.distributions``,
    :func:`gan_lib.toy.mixture_1d`). The integrand is built from log-densities (``q f(u)`` for
    ``u = p/q <= 1``, ``p f(u)/u`` above) so neither density's underflow spoils it. Without bounds
    the range is ``[min mean - 12 std, max mean + 12 std]`` of the two, widened while the
    integrand is not negligible at its ends (slowly decaying ratios, e.g. Pearson). Relative
    accuracy about 1e-10 on smooth densities; Q must be positive wherever P is.
    """
    d = _resolve(div, **options)

    def integrand(x: Tensor) -> Tensor:
        return _perspective(d, _log_prob64(p, x), _log_prob64(q, x))

    if lo is not None and hi is not None:
        return _adaptive_integrate(integrand, float(lo), float(hi))
    a, b = _auto_bounds([p, q])
    a = a if lo is None else float(lo)
    b = b if hi is None else float(hi)
    value = _adaptive_integrate(integrand, a, b)
    for _ in range(20):
        ends = integrand(torch.tensor([a, b], dtype=torch.float64)).abs()
        width = b - a
        need_lo = lo is None and float(ends[0]) * width > 1e-13 * max(abs(value), 1e-300)
        need_hi = hi is None and float(ends[1]) * width > 1e-13 * max(abs(value), 1e-300)
        if not (need_lo or need_hi) or not math.isfinite(value):
            break
        a = a - 0.5 * width if need_lo else a
        b = b + 0.5 * width if need_hi else b
        value = _adaptive_integrate(integrand, a, b)
    return value


def jsd(p: Any, q: Any, lo: float | None = None, hi: float | None = None) -> float:
    r"""Jensen--Shannon divergence in nats, ``JS = ½ KL(P||M) + ½ KL(Q||M)``, ``M = (P+Q)/2``.

    Computed by quadrature as ``½ D_f`` with the table's JS ``f`` (``lin1991divergence``).
    """
    return 0.5 * quad_divergence("jensen_shannon", p, q, lo, hi)


def mc_divergence(
    div: str | FDivergence,
    p: Any,
    q: Any,
    n: int,
    generator: torch.Generator | int | None = None,
    **options: Any,
) -> tuple[float, float]:
    r"""Monte Carlo ``D_f(P||Q) ≈ mean_i f(exp(log p(x_i) - log q(x_i)))`` with ``x_i ~ Q``.

    Needs ``q.sample`` and both ``log_prob``; any dimension. Returns ``(estimate, standard_error)``
    with the standard error ``std / sqrt(n)``. ``generator`` (a ``torch.Generator`` or an int
    seed) makes the draw reproducible without touching the global RNG.
    """
    d = _resolve(div, **options)
    if int(n) < 2:
        raise ValueError(f"n={n} must be >= 2")
    n = int(n)
    if generator is None:
        x = q.sample((n,))
    else:
        if isinstance(generator, int):
            seed = generator
        else:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x = q.sample((n,))
    with torch.no_grad():
        lr = _log_prob64(p, x) - _log_prob64(q, x)
        vals = d.f(torch.exp(lr))
    est = float(vals.mean())
    se = float(vals.std(unbiased=True)) / math.sqrt(n)
    return est, se
