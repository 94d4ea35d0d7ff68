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
from typing import Any, Callable

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
    "SOFTPLUS_EXACT_THRESHOLD",
    "exact_softplus",
    "log_softplus",
    "inverse_softplus",
    "alpha_f_parts",
    "alpha_f_of_log",
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


#: ``F.softplus`` returns ``x`` itself above its ``threshold`` (20 by default), off by
#: ``log1p(e^{-x}) < e^{-x}``: about 2e-9 at 20, invisible in float32 (half an ulp of 20 is 1e-6)
#: but not in float64 (half an ulp is 1.8e-15). Above 40 the error ``e^{-40} = 4e-18`` is below
#: half an ulp of ``x`` in float64 too, and ``log1p(e^x)`` up to 40 neither overflows nor loses digits.
SOFTPLUS_EXACT_THRESHOLD: float = 40.0


def exact_softplus(x: Tensor) -> Tensor:
    """Softplus ``log(1 + e^x)`` correct to the last digit in float64 as in float32.

    One ``F.softplus`` kernel with its threshold raised to :data:`SOFTPLUS_EXACT_THRESHOLD` (the
    default threshold, 20, returns ``x`` itself and is off by ``e^{-x}``, visible in float64).
    """
    return F.softplus(x, beta=1.0, threshold=SOFTPLUS_EXACT_THRESHOLD)


@lru_cache(maxsize=None)
def _log_softplus_floor(dtype: torch.dtype) -> float:
    # Below the floor L, log softplus(x) = x - e^x/2 + O(e^{2x}) is taken to be x: off by e^L/2,
    # below half an ulp of |x| >= |L| when e^L/2 < eps |L| / 2, i.e. L = -40 in float64 and
    # L = -17 in float32 (e^-17/2 = 2e-8 < 17 * 6e-8). The floor is also kept as high as that allows,
    # because above it the backward pass divides by softplus(x) >= e^L: with the f-GAN budget of
    # e^70 on the upstream gradient, e^70 / e^-17 stays finite in float32. float16: softplus(L) must
    # be a normal float16, so L = log(tiny) + 2 = -7.7 (still exact to its eps).
    if dtype == torch.float64:
        return -40.0
    return max(-17.0, math.log(torch.finfo(dtype).tiny) + 2.0)


def log_softplus(x: Tensor) -> Tensor:
    r"""``log(softplus(x)) = log(log(1 + e^x))`` without underflow for very negative ``x``.

    With the floor ``L`` (-40 in float64, -17 in float32 and bfloat16, -7.7 in float16):
    ``log(softplus(max(x, L)))`` is exact for ``x >= L``, where softplus is a normal float, and
    ``log softplus(x) = x - e^x/2 + O(e^{2x})`` is ``x`` itself to within half an ulp below it;
    since ``log softplus(x) < x`` everywhere, ``min(x, log softplus(max(x, L)))`` picks the right
    one. Four elementwise ops; finite gradients everywhere (exactly 1 below ``L``, and at most
    ``e^{-L}`` times the upstream gradient above it).
    """
    floor = _log_softplus_floor(x.dtype)
    return torch.minimum(x, torch.log(exact_softplus(x.clamp(min=floor))))


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


def _identity(v: Tensor) -> Tensor:
    return v


#: Output activations shared by several divergences: ``g_f``, its inverse, its LaTeX, and the domain
#: of ``f^*`` it maps onto (``dom_tex``, ``dom_star``).
_IDENTITY_ACTIVATION: dict[str, Any] = dict(
    activation=_identity,
    activation_inverse=_identity,
    activation_tex=r"v",
    dom_tex=r"\mathbb{R}",
    dom_star=(-_INF, _INF),
)
_ONE_MINUS_EXP_ACTIVATION: dict[str, Any] = dict(
    activation=lambda v: -torch.expm1(-v),
    activation_inverse=lambda t: -torch.log1p(-t),
    activation_tex=r"1-e^{-v}",
    dom_tex=r"t<1",
    dom_star=(-_INF, 1.0),
)


def _jeffrey_f_star(t: Tensor) -> Tensor:
    # f*(t) = w + 1/w + t - 2 with w = W(e^{1-t}) = omega(1-t); 1/w = exp(w - (1-t)) since log w = x - w.
    x = 1.0 - t
    w = wright_omega(x)
    return w + torch.exp(w - x) + t - 2.0


def _gan_f(u: Tensor) -> Tensor:
    # u log u - (u+1) log(u+1) = -u log1p(1/u) - log1p(u): no cancellation for large u
    pos = u > 0
    u_safe = torch.where(pos, u, torch.ones_like(u))
    head = torch.where(pos, -u_safe * torch.log1p(1.0 / u_safe), torch.zeros_like(u))
    return head - torch.log1p(u)


_B = LOG_SAFE_BUDGET

#: The divergences without options, by registry key, in the order of the book's table.
_FIXED: dict[str, FDivergence] = {
    d.name: d
    for d in (
        FDivergence(
            name="kl",
            label="Kullback–Leibler",
            f=lambda u: torch.xlogy(u, u),
            f_star=lambda t: torch.exp(t - 1.0),
            conjugate_of_activation=lambda v: torch.exp(v - 1.0),
            t_star=lambda u: 1.0 + torch.log(u),
            f_prime_1=1.0,
            f_tex=r"u\log u",
            f_star_tex=r"e^{t-1}",
            t_star_tex=r"1+\log u",
            citation="nowozin2016fgan",
            safe_logit_range=(-_INF, _B + 1.0),
            f_prime_inverse=lambda t: torch.exp(t - 1.0),
            **_IDENTITY_ACTIVATION,
        ),
        FDivergence(
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
            safe_logit_range=(-_B, _INF),
            dom_star=(-_INF, 0.0),
            activation_inverse=lambda t: -torch.log(-t),
            f_prime_inverse=lambda t: -1.0 / t,
        ),
        FDivergence(
            name="pearson",
            label="Pearson χ²",
            f=lambda u: (u - 1.0) ** 2,
            f_star=lambda t: 0.25 * t * t + t,
            conjugate_of_activation=lambda v: 0.25 * v * v + v,
            t_star=lambda u: 2.0 * (u - 1.0),
            f_prime_1=0.0,
            f_tex=r"(u-1)^2",
            f_star_tex=r"\tfrac14 t^2+t",
            t_star_tex=r"2(u-1)",
            citation="nowozin2016fgan",
            safe_logit_range=None,
            f_prime_inverse=lambda t: 1.0 + 0.5 * t,
            **_IDENTITY_ACTIVATION,
        ),
        FDivergence(
            name="neyman",
            label="Neyman χ²",
            f=lambda u: (1.0 - u) ** 2 / u,
            f_star=lambda t: 2.0 - 2.0 * torch.sqrt(1.0 - t),
            conjugate_of_activation=lambda v: 2.0 - 2.0 * torch.exp(-0.5 * v),
            t_star=lambda u: 1.0 - u.pow(-2),
            f_prime_1=0.0,
            f_tex=r"(1-u)^2/u",
            f_star_tex=r"2-2\sqrt{1-t}",
            t_star_tex=r"1-u^{-2}",
            citation="nowozin2016fgan",
            safe_logit_range=(-_B, _INF),
            f_prime_inverse=lambda t: torch.rsqrt(1.0 - t),
            **_ONE_MINUS_EXP_ACTIVATION,
        ),
        FDivergence(
            name="squared_hellinger",
            label="squared Hellinger",
            f=lambda u: (torch.sqrt(u) - 1.0) ** 2,
            f_star=lambda t: t / (1.0 - t),
            conjugate_of_activation=lambda v: torch.expm1(v),
            t_star=lambda u: 1.0 - torch.rsqrt(u),
            f_prime_1=0.0,
            f_tex=r"(\sqrt{u}-1)^2",
            f_star_tex=r"t/(1-t)",
            t_star_tex=r"1-u^{-1/2}",
            citation="nowozin2016fgan",
            safe_logit_range=(-_B, _B),
            f_prime_inverse=lambda t: (1.0 - t).pow(-2),
            **_ONE_MINUS_EXP_ACTIVATION,
        ),
        FDivergence(
            name="jeffrey",
            label="Jeffrey",
            f=lambda u: (u - 1.0) * torch.log(u),
            f_star=_jeffrey_f_star,
            conjugate_of_activation=_jeffrey_f_star,
            t_star=lambda u: 1.0 + torch.log(u) - 1.0 / u,
            f_prime_1=0.0,
            f_tex=r"(u-1)\log u",
            f_star_tex=r"W(e^{1-t})+1/W(e^{1-t})+t-2",
            t_star_tex=r"1+\log u-1/u",
            citation="nowozin2016fgan",
            safe_logit_range=(-_INF, _B),  # 1/W(e^{1-v}) ~ e^{v-1}
            f_prime_inverse=lambda t: torch.exp(wright_omega(1.0 - t) - (1.0 - t)),
            **_IDENTITY_ACTIVATION,
        ),
        FDivergence(
            name="jensen_shannon",
            label="Jensen–Shannon (2·JSD)",
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
        ),
        FDivergence(
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
        ),
        FDivergence(
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
        ),
    )
}


def alpha_f_parts(l: Tensor, alpha: float) -> tuple[Tensor, float]:
    r"""``(n, k)`` with ``k * n`` the alpha-divergence's
    ``f(u) = (u^\alpha - 1 - \alpha(u - 1)) / (\alpha(\alpha - 1))`` at ``u = e^l``, elementwise, exact as
    ``\alpha \to 0`` and as ``\alpha \to 1``.

    The constant factor ``k`` comes apart so that a mean of ``f`` can apply it once, after the
    reduction (:func:`alpha_f_of_log` multiplies it in). Written as printed, the numerator cancels
    to ``O(\alpha - 1)`` near ``\alpha = 1`` and rounding is amplified by ``1/|\alpha - 1|`` (float32
    lost half its digits at ``\alpha = 1 + 10^{-7}``). Instead:

    * ``\alpha \le 1/2``: ``n = \mathrm{expm1}(\alpha l) - \alpha\,\mathrm{expm1}(l)``,
      ``k = 1/(\alpha(\alpha - 1))``; both terms of ``n`` are ``O(\alpha)``, nothing cancels as
      ``\alpha \to 0``.
    * ``\alpha > 1/2``: with ``b = |\alpha - 1|`` and ``m = \min(\alpha, 1)``,
      ``(e^{\alpha l} - e^{l})/(\alpha - 1) = e^{m l}\,\mathrm{expm1}(b l)/b``, so
      ``n = e^{m l}\,\mathrm{expm1}(b l) - b\,\mathrm{expm1}(l)``, ``k = 1/(\alpha b)``: both terms are
      ``O(b)``, and ``\mathrm{expm1}(b l)/b \to l`` as ``b \to 0`` (the KL limit).

    Where the value overflows it is ``+inf``, never ``inf - inf``: of the two terms, the one that
    overflows second is capped at the largest finite float. At ``l = -\infty`` it is
    ``f(0) = 1/\alpha`` (``+inf`` for ``\alpha < 0``).
    """
    a = float(alpha)
    big = torch.finfo(l.dtype).max
    if a <= 0.5:
        head = torch.expm1(a * l)
        if a > 0.0:  # l -> +inf: alpha expm1(l) overflows first; keep expm1(alpha l) finite
            head = head.clamp(max=big)
        return torch.sub(head, torch.expm1(l), alpha=a), 1.0 / (a * (a - 1.0))
    b = abs(a - 1.0)
    lead = torch.exp(l if a > 1.0 else a * l)
    return torch.sub(lead * torch.expm1(b * l), torch.expm1(l).clamp(max=big), alpha=b), 1.0 / (a * b)


def alpha_f_of_log(l: Tensor, alpha: float) -> Tensor:
    r"""The alpha-divergence's ``f(e^l)``, elementwise, exact as ``\alpha \to 0`` and ``\alpha \to 1``
    (:func:`alpha_f_parts`)."""
    n, k = alpha_f_parts(l, alpha)
    return n * k


@lru_cache(maxsize=None)
def _rounded(x: float, dtype: torch.dtype) -> float:
    """``x`` rounded to ``dtype`` (as a Python float)."""
    return float(torch.tensor(x, dtype=dtype))


@lru_cache(maxsize=64)
def _alpha(alpha: float) -> FDivergence:
    a = float(alpha)
    c = a / (a - 1.0)  # exponent of the conjugate
    hi_t = 1.0 / (1.0 - a)  # 1/(1 - alpha): edge of dom f* (alpha < 1) / kink of f* (alpha > 1)
    b = LOG_SAFE_BUDGET

    def f(u: Tensor) -> Tensor:
        return alpha_f_of_log(torch.log(u), a)

    def t_star(u: Tensor) -> Tensor:
        return torch.expm1((a - 1.0) * torch.log(u)) / (a - 1.0)

    def f_prime_inverse(t: Tensor) -> Tensor:
        return torch.exp(torch.log1p((a - 1.0) * t) / (a - 1.0))

    # what both branches share: f, its derivative and the derivative's inverse
    common: dict[str, Any] = dict(
        name="alpha",
        label=f"α-divergence (α = {a:g})",
        f=f,
        t_star=t_star,
        f_prime_1=0.0,
        f_tex=r"\frac{u^{\alpha}-1-\alpha(u-1)}{\alpha(\alpha-1)}",
        t_star_tex=r"\frac{u^{\alpha-1}-1}{\alpha-1}",
        citation="nowozin2016fgan",
        f_prime_inverse=f_prime_inverse,
        alpha=a,
    )

    def power_of_base(t: Tensor, lowest: float) -> Tensor:
        # (t(a-1) + 1)^c - 1 = expm1(c log1p((a-1) t)): exact as a -> 1 (c -> inf, (a-1) t -> 0),
        # where the printed (t(a-1) + 1)^c amplifies the rounding of t(a-1) + 1 by |c|.
        return torch.expm1(c * torch.log1p(((a - 1.0) * t).clamp(min=lowest)))

    if a < 1.0:

        def activation(v: Tensor) -> Tensor:
            # 1/(1-a) - softplus(-v): near a = 1 both are close to 1/(1-a), large; with 1/(1-a)
            # split into its value in v's dtype plus the remainder the subtraction is exact.
            k_hi = _rounded(hi_t, v.dtype)
            t = k_hi - exact_softplus(-v)
            return t if k_hi == hi_t else t + (hi_t - k_hi)

        def f_star(t: Tensor) -> Tensor:
            ok = (a - 1.0) * t > -1.0  # t < 1/(1 - a), the domain
            val = power_of_base(torch.where(ok, t, torch.zeros_like(t)), -1.0) / a
            return torch.where(ok, val, torch.full_like(t, math.inf))

        near_one = c < -9.0  # alpha > 0.9
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

        def conj(v: Tensor) -> Tensor:
            # base = t(a-1) + 1 = (1-a) softplus(-v) for t = g(v); f* = expm1(c log base) / a. The
            # logarithm is taken as log(1-a) + log softplus(-v): nothing underflows, and the
            # gradient c e^E sigmoid(-v)/softplus(-v) never forms a huge power of a tiny softplus
            # (as (.)^c's own derivative c (.)^(c-1) would).
            log_base = math.log(1.0 - a) + log_softplus(-v)
            if near_one:
                # |c| > 9: the two logarithms nearly cancel where the value is finite (base ~ 1)
                # and |c| amplifies their rounding; there log1p((a-1) t) of the activation t
                # (carrying only the rounding of the logit itself) is exact.
                x = ((a - 1.0) * activation(v)).clamp(min=-0.9)
                log_base = torch.where(log_base > -1.0, torch.log1p(x), log_base)
            return torch.expm1(c * log_base) / a

        return FDivergence(
            f_star=f_star,
            activation=activation,
            conjugate_of_activation=conj,
            f_star_tex=r"\tfrac1\alpha\big(t(\alpha-1)+1\big)^{\alpha/(\alpha-1)}-\tfrac1\alpha",
            activation_tex=r"\tfrac{1}{1-\alpha}-\log(1+e^{-v})",
            dom_tex=r"t<\tfrac{1}{1-\alpha}",
            safe_logit_range=safe,
            dom_star=(-_INF, hi_t),
            activation_inverse=lambda t: _neg_inv_softplus_of(hi_t - t),
            **common,
        )

    def f_star_exact(t: Tensor) -> Tensor:
        # Exact conjugate of f on u >= 0: -1/a below the kink t = 1/(1-a), where (a-1) t = -1. The
        # clamp stops one float above -1 (log1p(-1) = -inf would make the kink's gradient 0 * inf).
        lowest = -1.0 + 0.5 * torch.finfo(t.dtype).eps
        return power_of_base(t, lowest) / a

    # (base)^c <= e^budget with base = (a-1) v + 1; derivative is a^{-1} c (a-1) base^{c-1} <= base^c.
    v_hi = math.expm1(b / c) / (a - 1.0)
    safe_hi: tuple[float, float] | None = None if v_hi > 1e4 else (-_INF, v_hi)
    return FDivergence(
        f_star=f_star_exact,
        conjugate_of_activation=f_star_exact,
        f_star_tex=(
            r"\tfrac1\alpha\big(\max(t(\alpha-1)+1,0)\big)^{\alpha/(\alpha-1)}-\tfrac1\alpha"
        ),
        safe_logit_range=safe_hi,
        **_IDENTITY_ACTIVATION,
        **common,
    )


#: Registry keys, in the order of the book's table.
DIVERGENCES: tuple[str, ...] = tuple(_FIXED) + ("alpha",)


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
    return _FIXED[name]


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
    for name, v in (("v_real", v_real), ("v_fake", v_fake)):
        if not isinstance(v, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of raw critic outputs; got {type(v).__name__}")
        if v.numel() == 0:
            raise ValueError(
                f"{name} is empty (shape {tuple(v.shape)}); the bound is a mean over samples and needs at least one"
            )
    d = resolve(div)
    return d.activation(v_real).mean() - d.conjugate_of_activation(v_fake).mean()
