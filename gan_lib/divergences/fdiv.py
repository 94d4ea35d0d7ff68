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

Naming caveats (Nowozin et al. 2016, Tables 1 and 2, read against their Appendix):

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

Numerical tools that check these objects live beside this module: closed forms between Gaussians
(:mod:`.gaussian`), quadrature and Monte Carlo (:mod:`.quadrature`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from gan_lib.validation import alpha_number

__all__ = [
    "FDivergence",
    "DIVERGENCES",
    "LOG_SAFE_BUDGET",
    "get_divergence",
    "resolve",
    "wright_omega",
    "exact_softplus",
    "log_softplus",
    "inverse_softplus",
    "variational_bound",
]

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


def exact_softplus(x: Tensor) -> Tensor:
    """Softplus ``log(1 + e^x)`` exactly in float64 (``F.softplus`` returns ``x`` itself above 20)."""
    return torch.logaddexp(x, torch.zeros_like(x))


def log_softplus(x: Tensor) -> Tensor:
    r"""``log(softplus(x)) = log(log(1 + e^x))`` without underflow for very negative ``x``.

    For ``x < 0`` we write ``softplus(x) = e^x h(e^x)`` with ``h(r) = log1p(r)/r`` so that
    ``log softplus(x) = x + log h(e^x)``; ``h`` is replaced by its series ``1 - r/2 + r^2/3 - r^3/4``
    for ``r < 1e-4``. Gradients are finite everywhere.
    """
    x_pos = x.clamp(min=0.0)
    x_neg = x.clamp(max=0.0)
    upper = torch.log(exact_softplus(x_pos))  # softplus >= log 2 here
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
    w = torch.where(xs > 1.0, xs - torch.log(xs.clamp(min=1.0)), exact_softplus(xs))
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
        activation=lambda v: _LOG2 - exact_softplus(-v),
        conjugate_of_activation=lambda v: exact_softplus(v) - _LOG2,
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
        activation=lambda v: -exact_softplus(-v),
        conjugate_of_activation=lambda v: exact_softplus(v),
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
            activation=lambda v: hi_t - exact_softplus(-v),
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
            a = alpha_number(options["alpha"])
        except ValueError as err:
            raise ValueError(f"alpha={options['alpha']!r} not allowed: {err}") from None
        return _alpha(a)
    if options:
        raise ValueError(f"divergence {name!r} takes no options; got {sorted(options)}")
    return _cached(name)


def resolve(div: str | FDivergence, **options: Any) -> FDivergence:
    """An :class:`FDivergence` given as itself or by registry name (with its options)."""
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
    d = resolve(div)
    return d.activation(v_real).mean() - d.conjugate_of_activation(v_fake).mean()
