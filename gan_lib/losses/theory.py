r"""What each registered loss does at its optimum, as data: the source of the book's loss reference page.

For every name of :func:`gan_lib.losses.names` (at its default options) :data:`THEORY` holds a
:class:`LossTheory`:

* the optimal discriminator ``v^*(x)`` in terms of the densities ``p`` (data ``P``) and ``q``
  (model ``Q``): TeX, and a numeric form (:attr:`LossTheory.critic`) built from ``P`` and ``Q``;
* the discriminator loss at that optimum and the generator loss there (:class:`Quantity`: TeX and a
  number computed from :mod:`gan_lib.divergences` or from a direct integral of the stated
  expression, never from the loss code);
* the divergence the generator's gradient follows when the discriminator is frozen at its optimum
  (TeX, a number, and ``\tilde f`` where it is an f-divergence);
* the limits of the normalised ``\tilde f`` that make it mode seeking or mode covering
  (:class:`Limits`);
* the chapters that treat the loss and the public functions that implement it.

Where a quantity has no closed form that we know of, its :class:`Quantity` has no TeX and a
``note`` saying so; the page prints a dash. Nothing here is asserted by itself: :func:`verify`
computes every stated number two ways, for a pair of 1-D distributions, and returns the pairs of
numbers with their tolerances (:data:`TOLERANCES`), which ``tests/test_loss_theory.py`` asserts
and the reference page shows as check callouts.

How the numbers are computed (``P``, ``Q``: 1-D distributions with ``log_prob``, ``cdf``, ``mean``
and ``stddev``, e.g. ``torch.distributions.Normal`` in float64):

* :func:`population_discriminator` / :func:`population_generator` integrate the *registered
  loss's own* per-sample terms (``reduction="none"``) against ``p`` and ``q`` by adaptive
  Gauss--Legendre quadrature, with panel edges at the points where ``p = q`` and where
  ``F_P = F_Q`` (where the optimal critics of the hinge, total-variation and Wasserstein losses
  jump or kink); :func:`pair_population` does the same on a tensor-product grid for the paired
  ``rgan``.
* The frozen-discriminator gradient is the central difference, in the location (and log-scale)
  of a Gaussian ``Q``, of the generator's population loss with ``v^*`` computed at the unshifted
  ``Q``; it is compared with the central difference of the stated divergence. Differencing the
  expectation (rather than differentiating each sample) also covers the piecewise-constant optimal
  critics of ``hinge`` and ``fgan_total_variation``.
* Mode seeking or covering: ``\hat f(u) = \tilde f(u) - \tilde f(1) - \tilde f'(1)(u - 1)`` (the
  same divergence, normalised to ``\hat f \ge 0`` where ``\tilde f`` is convex). ``\hat f(0^+)``
  is the cost per unit of model mass where there is no data, ``\lim_{u\to\infty}\hat f(u)/u`` the
  cost per unit of data mass the model misses; an infinite first limit with a finite second is mode
  seeking, the other way round mode covering (both are affine-invariant, so the finite values are
  those of ``\hat f``).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from gan_lib.divergences import (
    FDivergence,
    LogFunction,
    adaptive_integrate,
    auto_bounds,
    divergence_perspective,
    generator_divergence,
    get_divergence,
    inverse_softplus,
    jsd,
    quad_divergence,
)

from . import registry
from .ipm import chi2_batch_weights, kl_batch_weights

__all__ = [
    "Quantity",
    "Limits",
    "Claim",
    "LossTheory",
    "CheckResult",
    "THEORY",
    "TOLERANCES",
    "theory",
    "module_path",
    "mode_behaviour",
    "normalised_limits",
    "density_crossings",
    "cdf_crossings",
    "integrate",
    "population_discriminator",
    "population_generator",
    "pair_population",
    "shifted",
    "verify",
]

Dist = Any
Critic = Callable[[Tensor], Tensor]
Number = Callable[[Dist, Dist], float]

_LOG2 = math.log(2.0)
_LOG4 = math.log(4.0)
_INF = math.inf


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    r"""A stated quantity: its TeX and its number for 1-D ``P``, ``Q``.

    ``tex`` is empty where there is no closed form (then ``note`` says why, and ``value`` is
    ``None``); ``value(p, q)`` computes the stated expression from :mod:`gan_lib.divergences` or
    by a direct integral, independently of the loss's code. ``note``: a footnote (Markdown).
    """

    tex: str
    value: Optional[Number] = None
    note: str = ""

    @property
    def known(self) -> bool:
        return bool(self.tex)


_NO_CLOSED_FORM = "no closed form that we know of"


def _unknown(note: str) -> Quantity:
    return Quantity("", None, note)


@dataclass(frozen=True)
class Limits:
    r"""``\hat f(0^+)`` and ``\lim_{u\to\infty} \hat f(u)/u`` of the normalised ``\tilde f``
    (values, ``inf`` or ``-inf``, and their TeX)."""

    at_zero: float
    at_zero_tex: str
    at_infinity: float
    at_infinity_tex: str

    @property
    def behaviour(self) -> str:
        return mode_behaviour(self.at_zero, self.at_infinity)


def _lim(value: float, tex: str | None = None) -> tuple[float, str]:
    if tex is None:
        tex = r"\infty" if value == _INF else (r"-\infty" if value == -_INF else f"{value:g}")
    return value, tex


def _limits(zero: tuple[float, str], infinity: tuple[float, str]) -> Limits:
    return Limits(zero[0], zero[1], infinity[0], infinity[1])


def mode_behaviour(at_zero: float, at_infinity: float) -> str:
    r"""Mode seeking / covering from ``\hat f(0^+)`` and ``\lim \hat f(u)/u`` (see the module docstring)."""
    if at_infinity == -_INF or at_zero == -_INF:
        return "unbounded below: no minimum"
    zero, inf = math.isinf(at_zero), math.isinf(at_infinity)
    if zero and not inf:
        return "mode seeking"
    if inf and not zero:
        return "mode covering"
    if zero and inf:
        return "mode seeking and mode covering"
    return "neither: both costs finite"


@dataclass(frozen=True)
class Claim:
    r"""A further claim about a loss (Markdown ``text`` with ``$...$`` math) and how to check it:
    ``check(p, q)`` returns ``(value, reference)``, or ``(value, None)`` for a claim that ``value``
    is positive (a rise, a curvature); ``kind`` selects the tolerance in :data:`TOLERANCES`."""

    text: str
    check: Callable[[Dist, Dist], tuple[float, Optional[float]]]
    kind: str = "value"


@dataclass(frozen=True)
class LossTheory:
    r"""What one registered loss does at its optimum (see the module docstring).

    Attributes:
        name: registry name; ``options`` the options described (the registry's defaults).
        optimum: TeX of ``v^*(x)`` (and ``note``: its caveats).
        critic: ``critic(p, q) -> v^*`` (a function of points ``x``), or ``None``.
        perturb: how :func:`verify` perturbs ``v^*``: ``"bump"`` (``v^* \pm \delta b(x)``),
            ``"clamp"`` (an optimum at ``\pm\infty``: clamp it to ``\pm 3``), ``"lipschitz"``
            (move within the 1-Lipschitz critics: ``(1 - \delta) v^*`` and
            ``(1 - \delta) v^* + \delta\,s\tanh((x - c)/s)``).
        shift_invariant: ``v^* + c`` is optimal for every constant ``c`` (relativistic pairs).
        discriminator_value: the discriminator loss at ``v^*``.
        generator_value: the generator loss at ``v^*``.
        follows: the divergence whose gradient the generator follows with ``v^*`` frozen.
        follows_f: its ``\tilde f`` as a :class:`LogFunction` where it is an f-divergence
            (``\int q \tilde f(p/q)`` equals ``follows``), else ``None``.
        limits: :class:`Limits` of the normalised ``\tilde f``, or ``None``; ``mode_note``: what to
            say instead.
        where: TeX pieces defining the symbols of the two formulas (shown after them).
        chapters: book pages that treat the loss (``notebooks/01_gan_game``, ...).
        functions: dotted names of the functions that implement the two halves.
        claims: further :class:`Claim` s.
    """

    name: str
    options: Mapping[str, Any]
    optimum: Quantity
    critic: Optional[Callable[[Dist, Dist], Critic]]
    discriminator_value: Quantity
    generator_value: Quantity
    follows: Quantity
    follows_f: Optional[LogFunction] = None
    limits: Optional[Limits] = None
    mode_note: str = ""
    perturb: str = "bump"
    shift_invariant: bool = False
    where: tuple[str, ...] = ()
    chapters: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    claims: tuple[Claim, ...] = field(default_factory=tuple)

    @property
    def behaviour(self) -> str:
        """Mode seeking / covering of the followed divergence, or ``""`` where not stated."""
        return self.limits.behaviour if self.limits is not None else ""


# ------------------------------------------------------------------------------------------------
# Numerical helpers: crossings, quadrature, populations
# ------------------------------------------------------------------------------------------------


def _lp(dist: Dist, x: Tensor) -> Tensor:
    return dist.log_prob(x).to(torch.float64)


def _span(*dists: Dist) -> tuple[float, float]:
    # 20 standard deviations: integrands such as p^2/q (Pearson) decay much more slowly than p or q
    return auto_bounds(dists, k=20.0)


def _roots(h: Callable[[Tensor], Tensor], lo: float, hi: float, n: int = 2001, floor: float = 0.0) -> list[float]:
    """Sign changes of ``h`` on ``[lo, hi]``, refined together by 64 bisection steps; values with
    ``|h| <= floor`` are rounding noise and carry no sign."""
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    y = h(x)
    sign = torch.where(y.abs() > floor, torch.sign(y), torch.zeros_like(y))
    idx = torch.nonzero(sign != 0).flatten()
    if idx.numel() < 2:
        return []
    change = (sign[idx[:-1]] * sign[idx[1:]]) < 0
    a, b = x[idx[:-1][change]].clone(), x[idx[1:][change]].clone()
    if a.numel() == 0:
        return []
    sign_a = sign[idx[:-1][change]]
    for _ in range(64):
        m = 0.5 * (a + b)
        same = torch.sign(h(m)) == sign_a
        a, b = torch.where(same, m, a), torch.where(same, b, m)
    return (0.5 * (a + b)).tolist()


def _key(dist: Dist) -> Optional[tuple]:
    """A hashable description of a Gaussian (the only distributions whose crossings are cached)."""
    if isinstance(dist, torch.distributions.Normal) and dist.loc.numel() == 1:
        return (float(dist.loc), float(dist.scale))
    return None


@lru_cache(maxsize=256)
def _cached_crossings(kind: str, p_key: tuple, q_key: tuple) -> tuple[float, ...]:
    p, q = (_normal(*k) for k in (p_key, q_key))
    return tuple(_crossings(kind, p, q))


def _crossings(kind: str, p: Dist, q: Dist) -> list[float]:
    if kind == "density":
        return _roots(lambda x: _lp(p, x) - _lp(q, x), *_span(p, q))
    return _roots(lambda x: p.cdf(x).double() - q.cdf(x).double(), *_span(p, q), floor=1e-13)


def density_crossings(p: Dist, q: Dist) -> list[float]:
    """The points where ``p = q`` (sign changes of ``log p - log q``), in increasing order."""
    keys = (_key(p), _key(q))
    if None in keys:
        return _crossings("density", p, q)
    return list(_cached_crossings("density", *keys))


def cdf_crossings(p: Dist, q: Dist) -> list[float]:
    """The points where ``F_P = F_Q`` away from the tails (where both CDFs are rounding noise)."""
    keys = (_key(p), _key(q))
    if None in keys:
        return _crossings("cdf", p, q)
    return list(_cached_crossings("cdf", *keys))


def integrate(
    fn: Callable[[Tensor], Tensor], dists: Sequence[Dist], edges: Sequence[float] = (), rtol: float = 1e-12
) -> float:
    """``\\int fn(x) dx`` over mean -/+ 20 std of every distribution of ``dists``, by adaptive
    Gauss--Legendre quadrature starting from 64 equal panels plus panel edges at ``edges``."""
    lo, hi = _span(*dists)
    start = set(np.linspace(lo, hi, 65).tolist()) | {float(e) for e in edges if lo < e < hi}
    return adaptive_integrate(fn, edges=sorted(start), rtol=rtol, atol=1e-16)


def _weighted(dist: Dist, x: Tensor, values: Tensor) -> Tensor:
    w = torch.exp(_lp(dist, x))
    return torch.where(w == 0, torch.zeros_like(w), w * values.to(torch.float64))


def _edges(p: Dist, q: Dist) -> list[float]:
    return density_crossings(p, q) + cdf_crossings(p, q)


def population_discriminator(loss: registry.GANLoss, critic: Critic, p: Dist, q: Dist) -> float:
    r"""``\int p\,l_P(v(x)) + q\,l_Q(v(x))\,dx``: the registered discriminator loss of the critic
    ``v`` over the populations (its per-sample terms from ``reduction="none"``, by quadrature)."""

    def integrand(x: Tensor) -> Tensor:
        v = critic(x)
        terms = loss.discriminator(v, v, reduction="none")
        return _weighted(p, x, terms.real) + _weighted(q, x, terms.fake)

    return integrate(integrand, [p, q], _edges(p, q))


def population_generator(
    loss: registry.GANLoss, critic: Critic, q: Dist, edges: Sequence[float] = (), span: Sequence[Dist] = ()
) -> float:
    r"""``\int q\,l_G(v(x))\,dx``: the registered generator loss of the (frozen) critic ``v`` over
    ``Q`` (per-sample terms from ``reduction="none"``, by quadrature); ``edges``: where ``v``
    jumps or kinks; ``span``: further distributions whose range the integral must cover (the
    data's, where ``v`` grows with the density ratio and ``q\,l_G(v)`` has the data's tails)."""

    def integrand(x: Tensor) -> Tensor:
        return _weighted(q, x, loss.generator(critic(x), reduction="none"))

    return integrate(integrand, [q, *span], edges)


def _grid(p: Dist, q: Dist, panels: int = 32, order: int = 15) -> tuple[Tensor, Tensor]:
    """Composite Gauss--Legendre nodes and weights on mean -/+ 20 std of ``p`` and ``q``, with
    panel edges at the density crossings."""
    lo, hi = _span(p, q)
    edges = sorted(set(np.linspace(lo, hi, panels + 1).tolist()) | {c for c in density_crossings(p, q) if lo < c < hi})
    z, w = np.polynomial.legendre.leggauss(order)
    a, b = np.array(edges[:-1]), np.array(edges[1:])
    x = ((a + b) / 2)[:, None] + ((b - a) / 2)[:, None] * z[None, :]
    wx = ((b - a) / 2)[:, None] * w[None, :]
    return torch.from_numpy(x.reshape(-1)), torch.from_numpy(wx.reshape(-1))


def pair_population(
    pair_term: Callable[[Tensor, Tensor], Tensor], critic: Critic, p: Dist, q: Dist, panels: int = 32
) -> float:
    r"""``\iint p(x)\,q(y)\,l(v(x), v(y))\,dx\,dy`` on a tensor-product Gauss--Legendre grid, for a
    paired loss: ``pair_term(v_real, v_fake)`` gets the critic's values at every (real ``x``, fake
    ``y``) pair of the grid, flattened."""
    x, w = _grid(p, q, panels)
    v = critic(x)
    wx, wy = w * torch.exp(_lp(p, x)), w * torch.exp(_lp(q, x))
    vr, vf = torch.meshgrid(v, v, indexing="ij")
    vals = pair_term(vr.reshape(-1), vf.reshape(-1)).reshape(vr.shape).to(torch.float64)
    return float((wx[:, None] * wy[None, :] * vals).sum())


def _pair_integral(fn: Callable[[Tensor, Tensor], Tensor], p: Dist, q: Dist, panels: int = 32) -> float:
    r"""``\iint fn(\log p(x) + \log q(y), \log q(x) + \log p(y))\,dx\,dy``: ``fn`` of the log-densities
    of ``P \otimes Q`` and ``Q \otimes P`` at ``(x, y)``, on the grid of :func:`pair_population`."""
    x, w = _grid(p, q, panels)
    lp, lq = _lp(p, x), _lp(q, x)
    log_a = lp[:, None] + lq[None, :]
    log_b = lq[:, None] + lp[None, :]
    return float((w[:, None] * w[None, :] * fn(log_a, log_b).to(torch.float64)).sum())


def _normal(loc: float, scale: float) -> torch.distributions.Normal:
    return torch.distributions.Normal(torch.tensor(loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64))


def shifted(q: Dist, d_loc: float = 0.0, d_log_scale: float = 0.0) -> torch.distributions.Normal:
    """The Gaussian ``q`` moved by ``d_loc`` and scaled by ``exp(d_log_scale)`` (float64)."""
    return _normal(float(q.loc) + d_loc, float(q.scale) * math.exp(d_log_scale))


class _HalfMixture:
    """``M = (P + Q)/2`` with ``log_prob``, ``mean`` and ``stddev`` (what the quadrature needs)."""

    def __init__(self, p: Dist, q: Dist) -> None:
        self.p, self.q = p, q
        mp, mq = float(p.mean), float(q.mean)
        vp, vq = float(p.stddev) ** 2, float(q.stddev) ** 2
        self.mean = torch.tensor(0.5 * (mp + mq), dtype=torch.float64)
        second = 0.5 * (vp + mp**2 + vq + mq**2)
        self.stddev = torch.tensor(math.sqrt(second - float(self.mean) ** 2), dtype=torch.float64)

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.logaddexp(_lp(self.p, x), _lp(self.q, x)) - _LOG2


# ------------------------------------------------------------------------------------------------
# Named divergences computed independently of the losses
# ------------------------------------------------------------------------------------------------


def _kl_pq(p: Dist, q: Dist) -> float:
    return quad_divergence("kl", p, q)


def _kl_qp(p: Dist, q: Dist) -> float:
    return quad_divergence("reverse_kl", p, q)  # reverse_kl(P, Q) = KL(Q || P)


def _kl_qm(p: Dist, q: Dist) -> float:
    return quad_divergence("reverse_kl", _HalfMixture(p, q), q)  # KL(Q || M)


def _direct(density_fn: Callable[[Tensor, Tensor], Tensor]) -> Number:
    """``\\int g(log p, log q) dx`` for a closed-form integrand in the log-densities."""

    def value(p: Dist, q: Dist) -> float:
        return integrate(lambda x: density_fn(_lp(p, x), _lp(q, x)), [p, q], density_crossings(p, q))

    return value


def _w1(p: Dist, q: Dist) -> float:
    return integrate(lambda x: (p.cdf(x).double() - q.cdf(x).double()).abs(), [p, q], cdf_crossings(p, q))


def _tv(p: Dist, q: Dist) -> float:
    # 1/2 int |p - q|, with panel edges at the kinks (where p = q)
    half_gap = lambda x: 0.5 * (torch.exp(_lp(p, x)) - torch.exp(_lp(q, x))).abs()  # noqa: E731
    return integrate(half_gap, [p, q], density_crossings(p, q))


def _jsd_pairs(p: Dist, q: Dist) -> float:
    """``JSD(P (x) Q, Q (x) P)`` by quadrature on the pair grid."""

    def integrand(la: Tensor, lb: Tensor) -> Tensor:
        lm = torch.logaddexp(la, lb) - _LOG2
        return 0.5 * (torch.exp(la) * (la - lm) + torch.exp(lb) * (lb - lm))

    return _pair_integral(integrand, p, q)


def _kl_pairs_to_mixture(p: Dist, q: Dist) -> float:
    """``KL(P (x) Q || M_2)``, ``M_2 = (P (x) Q + Q (x) P)/2``, by quadrature on the pair grid."""
    return _pair_integral(lambda la, lb: torch.exp(la) * (la - (torch.logaddexp(la, lb) - _LOG2)), p, q)


# ------------------------------------------------------------------------------------------------
# The entries, family by family
# ------------------------------------------------------------------------------------------------

_CH1, _CH2, _CH4 = "notebooks/01_gan_game", "notebooks/02_fgan", "notebooks/04_generator_objectives"
_CH6 = "notebooks/06_fwgan"
_LM = "gan_lib.losses."

_RATIO_CRITIC_TEX = r"v^*(x) = \log\frac{p(x)}{q(x)},\quad D^*(x) = \sigma(v^*(x)) = \frac{p(x)}{p(x)+q(x)}"
_BCE_MIN = Quantity(r"\log 4 - 2\,\mathrm{JSD}(P, Q)", lambda p, q: _LOG4 - 2.0 * jsd(p, q))
_M_TEX = r"M = \tfrac12(P + Q)"


def _ratio_critic(p: Dist, q: Dist) -> Critic:
    return lambda x: _lp(p, x) - _lp(q, x)


def _from_divergence(div: FDivergence) -> LogFunction:
    """``f`` of an :class:`FDivergence` as a :class:`LogFunction` (perspective: the library's exact one)."""
    if div.alpha is not None:
        from gan_lib.divergences import alpha_f_of_log

        a = div.alpha
        at_log: Callable[[Tensor], Tensor] = lambda l: alpha_f_of_log(l, a)  # noqa: E731
    else:
        at_log = lambda l: div.f(torch.exp(l))  # noqa: E731
    return LogFunction(tex=div.f_tex, at_log=at_log, perspective=lambda lp, lq: divergence_perspective(div, lp, lq))


def _standard_family() -> dict[str, LossTheory]:
    gan = get_divergence("gan")
    standard = generator_divergence("standard")
    rkl = get_divergence("reverse_kl")
    bce = _LM + "minimax.bce_discriminator"
    ns_value = Quantity(
        r"\mathrm{KL}(Q\|P) - \mathrm{KL}(Q\|M) + \log 2 = \mathbb{E}_Q\big[\log\big(1 + \tfrac{q}{p}\big)\big],\ " + _M_TEX,
        lambda p, q: _kl_qp(p, q) - _kl_qm(p, q) + _LOG2,
    )
    ns_follows = Quantity(
        r"\mathrm{KL}(Q\|P) - 2\,\mathrm{JSD}(P, Q) + \log 4",
        lambda p, q: _kl_qp(p, q) - 2.0 * jsd(p, q) + _LOG4,
        "the non-saturating generator with the discriminator frozen at its optimum "
        "({cite:t}`arjovsky2017principled`, Theorem 2.5; chapter 1 checks it by quadrature)",
    )
    ns_limits = _limits(_lim(_INF), _lim(1.0 - _LOG2, r"1 - \log 2"))
    common = dict(
        optimum=Quantity(_RATIO_CRITIC_TEX),
        critic=_ratio_critic,
        discriminator_value=_BCE_MIN,
    )
    return {
        "minimax": LossTheory(
            name="minimax",
            options={},
            generator_value=Quantity(
                r"\mathrm{KL}(Q\|M) - \log 2,\ " + _M_TEX, lambda p, q: _kl_qm(p, q) - _LOG2
            ),
            follows=Quantity(
                r"2\,\mathrm{JSD}(P, Q) - \log 4", lambda p, q: 2.0 * jsd(p, q) - _LOG4,
                "the envelope theorem: the discriminator's own change does not move the value of the game "
                "to first order",
            ),
            follows_f=_from_divergence(gan),
            limits=_limits(_lim(_LOG2, r"\log 2"), _lim(_LOG2, r"\log 2")),
            chapters=(_CH1,),
            functions=(bce, _LM + "minimax.minimax_generator"),
            **common,
        ),
        "non_saturating": LossTheory(
            name="non_saturating",
            options={},
            generator_value=ns_value,
            follows=ns_follows,
            follows_f=standard.equivalent,
            limits=ns_limits,
            chapters=(_CH1, _CH4),
            functions=(bce, _LM + "minimax.non_saturating_generator"),
            **common,
        ),
        "huszar_kl": LossTheory(
            name="huszar_kl",
            options={},
            generator_value=Quantity(r"\mathrm{KL}(Q\|P)", _kl_qp),
            follows=Quantity(r"\mathrm{KL}(Q\|P)", _kl_qp),
            follows_f=_from_divergence(rkl),
            limits=_limits(_lim(_INF), _lim(1.0)),
            chapters=(_CH1, _CH4),
            functions=(bce, _LM + "poole.reverse_kl_generator"),
            **common,
        ),
        "poole_standard": LossTheory(
            name="poole_standard",
            options={},
            generator_value=ns_value,
            follows=ns_follows,
            follows_f=standard.equivalent,
            limits=ns_limits,
            chapters=(_CH4,),
            functions=(bce, _LM + "poole.poole_standard_generator"),
            **common,
        ),
        "poole_rkl": LossTheory(
            name="poole_rkl",
            options={},
            generator_value=Quantity(r"\mathrm{KL}(Q\|P)", _kl_qp),
            follows=Quantity(r"\mathrm{KL}(Q\|P)", _kl_qp),
            follows_f=_from_divergence(rkl),
            limits=_limits(_lim(_INF), _lim(1.0)),
            chapters=(_CH4,),
            functions=(bce, _LM + "poole.reverse_kl_generator"),
            **common,
        ),
    }


def _poole_family(options: Mapping[str, Mapping[str, Any]]) -> dict[str, LossTheory]:
    bce = _LM + "minimax.bce_discriminator"
    common = dict(optimum=Quantity(_RATIO_CRITIC_TEX), critic=_ratio_critic, discriminator_value=_BCE_MIN)
    kl = generator_divergence("kl")
    a = float(options["poole_alpha"]["alpha"])
    ga = generator_divergence("alpha", alpha=a)
    alpha_div = get_divergence("alpha", alpha=a)
    envelope_of = options["poole_envelope"]["divergence"]
    if envelope_of != "standard":
        raise ValueError("the theory of poole_envelope is written for its default divergence='standard'")
    standard = generator_divergence("standard")
    a_tex = f"{a:g}"
    return {
        "poole_kl": LossTheory(
            name="poole_kl",
            options=dict(options["poole_kl"]),
            generator_value=Quantity(r"\mathrm{KL}(P\|Q)", _kl_pq),
            follows=Quantity(
                r"-\tfrac12\,\mathbb{E}_P\big[(\log\tfrac{p}{q})^2\big]",
                _direct(lambda lp, lq: -0.5 * torch.exp(lp) * (lp - lq) ** 2),
                "chapter 4 derives it: $\\tilde f'' = -f_G'(u)/u$; the objective falls without bound as $Q$ "
                "shrinks onto part of the data",
            ),
            follows_f=kl.equivalent,
            limits=_limits(_lim(0.0, "0"), _lim(-_INF)),
            chapters=(_CH4,),
            functions=(bce, _LM + "poole.poole_kl_generator"),
            **common,
        ),
        "poole_alpha": LossTheory(
            name="poole_alpha",
            options=dict(options["poole_alpha"]),
            generator_value=Quantity(
                rf"D_{{\alpha}}(P\|Q),\ \alpha = {a_tex}", lambda p, q: quad_divergence(alpha_div, p, q)
            ),
            follows=Quantity(
                rf"\frac{{\mathrm{{KL}}(P\|Q) - D_\alpha(P\|Q)}}{{\alpha - 1}},\ \alpha = {a_tex}",
                lambda p, q: (_kl_pq(p, q) - quad_divergence(alpha_div, p, q)) / (a - 1.0),
                "chapter 4 derives it: $\\tilde f'' = -f_G'(u)/u$; unbounded below, like GAN-KL's",
            ),
            follows_f=ga.equivalent,
            limits=_limits(
                _lim(1.0 / a, r"1/\alpha") if a > 0 else _lim(_INF),
                _lim(-_INF),
            ),
            chapters=(_CH4,),
            functions=(bce, _LM + "poole.poole_alpha_generator"),
            **common,
        ),
        "poole_envelope": LossTheory(
            name="poole_envelope",
            options=dict(options["poole_envelope"]),
            generator_value=Quantity(
                r"\mathrm{KL}(Q\|P) - \mathrm{KL}(Q\|M) + \log 2 + \mathbb{E}_Q\big[\tfrac{q}{p+q}\big],\ " + _M_TEX,
                lambda p, q: _kl_qp(p, q) - _kl_qm(p, q) + _LOG2
                + integrate(lambda x: torch.exp(_lp(q, x)) * torch.sigmoid(_lp(q, x) - _lp(p, x)), [p, q]),
            ),
            follows=Quantity(
                r"D_{f_G}(P\|Q) = \mathrm{KL}(Q\|P) - \mathrm{KL}(Q\|M) + \log 2",
                lambda p, q: _kl_qp(p, q) - _kl_qm(p, q) + _LOG2,
                "Danskin's theorem on the variational form of $D_{f_G}$ (chapter 4)",
            ),
            follows_f=standard.f,
            limits=_limits(_lim(_INF), _lim(0.5, r"\tfrac12")),
            chapters=(_CH4,),
            functions=(bce, "gan_lib.divergences.generator.GeneratorDivergence.envelope_objective"),
            **common,
        ),
    }


#: TeX of ``D_f(P||Q)`` for each divergence, and the number computed from that expression.
_FDIV_NAMED: dict[str, tuple[str, Number]] = {
    "kl": (r"\mathrm{KL}(P\|Q)", _kl_pq),
    "reverse_kl": (r"\mathrm{KL}(Q\|P)", _kl_qp),
    "pearson": (r"\int \frac{(p-q)^2}{q}\,dx", _direct(lambda lp, lq: torch.expm1(lp - lq) ** 2 * torch.exp(lq))),
    "neyman": (r"\int \frac{(p-q)^2}{p}\,dx", _direct(lambda lp, lq: torch.expm1(lq - lp) ** 2 * torch.exp(lp))),
    "squared_hellinger": (
        r"\int \big(\sqrt{p} - \sqrt{q}\big)^2\,dx",
        _direct(lambda lp, lq: (torch.exp(0.5 * lp) - torch.exp(0.5 * lq)) ** 2),
    ),
    "jeffrey": (r"\mathrm{KL}(P\|Q) + \mathrm{KL}(Q\|P)", lambda p, q: _kl_pq(p, q) + _kl_qp(p, q)),
    "jensen_shannon": (r"2\,\mathrm{JSD}(P, Q)", lambda p, q: 2.0 * jsd(p, q)),
    "gan": (r"2\,\mathrm{JSD}(P, Q) - \log 4", lambda p, q: 2.0 * jsd(p, q) - _LOG4),
    "total_variation": (r"\tfrac12\int \lvert p - q\rvert\,dx", _tv),
}

#: Limits of the normalised f of each divergence (alpha: computed from the order).
_FDIV_LIMITS: dict[str, Limits] = {
    "kl": _limits(_lim(1.0), _lim(_INF)),
    "reverse_kl": _limits(_lim(_INF), _lim(1.0)),
    "pearson": _limits(_lim(1.0), _lim(_INF)),
    "neyman": _limits(_lim(_INF), _lim(1.0)),
    "squared_hellinger": _limits(_lim(1.0), _lim(1.0)),
    "jeffrey": _limits(_lim(_INF), _lim(_INF)),
    "jensen_shannon": _limits(_lim(_LOG2, r"\log 2"), _lim(_LOG2, r"\log 2")),
    "gan": _limits(_lim(_LOG2, r"\log 2"), _lim(_LOG2, r"\log 2")),
    "total_variation": _limits(_lim(0.5, r"\tfrac12"), _lim(0.5, r"\tfrac12")),
}


def _fgan_optimal_logit(div: FDivergence) -> Callable[[Tensor], Tensor]:
    r"""The raw ``v^*`` with ``g_f(v^*) = f'(e^r)`` as a function of the log-ratio ``r``, written out per
    divergence so that it stays exact where ``e^r`` is huge or tiny (``div.activation_inverse`` of
    ``div.t_star`` loses it there: ``\log\frac{u}{1+u}`` rounds to 0 for large ``u``);
    tests/test_loss_theory.py checks it against ``activation_inverse(t_star(u))`` where both are exact."""
    name = div.name
    if name == "kl" or name == "jeffrey":
        tail = (lambda r: -torch.exp(-r)) if name == "jeffrey" else (lambda r: torch.zeros_like(r))
        return lambda r: r + 1.0 + tail(r)
    if name in ("reverse_kl", "jensen_shannon", "gan"):
        return lambda r: r
    if name == "pearson":
        return lambda r: 2.0 * torch.expm1(r)
    if name == "neyman":
        return lambda r: 2.0 * r
    if name == "squared_hellinger":
        return lambda r: 0.5 * r
    if name == "total_variation":
        return lambda r: torch.where(r > 0, math.inf, torch.where(r < 0, -math.inf, 0.0)).to(r.dtype)
    a = float(div.alpha)  # type: ignore[arg-type]
    if a < 1.0:  # 1/(1-a) - softplus(-v) = (u^(a-1) - 1)/(a - 1)  <=>  softplus(-v) = u^(a-1)/(1-a)
        return lambda r: -inverse_softplus(torch.exp((a - 1.0) * r - math.log(1.0 - a)))
    return lambda r: torch.expm1((a - 1.0) * r) / (a - 1.0)


def _fgan_entry(name: str, options: Mapping[str, Any]) -> LossTheory:
    div_name = name.removeprefix("fgan_")
    if options["generator"] != "minimax":
        raise ValueError("the theory of the f-GAN losses is written for generator='minimax' (the default)")
    if div_name == "alpha":
        a = float(options["alpha"])
        div = get_divergence("alpha", alpha=a)
        named_tex, named = rf"D_\alpha(P\|Q),\ \alpha = {a:g}", (lambda p, q: quad_divergence(div, p, q))
        limits = _limits(
            _lim(1.0 / a, r"1/\alpha") if a > 0 else _lim(_INF),
            _lim(1.0 / (1.0 - a), r"1/(1-\alpha)") if a < 1 else _lim(_INF),
        )
    else:
        div = get_divergence(div_name)
        named_tex, named = _FDIV_NAMED[div_name]
        limits = _FDIV_LIMITS[div_name]
    at_infinity = div_name == "total_variation"
    optimum_tex = rf"g_f(v^*(x)) = f'(u) = {div.t_star_tex},\quad u = \frac{{p(x)}}{{q(x)}}"
    if at_infinity:
        optimum_tex += r",\ \text{so } v^*(x) = \pm\infty"

    v_of_r = _fgan_optimal_logit(div)

    def critic(p: Dist, q: Dist) -> Critic:
        return lambda x: v_of_r(_lp(p, x) - _lp(q, x))

    def g_value(p: Dist, q: Dist) -> float:
        e_p_t = integrate(
            lambda x: torch.exp(_lp(p, x)) * div.t_star(torch.exp(_lp(p, x) - _lp(q, x))), [p, q], density_crossings(p, q)
        )
        return named(p, q) - e_p_t

    return LossTheory(
        name=name,
        options=dict(options),
        optimum=Quantity(
            optimum_tex,
            note="the supremum is approached as $v \\to \\pm\\infty$ and never attained" if at_infinity else "",
        ),
        critic=critic,
        perturb="clamp" if at_infinity else "bump",
        discriminator_value=Quantity(rf"-D_f(P\|Q) = -{named_tex}", lambda p, q: -named(p, q)),
        generator_value=Quantity(
            r"-\mathbb{E}_Q\big[f^*(f'(u))\big] = D_f(P\|Q) - \mathbb{E}_P\big[f'(u)\big]", g_value
        ),
        follows=Quantity(
            rf"D_f(P\|Q) = {named_tex}", named,
            "the envelope theorem: the generator minimises the bound the critic maximises",
        ),
        follows_f=_from_divergence(div),
        limits=limits,
        where=(
            rf"f(u) = {div.f_tex}\ \text{{({div.label})}}",
            rf"g_f(v) = {div.activation_tex}",
            rf"f^*(t) = {div.f_star_tex}",
        ),
        chapters=(_CH2,),
        functions=(_LM + "fgan.fgan_discriminator", _LM + "fgan.fgan_generator_minimax"),
    )


def _p_log_d(lp: Tensor, lq: Tensor) -> Tensor:
    """``p log(p/(p+q)) = -p softplus(log q - log p)``, 0 where ``p = 0``."""
    return torch.where(torch.isneginf(lp), torch.zeros_like(lp), -torch.exp(lp) * torch.nn.functional.softplus(lq - lp))


def _lsgan_f_tilde() -> LogFunction:
    # f~(u) = -u log(1 + 1/u) - 1/(2 (1 + u)); q f~(p/q) = p log(p/(p+q)) - q^2 / (2 (p + q))
    def persp(lp: Tensor, lq: Tensor) -> Tensor:
        return _p_log_d(lp, lq) - 0.5 * torch.exp(lq) * torch.sigmoid(lq - lp)

    return LogFunction(
        tex=r"-u\log\left(1+\frac1u\right) - \frac{1}{2(1+u)}",
        at_log=lambda l: persp(l, torch.zeros_like(l)),
        perspective=persp,
    )


def _lsgan_pearson_f_tilde() -> LogFunction:
    # preset 'pearson' (a=-1, b=1, c=0): f~'' = -2(u - 1)/(u (1 + u)^3); f~(u) = -2u log(1 + 1/u) - 2/(1 + u)
    def persp(lp: Tensor, lq: Tensor) -> Tensor:
        return 2.0 * (
            _p_log_d(lp, lq)
            - torch.exp(lq) * torch.sigmoid(lq - lp)
        )

    return LogFunction(
        tex=r"-2u\log\left(1+\frac1u\right) - \frac{2}{1+u}",
        at_log=lambda l: persp(l, torch.zeros_like(l)),
        perspective=persp,
    )


def _lsgan_entry(options: Mapping[str, Any]) -> LossTheory:
    a, b, c = (float(options[k]) for k in ("a", "b", "c"))
    if (a, b, c) != (0.0, 1.0, 1.0):
        raise ValueError("the theory of lsgan is written for its default codes a=0, b=1, c=1")
    f_tilde = _lsgan_f_tilde()

    def critic(p: Dist, q: Dist) -> Critic:
        return lambda x: a + (b - a) * torch.sigmoid(_lp(p, x) - _lp(q, x))

    def pearson_value(p: Dist, q: Dist) -> tuple[float, float]:
        loss = registry.get("lsgan", preset="pearson")
        pa, pb = loss.options["a"], loss.options["b"]
        v = lambda x: pa + (pb - pa) * torch.sigmoid(_lp(p, x) - _lp(q, x))  # noqa: E731
        g = lambda x: loss.generator(v(x), reduction="none")  # noqa: E731
        value = integrate(lambda x: _weighted(p, x, g(x)) + _weighted(q, x, g(x)), [p, q], density_crossings(p, q))
        chi2 = _direct(lambda lp, lq: (torch.exp(lp) - torch.exp(lq)) ** 2 / (torch.exp(lp) + torch.exp(lq)))(p, q)
        return value, 0.5 * chi2

    def pearson_gradient(p: Dist, q: Dist) -> tuple[float, float]:
        loss = registry.get("lsgan", preset="pearson")
        pa, pb = loss.options["a"], loss.options["b"]
        ft = _lsgan_pearson_f_tilde()
        frozen = lambda x: pa + (pb - pa) * torch.sigmoid(_lp(p, x) - _lp(q, x))  # noqa: E731
        eps = 1e-5
        g_loss = (
            population_generator(loss, frozen, shifted(q, eps), density_crossings(p, q), span=[p, q])
            - population_generator(loss, frozen, shifted(q, -eps), density_crossings(p, q), span=[p, q])
        ) / (2 * eps)
        div = lambda qq: integrate(lambda x: ft.perspective(_lp(p, x), _lp(qq, x)), [p, qq])  # noqa: E731
        g_div = (div(shifted(q, eps)) - div(shifted(q, -eps))) / (2 * eps)
        return g_loss, g_div

    def curvature(p: Dist, q: Dist) -> tuple[float, float]:
        # largest relative gap between f~'' by autograd (through f~ as implemented) and 1/(u (1 + u)^3)
        u = torch.tensor([0.25, 0.5, 1.0, 2.0, 4.0, 8.0], dtype=torch.float64, requires_grad=True)
        (d1,) = torch.autograd.grad(f_tilde(u).sum(), u, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), u)
        u = u.detach()
        return float((d2 * u * (1.0 + u) ** 3 - 1.0).abs().max()), 0.0

    def pearson_concave(p: Dist, q: Dist) -> tuple[float, None]:
        # min over u > 1 of -f~''(u) u (1 + u)^3 (= 2(u - 1) > 0), f~'' by autograd through f~
        ft = _lsgan_pearson_f_tilde()
        u = torch.tensor([1.25, 2.0, 4.0, 16.0, 64.0], dtype=torch.float64, requires_grad=True)
        (d1,) = torch.autograd.grad(ft(u).sum(), u, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), u)
        u = u.detach()
        return float((-d2 * u * (1.0 + u) ** 3).min()), None

    return LossTheory(
        name="lsgan",
        options=dict(options),
        optimum=Quantity(r"v^*(x) = \frac{b\,p(x) + a\,q(x)}{p(x)+q(x)} = \frac{p(x)}{p(x)+q(x)}\ \ (a = 0,\ b = 1)"),
        critic=critic,
        discriminator_value=Quantity(
            r"\tfrac{(b-a)^2}{2}\int\frac{p\,q}{p+q}\,dx = \tfrac12\int\frac{p\,q}{p+q}\,dx",
            _direct(lambda lp, lq: 0.5 * torch.exp(lp + lq - torch.logaddexp(lp, lq))),
        ),
        generator_value=Quantity(
            r"\tfrac12\,\mathbb{E}_Q\big[(v^* - c)^2\big] = \tfrac12\int\frac{q^3}{(p+q)^2}\,dx",
            _direct(lambda lp, lq: 0.5 * torch.exp(lq) * torch.sigmoid(lq - lp) ** 2),
        ),
        follows=Quantity(
            r"\mathbb{E}_P\big[\log\tfrac{p}{p+q}\big] - \tfrac12\,\mathbb{E}_Q\big[\tfrac{q}{p+q}\big]",
            _direct(
                lambda lp, lq: torch.exp(lp) * torch.nn.functional.logsigmoid(lp - lq)
                - 0.5 * torch.exp(lq) * torch.sigmoid(lq - lp)
            ),
            "derived here as chapter 4 does for Poole's objectives: with $v^*$ frozen, a fake at ratio $u$ "
            "moves as under $D_{\\tilde f}$ with $\\tilde f''(u) = -g'(\\log u)/u^2$, $g$ the per-sample loss "
            "as a function of the log-ratio; here $\\tilde f''(u) = 1/(u(1+u)^3) > 0$, so $D_{\\tilde f}$ is an "
            "f-divergence",
        ),
        follows_f=f_tilde,
        limits=_limits(_lim(0.375, r"\tfrac38"), _lim(_LOG2 - 0.625, r"\log 2 - \tfrac58")),
        where=(r"a = 0,\ b = 1,\ c = 1\ \text{(the default codes)}",),
        functions=(_LM + "lsgan.lsgan_discriminator", _LM + "lsgan.lsgan_generator"),
        claims=(
            Claim(
                "$\\tilde f''(u) = 1/(u(1+u)^3)$: largest relative gap to the second derivative of "
                "$\\tilde f$ by autograd at $u = 0.25, 0.5, \\dots, 8$",
                curvature,
                "curvature",
            ),
            Claim(
                "With `preset='pearson'` ($a=-1$, $b=1$, $c=0$) the generator loss at $v^*$ plus the term "
                "$\\tfrac12\\mathbb{E}_P[(v^*-c)^2]$, which the generator cannot change, is "
                "$\\tfrac12\\int\\frac{(p-q)^2}{p+q}\\,dx$, half the Pearson $\\chi^2$ between $2Q$ and $P+Q$ "
                "({cite:t}`mao2017lsgan`, Theorem 1; {cite:t}`hsieh2018notes`)",
                pearson_value,
            ),
            Claim(
                "With `preset='pearson'` and $v^*$ frozen the generator follows instead "
                "$D_{\\tilde f}$, $\\tilde f(u) = -2u\\log(1+1/u) - 2/(1+u)$ (location derivative)",
                pearson_gradient,
                "gradient",
            ),
            Claim(
                "... and that $\\tilde f$ is concave for $u > 1$ ($-\\tilde f''(u)\\,u(1+u)^3 > 0$ at "
                "$u = 1.25, 2, 4, 16, 64$, by autograd): $D_{\\tilde f}$ is not an f-divergence",
                pearson_concave,
                "positive",
            ),
        ),
    )


def _wgan_critic(p: Dist, q: Dist) -> Critic:
    """An optimal 1-Lipschitz critic in 1-D: slope ``sign(F_Q - F_P)``, kinks where the CDFs cross,
    ``0`` at the first crossing."""
    knots = cdf_crossings(p, q)
    if not knots:  # one sign throughout (e.g. equal variances): a line
        s0 = float(torch.sign(q.cdf(p.mean).double() - p.cdf(p.mean).double()))
        return lambda x: s0 * x
    points = [knots[0] - 1.0] + [0.5 * (a + b) for a, b in zip(knots, knots[1:])] + [knots[-1] + 1.0]
    mids = torch.tensor(points, dtype=torch.float64)
    slopes = torch.sign(q.cdf(mids).double() - p.cdf(mids).double()).tolist()

    def v_star(x: Tensor) -> Tensor:
        # v(x) = s_0 (min(x, k_1) - k_1) + sum_j s_j (clamp(x, k_j, k_{j+1}) - k_j)
        out = slopes[0] * (torch.clamp(x, max=knots[0]) - knots[0])
        for j, k in enumerate(knots):
            upper = knots[j + 1] if j + 1 < len(knots) else None
            out = out + slopes[j + 1] * (torch.clamp(x, min=k, max=upper) - k)
        return out

    return v_star


def _ipm_family(options: Mapping[str, Mapping[str, Any]]) -> dict[str, LossTheory]:
    ipm_g = _LM + "ipm.ipm_generator"
    tv_f = LogFunction(
        tex=r"\lvert u - 1\rvert",
        at_log=lambda l: torch.expm1(l).abs(),
        perspective=lambda lp, lq: (torch.exp(lp) - torch.exp(lq)).abs(),
    )

    def hinge_critic(p: Dist, q: Dist) -> Critic:
        return lambda x: torch.sign(_lp(p, x) - _lp(q, x))

    def hinge_g(p: Dist, q: Dist) -> float:
        # -E_Q[sign(p - q)] from Q's CDF between the crossings of the densities
        cuts = density_crossings(p, q)
        if not cuts:
            inside = [float(p.mean)]
        else:
            inside = [cuts[0] - 1.0] + [0.5 * (a + b) for a, b in zip(cuts, cuts[1:])] + [cuts[-1] + 1.0]
        cdf = [0.0] + [float(q.cdf(torch.tensor(c, dtype=torch.float64))) for c in cuts] + [1.0]
        at = torch.tensor(inside, dtype=torch.float64)
        signs = torch.sign(_lp(p, at) - _lp(q, at))
        return -sum(float(s) * (b - a) for s, a, b in zip(signs, cdf, cdf[1:]))

    def kl_weights_value(p: Dist, q: Dist) -> tuple[float, float]:
        v = 2.0 * torch.sin(torch.arange(64, dtype=torch.float64))  # a fixed batch of critic values
        r = kl_batch_weights(v)
        return float((torch.xlogy(r, r) - r * v).mean()), -math.log(float(torch.exp(v).mean()))

    def kl_weights_rise(p: Dist, q: Dist) -> tuple[float, None]:
        v = 2.0 * torch.sin(torch.arange(64, dtype=torch.float64))
        r = kl_batch_weights(v)
        objective = lambda w: float((torch.xlogy(w, w) - w * v).mean())  # noqa: E731
        rises = []
        for h in (torch.cos(torch.arange(64, dtype=torch.float64)), v, -v):
            w = r * torch.exp(0.05 * h)
            rises.append(objective(w / w.mean()) - objective(r))
        return min(rises), None

    def chi2_objective(w: Tensor, v: Tensor) -> float:
        return float(((w - 1.0) ** 2 - w * v).mean())

    def chi2_weights_value(p: Dist, q: Dist) -> tuple[float, float]:
        # a batch whose weights are all positive: r = 1 + (v - mean v)/2, minimum -mean v - var v / 4
        v = 0.6 * torch.sin(torch.arange(64, dtype=torch.float64))
        return chi2_objective(chi2_batch_weights(v), v), float(-v.mean() - v.var(unbiased=False) / 4.0)

    def chi2_weights_rise(p: Dist, q: Dist) -> tuple[float, None]:
        # a batch where 30 of the 64 weights are clipped to 0: every move towards another feasible
        # weighting (all ones, the KL weights, all mass on the worst sample) raises the objective
        v = 6.0 * torch.sin(torch.arange(64, dtype=torch.float64))
        r = chi2_batch_weights(v)
        point = torch.zeros_like(v)
        point[int(torch.argmin(v))] = float(v.numel())
        rises = [chi2_objective(0.95 * r + 0.05 * u, v) - chi2_objective(r, v)
                 for u in (torch.ones_like(v), kl_batch_weights(v), point)]
        return min(rises), None

    no_constraint = (
        "the unconstrained critic; with a Lipschitz critic (spectral norm, as in {cite:t}`miyato2018spectral`) "
        "the optimum has no closed form that we know of"
    )
    return {
        "wgan": LossTheory(
            name="wgan",
            options=dict(options["wgan"]),
            optimum=Quantity(
                r"\text{a 1-Lipschitz } v^* \text{ maximising } \mathbb{E}_P[v] - \mathbb{E}_Q[v];\ "
                r"\text{in 1-D } v^{*\prime}(x) = \operatorname{sign}\big(F_Q(x) - F_P(x)\big)",
                note="the loss alone is unbounded below (scaling $v$ scales it): the Lipschitz constraint "
                "(weight clipping, gradient penalty, spectral norm) is part of the method, not of the loss",
            ),
            critic=_wgan_critic,
            perturb="lipschitz",
            discriminator_value=Quantity(r"-W_1(P, Q)", lambda p, q: -_w1(p, q)),
            generator_value=_unknown(
                "$-\\mathbb{E}_Q[v^*]$ depends on the critic's additive constant, which the loss leaves free"
            ),
            follows=Quantity(
                r"W_1(P, Q) = \int \lvert F_P - F_Q\rvert\,dx\ \text{(in 1-D)}", _w1,
                "{cite:t}`arjovsky2017wgan`, Theorem 3",
            ),
            mode_note="not an f-divergence: $W_1$ is an integral probability metric",
            functions=(_LM + "ipm.wgan_discriminator", ipm_g),
            claims=(
                Claim(
                    "Without the constraint the loss is unbounded below: $10\\,v^*$ gives ten times the "
                    "optimum, $-10\\,W_1$",
                    lambda p, q: (
                        population_discriminator(registry.get("wgan"), lambda x: 10.0 * _wgan_critic(p, q)(x), p, q),
                        -10.0 * _w1(p, q),
                    ),
                ),
            ),
        ),
        "hinge": LossTheory(
            name="hinge",
            options=dict(options["hinge"]),
            optimum=Quantity(r"v^*(x) = \operatorname{sign}\big(p(x) - q(x)\big)", note=no_constraint),
            critic=hinge_critic,
            discriminator_value=Quantity(
                r"2 - 2\,\mathrm{TV}(P, Q),\ \mathrm{TV} = \tfrac12\int\lvert p - q\rvert\,dx",
                lambda p, q: 2.0 - 2.0 * _tv(p, q),
            ),
            generator_value=Quantity(r"Q(p < q) - Q(p > q)", hinge_g),
            follows=Quantity(
                r"2\,\mathrm{TV}(P, Q)", lambda p, q: 2.0 * _tv(p, q),
                "as the derivative of the expected loss: $v^*$ is piecewise constant, so every sample's own "
                "gradient is zero and the whole gradient comes from model mass moving across the jumps of $v^*$",
            ),
            follows_f=tv_f,
            limits=_limits(_lim(1.0), _lim(1.0)),
            functions=(_LM + "ipm.hinge_discriminator", ipm_g),
        ),
        "kl_hinge": LossTheory(
            name="kl_hinge",
            options=dict(options["kl_hinge"]),
            optimum=_unknown(
                "the in-batch weights couple the fakes of a batch; we know no closed form of the population "
                "optimum ({cite:t}`song2020bridging` train the critic with spectral norm)"
            ),
            critic=None,
            discriminator_value=_unknown(_NO_CLOSED_FORM),
            generator_value=_unknown(_NO_CLOSED_FORM),
            follows=_unknown(_NO_CLOSED_FORM),
            mode_note=_NO_CLOSED_FORM,
            where=(r"r_i = n\,\mathrm{softmax}(v_{\mathrm{fake}})_i = e^{v_{\mathrm{fake},i}} \big/ \tfrac1n\textstyle\sum_j e^{v_{\mathrm{fake},j}}",),
            functions=(_LM + "ipm.kl_hinge_discriminator", _LM + "ipm.kl_hinge_generator"),
            chapters=(_CH6,),
            claims=(
                Claim(
                    "The weights $r = n\\,\\mathrm{softmax}(v)$ minimise $\\tfrac1n\\sum_i (r_i\\log r_i - r_i v_i)$ "
                    "over weights with mean 1 (the KL case of {cite:t}`song2020bridging`); the minimum is "
                    "$-\\log \\tfrac1n\\sum_i e^{v_i}$",
                    kl_weights_value,
                ),
                Claim(
                    "... and moving the weights away from $r$ (three directions, mean kept 1) raises it",
                    kl_weights_rise,
                    "positive",
                ),
            ),
        ),
        "chi2_hinge": LossTheory(
            name="chi2_hinge",
            options=dict(options["chi2_hinge"]),
            optimum=_unknown(
                "the in-batch weights couple the fakes of a batch; we know no closed form of the population "
                "optimum (the weights are the Pearson case of {cite:t}`song2020bridging`, derived in the f-WGAN chapter)"
            ),
            critic=None,
            discriminator_value=_unknown(_NO_CLOSED_FORM),
            generator_value=_unknown(_NO_CLOSED_FORM),
            follows=_unknown(_NO_CLOSED_FORM),
            mode_note=_NO_CLOSED_FORM,
            where=(
                r"r_i = \max\big(0, 1 + (v_{\mathrm{fake},i} - \lambda)/2\big),\ \lambda \text{ such that } "
                r"\tfrac1n\textstyle\sum_i r_i = 1",
            ),
            functions=(_LM + "ipm.chi2_hinge_discriminator", _LM + "ipm.chi2_hinge_generator"),
            chapters=(_CH6,),
            claims=(
                Claim(
                    "The weights $r_i = \\max(0, 1 + (v_i - \\lambda)/2)$ minimise "
                    "$\\tfrac1n\\sum_i \\big((r_i - 1)^2 - r_i v_i\\big)$ over weights $r_i \\ge 0$ with mean 1 "
                    "(the Pearson case of {cite:t}`song2020bridging`); where none is clipped the minimum is "
                    "$-\\bar v - \\tfrac14 \\overline{(v - \\bar v)^2}$",
                    chi2_weights_value,
                ),
                Claim(
                    "... and on a batch where 30 of 64 weights are clipped to 0, moving them towards any other "
                    "feasible weights (all ones, the KL weights, all mass on the lowest $v$) raises it",
                    chi2_weights_rise,
                    "positive",
                ),
            ),
        ),
    }


def _relativistic_family(options: Mapping[str, Mapping[str, Any]]) -> dict[str, LossTheory]:
    rel = _LM + "relativistic."
    pairs = (r"v_r = v(x_r),\ x_r \sim P", r"v_f = v(x_f),\ x_f \sim Q")
    return {
        "rgan": LossTheory(
            name="rgan",
            options=dict(options["rgan"]),
            optimum=Quantity(
                r"v^*(x) = \log\frac{p(x)}{q(x)} + c,\ \text{any constant } c",
                note="derived here: the loss is half the cross-entropy of telling ordered pairs "
                "$(x_r, x_f) \\sim P\\otimes Q$ from swapped pairs $\\sim Q\\otimes P$ with the logit "
                "$v(x_r) - v(x_f)$, whose optimum $\\log\\frac{p(x_r)\\,q(x_f)}{q(x_r)\\,p(x_f)}$ has that form",
            ),
            critic=_ratio_critic,
            shift_invariant=True,
            discriminator_value=Quantity(
                r"\log 2 - \mathrm{JSD}(P\otimes Q,\ Q\otimes P)", lambda p, q: _LOG2 - _jsd_pairs(p, q)
            ),
            generator_value=Quantity(
                r"\mathrm{KL}(P\|Q) + \mathrm{KL}(Q\|P) - \mathrm{KL}(P\otimes Q\,\|\,M_2) + \log 2,\ "
                r"M_2 = \tfrac12(P\otimes Q + Q\otimes P)",
                lambda p, q: _kl_pq(p, q) + _kl_qp(p, q) - _kl_pairs_to_mixture(p, q) + _LOG2,
            ),
            follows=_unknown(
                "with $v^*$ frozen each fake is moved along $\\nabla\\log(p/q)$ with a weight that depends on "
                "the whole of $P$, not on the ratio at the sample alone; we know no closed form"
            ),
            mode_note=_NO_CLOSED_FORM,
            where=pairs + (r"(x_r, x_f) \text{ in pairs}",),
            functions=(rel + "rgan_discriminator", rel + "rgan_generator"),
        ),
        "ragan": LossTheory(
            name="ragan",
            options=dict(options["ragan"]),
            optimum=_unknown(
                "the batch means couple the samples; we know no closed form of the population optimum"
            ),
            critic=None,
            discriminator_value=_unknown(_NO_CLOSED_FORM),
            generator_value=_unknown(_NO_CLOSED_FORM),
            follows=_unknown(_NO_CLOSED_FORM),
            mode_note=_NO_CLOSED_FORM,
            where=pairs + (r"\bar v_r,\ \bar v_f\ \text{(batch means)}",),
            functions=(rel + "ragan_discriminator", rel + "ragan_generator"),
        ),
    }


def _build() -> dict[str, LossTheory]:
    options = {name: registry.get(name).options for name in registry.names()}
    entries: dict[str, LossTheory] = {}
    entries.update(_standard_family())
    entries.update(_poole_family(options))
    entries.update(_ipm_family(options))
    entries.update(_relativistic_family(options))
    entries["lsgan"] = _lsgan_entry(options["lsgan"])
    for name in registry.names():
        if name.startswith("fgan_"):
            entries[name] = _fgan_entry(name, options[name])
    return {name: entries[name] for name in registry.names() if name in entries}


THEORY: Mapping[str, LossTheory] = MappingProxyType(_build())
"""Loss name -> :class:`LossTheory`, in the order of :func:`gan_lib.losses.names`."""


def theory(name: str) -> LossTheory:
    """The :class:`LossTheory` of the registered loss ``name``; raises ``KeyError`` naming the
    losses that have one."""
    if name not in THEORY:
        raise KeyError(f"no theory entry for loss {name!r}; entries: {', '.join(THEORY)}")
    return THEORY[name]


def module_path(dotted: str) -> tuple[str, str]:
    """``("gan_lib/losses/fgan.py", "fgan_discriminator")`` for a dotted name of a function (or a
    method, ``module.Class.method``); raises ``ImportError``/``AttributeError`` if it does not exist."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return module_name.replace(".", "/") + ".py", ".".join(parts[cut:])
    raise ImportError(f"no module found for {dotted!r}")


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------

#: Tolerance of each kind of check, ``atol + rtol * |reference|``: about twice the largest error
#: observed over the Gaussian pairs the reference page allows (``P = N(0, 1)``; ``Q`` with mean in
#: ``[-1, 1]`` and standard deviation in ``[0.8, 1.25]``, nine pairs on the edges of that box;
#: everything here is invariant under a common shift and scale), but never below a few units of
#: float64 rounding of the reference (so that another CPU's summation order cannot fail a check):
#:
#: * ``value``: losses at the optimum against the stated expressions, the followed divergence
#:   against the integral of its ``\tilde f``; largest error 8.8e-15 relative (1.6e-16 absolute
#:   for references below 1e-2);
#: * ``pair``: the same on the tensor-product grid of ``rgan``; largest 2.4e-16 relative;
#: * ``gradient``: central differences of step 1e-5 (scaled by ``(eps/1e-5)^2`` for other steps:
#:   the error is the differences' truncation); largest 2.1e-8 relative, 9.4e-11 absolute for
#:   gradients below 1e-2;
#: * ``limit``: a finite limit of ``\hat f`` at ``u = e^{\mp 60}``; largest 7.5e-13;
#: * ``shift``: the change of the ``rgan`` loss when ``v^*`` moves by a constant; largest 5.6e-17;
#: * ``curvature``: a stated ``\tilde f''`` against autograd's second derivative of ``\tilde f``
#:   as implemented (relative); largest 4.8e-15;
#: * ``rise`` and ``positive`` are lower bounds: the rise of the loss under a perturbation of
#:   ``v^*`` (smallest observed 3.7e-4) and a curvature must clear the quadrature's noise by far.
TOLERANCES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "value": (1e-15, 2e-14),
        "pair": (1e-15, 2e-15),
        "gradient": (2e-10, 4e-8),
        "limit": (1.5e-12, 0.0),
        "shift": (4e-16, 0.0),
        "curvature": (1e-14, 0.0),
        "rise": (1e-10, 0.0),
        "positive": (1e-10, 0.0),
    }
)


#: An infinite limit of ``\hat f`` must move by at least this between ``u = e^{\mp 30}`` and
#: ``e^{\mp 60}`` (a logarithmic divergence moves by 30; a finite limit has converged there).
GROWTH: float = 5.0


@dataclass(frozen=True)
class CheckResult:
    """One numeric check: ``value`` against ``reference`` within ``tol`` (or, for a lower bound,
    ``value >= bound``)."""

    loss: str
    claim: str
    value: float
    reference: Optional[float]
    tol: Optional[float] = None
    bound: Optional[float] = None
    source: str = ""
    kind: str = "value"

    @property
    def ok(self) -> bool:
        if self.reference is not None:
            return abs(self.value - self.reference) <= float(self.tol)  # type: ignore[arg-type]
        return self.value >= float(self.bound)  # type: ignore[arg-type]

    @property
    def error(self) -> float:
        return abs(self.value - self.reference) if self.reference is not None else math.nan


def _close(
    loss: str, claim: str, value: float, reference: float, kind: str, source: str, scale: float = 1.0
) -> CheckResult:
    atol, rtol = (scale * t for t in TOLERANCES[kind])
    tol = atol + rtol * abs(reference)
    return CheckResult(loss, claim, float(value), float(reference), tol, source=source, kind=kind)


def _above(loss: str, claim: str, value: float, kind: str, source: str, bound: Optional[float] = None) -> CheckResult:
    bound = TOLERANCES[kind][0] if bound is None else bound
    return CheckResult(loss, claim, float(value), None, bound=bound, source=source, kind=kind)


def normalised_limits(f: LogFunction, big: float = 60.0) -> tuple[tuple[float, float], tuple[float, float]]:
    r"""``(\hat f(e^{-big/2}), \hat f(e^{-big}))`` and ``(\hat f(u)/u`` at ``u = e^{big/2}, e^{big})``
    of the normalised ``\hat f(u) = f(u) - f(1) - f'(1)(u - 1)`` (``f'(1)`` by autograd); an infinite
    limit shows up as values that keep growing."""
    one = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    f1 = f.at_log(one)
    (df1,) = torch.autograd.grad(f1.sum(), one)  # d f(e^l)/dl at l = 0 is f'(1)
    f1v, d1 = float(f1.detach()[0]), float(df1[0])

    def hat(l: float) -> float:
        u = math.exp(l)
        return float(f.at_log(torch.tensor([l], dtype=torch.float64))[0]) - f1v - d1 * (u - 1.0)

    return (hat(-big / 2), hat(-big)), (hat(big / 2) / math.exp(big / 2), hat(big) / math.exp(big))


def _limit_checks(entry: LossTheory) -> list[CheckResult]:
    assert entry.limits is not None and entry.follows_f is not None
    out = []
    zero, infinity = normalised_limits(entry.follows_f)
    for label, stated, (near, far) in (
        ("f̂(0⁺)", entry.limits.at_zero, zero),
        ("lim f̂(u)/u", entry.limits.at_infinity, infinity),
    ):
        if math.isinf(stated):
            sign = 1.0 if stated > 0 else -1.0
            # diverging: still growing by a lot between e^30 and e^60 (or e^-30 and e^-60), where a
            # finite limit has long converged
            grow = sign * (far - near)
            what = "∞" if sign > 0 else "−∞"
            where = "e^−30 to e^−60" if "0⁺" in label else "e^30 to e^60"
            out.append(_above(entry.name, f"{label} = {what}: it moves towards {what} by at least {GROWTH:g} from u = {where}",
                              grow, "limit", "f̃ of the followed divergence", bound=GROWTH))
        else:
            out.append(_close(entry.name, f"{label} = {stated:.6g}", far, stated, "limit", "f̃ at u = e^∓60"))
    return out


def _perturbations(entry: LossTheory, critic: Critic, p: Dist, q: Dist, delta: float) -> list[tuple[str, Critic]]:
    c = 0.5 * (float(p.mean) + float(q.mean))
    s = float(p.stddev)

    def bump(x: Tensor) -> Tensor:
        return torch.tanh((x - c) / s) + 0.5

    if entry.perturb == "clamp":
        return [("v* clamped to ±3", lambda x: critic(x).clamp(-3.0, 3.0))]
    if entry.perturb == "lipschitz":
        return [
            (f"(1 − {delta:g}) v*", lambda x: (1.0 - delta) * critic(x)),
            (f"(1 − {delta:g}) v* + {delta:g} s tanh((x − c)/s)", lambda x: (1.0 - delta) * critic(x) + delta * s * torch.tanh((x - c) / s)),
        ]
    return [
        (f"v* + {delta:g} b", lambda x: critic(x) + delta * bump(x)),
        (f"v* − {delta:g} b", lambda x: critic(x) - delta * bump(x)),
    ]


def _gradient(fn: Callable[[Dist], float], q: Dist, eps: float, scale: bool) -> list[tuple[str, float]]:
    out = [("location", (fn(shifted(q, eps)) - fn(shifted(q, -eps))) / (2 * eps))]
    if scale:
        out.append(("log-scale", (fn(shifted(q, 0.0, eps)) - fn(shifted(q, 0.0, -eps))) / (2 * eps)))
    return out


def verify(
    name: str, p: Dist, q: Dist, *, delta: float = 0.1, eps: float = 1e-5, scale: bool = True
) -> list[CheckResult]:
    r"""Every numeric claim of ``THEORY[name]`` for the 1-D data ``p`` and the Gaussian model ``q``
    (float64), each computed two ways; nothing is asserted here.

    * the optimal critic minimises the population discriminator loss: perturbing it (``delta``,
      see :attr:`LossTheory.perturb`) raises the loss (and a constant shift does not change it, for
      shift-invariant losses);
    * the discriminator and generator losses at the optimum equal the stated expressions;
    * the frozen-critic generator gradient in the location (and, with ``scale``, the log-scale) of
      ``q`` equals the gradient of the stated divergence (central differences of step ``eps``);
    * the followed divergence is the integral of its ``\tilde f``; the limits of ``\hat f``;
    * the entry's further claims.
    """
    entry = theory(name)
    loss = registry.get(name)
    results: list[CheckResult] = []
    src = "quadrature of the loss's own terms vs the stated expression"
    if entry.critic is not None:
        critic = entry.critic(p, q)
        if entry.name in ("rgan",):
            def pop(v: Critic) -> float:
                return pair_population(lambda vr, vf: loss.discriminator(vr, vf, reduction="none"), v, p, q)
        else:
            def pop(v: Critic) -> float:
                return population_discriminator(loss, v, p, q)

        best = pop(critic)
        rises = [(label, pop(v) - best) for label, v in _perturbations(entry, critic, p, q, delta)]
        label, rise = min(rises, key=lambda t: t[1])
        results.append(_above(name, f"v* minimises the discriminator loss (smallest rise, {label})", rise, "rise", "quadrature"))
        if entry.shift_invariant:
            results.append(
                CheckResult(name, "v* + 1 is as good (shift invariance): |rise|", abs(pop(lambda x: critic(x) + 1.0) - best),
                            0.0, TOLERANCES["shift"][0], source="quadrature", kind="shift")
            )
        if entry.discriminator_value.value is not None:
            kind = "pair" if entry.name == "rgan" else "value"
            results.append(_close(name, "discriminator loss at v*", best, entry.discriminator_value.value(p, q), kind, src))
        if entry.generator_value.value is not None:
            if entry.name == "rgan":
                g_at = pair_population(lambda vr, vf: loss.generator(vf, vr, reduction="none"), critic, p, q)
                kind = "pair"
            else:
                g_at = population_generator(loss, critic, q, _edges(p, q), span=[p])
                kind = "value"
            results.append(_close(name, "generator loss at v*", g_at, entry.generator_value.value(p, q), kind, src))
        if entry.follows.value is not None and entry.name != "rgan":
            edges = _edges(p, q)
            frozen = _gradient(lambda qq: population_generator(loss, critic, qq, edges, span=[p, q]), q, eps, scale)
            stated = _gradient(lambda qq: entry.follows.value(p, qq), q, eps, scale)  # type: ignore[misc]
            for (coord, g_loss), (_, g_div) in zip(frozen, stated):
                results.append(
                    _close(name, f"frozen-v* generator gradient = gradient of the followed divergence ({coord})",
                           g_loss, g_div, "gradient", "central differences", max(1.0, (eps / 1e-5) ** 2))
                )
    if entry.follows_f is not None and entry.follows.value is not None:
        f = entry.follows_f
        via_f = integrate(lambda x: f.perspective(_lp(p, x), _lp(q, x)), [p, q], density_crossings(p, q))
        results.append(_close(name, "the followed divergence is ∫ q f̃(p/q)", via_f, entry.follows.value(p, q), "value", "quadrature"))
    if entry.limits is not None and entry.follows_f is not None:
        results.extend(_limit_checks(entry))
    for claim in entry.claims:
        value, reference = claim.check(p, q)
        if reference is None:
            results.append(_above(name, claim.text, value, claim.kind, ""))
        else:
            results.append(_close(name, claim.text, value, reference, claim.kind, ""))
    return results
