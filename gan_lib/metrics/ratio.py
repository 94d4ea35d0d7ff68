r"""How well a logit recovers the log density ratio, and what its score bounds, by quadrature in 1-D.

* :func:`logit_function`: a float64 copy of a network as a function of a 1-D grid, for quadrature.
* :func:`population_risk`: :math:`\mathbb{E}_P[\ell_1(v)] + \mathbb{E}_Q[\ell_0(v)]` for a scoring rule.
* :func:`implied_divergence`: :math:`\int q\, f(p/q)` with a rule's implied ``f``.
* :func:`log_ratio_rmse`: the error of a logit against :math:`\log r` under the mixture
  :math:`M = (P+Q)/2` the classifier is trained on, optionally restricted to where both densities
  have mass (:math:`|\log r| \le L`).

Quadrature is the adaptive engine of :mod:`gan_lib.divergences.quadrature`.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor, nn

from gan_lib.divergences.quadrature import adaptive_integrate, auto_bounds, perspective
from gan_lib.divergences.scoring import ScoringRule, get_rule
from gan_lib.validation import is_real

__all__ = ["logit_function", "population_risk", "implied_divergence", "RatioError", "log_ratio_rmse"]

LogitFn = Callable[[Tensor], Tensor]


def logit_function(net: nn.Module) -> LogitFn:
    """A float64 copy of a network with one input and one output, as ``v(x)`` on a 1-D tensor.

    The original network is left untouched; the copy runs under ``torch.no_grad()``. Use it with
    the quadrature functions below, whose adaptive rule needs float64-smooth integrands.
    """
    net64 = copy.deepcopy(net).to(torch.float64).eval()

    def v(x: Tensor) -> Tensor:
        with torch.no_grad():
            return net64(torch.as_tensor(x, dtype=torch.float64).reshape(-1, 1)).reshape(-1)

    return v


def _bounds(p: Any, q: Any, lo: float | None, hi: float | None) -> tuple[float, float]:
    if lo is None or hi is None:
        a, b = auto_bounds([p, q])
        lo = a if lo is None else lo
        hi = b if hi is None else hi
    return float(lo), float(hi)


def population_risk(
    rule: ScoringRule | str,
    logit: LogitFn,
    p: Any,
    q: Any,
    lo: float | None = None,
    hi: float | None = None,
) -> float:
    r"""Population loss :math:`\mathbb{E}_P[\ell_1(v(X))] + \mathbb{E}_Q[\ell_0(v(X))]` by quadrature.

    ``p``, ``q``: 1-D distributions with ``log_prob``; ``logit`` maps a float64 tensor of points to
    logits. Minus this value is the rule's score, a lower bound on :func:`implied_divergence`.
    Bounds default to ``mean -/+ 12 std`` of the two distributions.
    """
    r = get_rule(rule) if isinstance(rule, str) else rule
    a, b = _bounds(p, q, lo, hi)

    def integrand(x: Tensor) -> Tensor:
        v = logit(x).to(torch.float64)
        return torch.exp(p.log_prob(x)) * r.loss_real(v) + torch.exp(q.log_prob(x)) * r.loss_fake(v)

    return adaptive_integrate(integrand, a, b)


def implied_divergence(
    rule: ScoringRule | str,
    p: Any,
    q: Any,
    lo: float | None = None,
    hi: float | None = None,
) -> float:
    r""":math:`\int q\, f(p/q)` for the rule's implied ``f``, by quadrature from log-densities.

    The integrand is :math:`q f(u)` where :math:`u = p/q \le 1` and :math:`p f(u)/u` above, so a
    density that underflows in a tail does not produce ``0 * inf``. Every implied ``f`` of
    :mod:`gan_lib.scoring` grows at most linearly, so the integral is finite for any ``p``, ``q``.
    """
    r = get_rule(rule) if isinstance(rule, str) else rule
    a, b = _bounds(p, q, lo, hi)

    def integrand(x: Tensor) -> Tensor:
        # implied f's grow at most linearly, so the clamped ratio of `perspective` is exact enough
        return perspective(r.implied_f, p.log_prob(x).to(torch.float64), q.log_prob(x).to(torch.float64))

    return adaptive_integrate(integrand, a, b)


class RatioError(NamedTuple):
    """Result of :func:`log_ratio_rmse`."""

    rmse: float  #: root mean squared error of the logit against log r under M restricted to the region
    mass: float  #: M-probability of the region (1 without a restriction)


def log_ratio_rmse(
    logit: LogitFn,
    p: Any,
    q: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    max_abs_log_ratio: float | None = None,
) -> RatioError:
    r"""Error of a logit as an estimate of :math:`\log r = \log p - \log q`, weighted by :math:`(p+q)/2`.

    .. math:: \mathrm{RMSE} = \Big(\int_R m\,(v - \log r)^2 \Big/ \int_R m\Big)^{1/2},
              \quad m = \tfrac12(p+q),

    the error under the mixture of the two distributions the classifier sees in training. With
    ``max_abs_log_ratio = L`` the region is :math:`R = \{x : |\log r(x)| \le L\}`, the set where
    both densities have mass (each is at least :math:`e^{-L}` times the other); otherwise
    :math:`R` is the whole integration range.
    """
    if max_abs_log_ratio is not None and not (is_real(max_abs_log_ratio) and max_abs_log_ratio > 0):
        raise ValueError(f"max_abs_log_ratio={max_abs_log_ratio!r} must be a real number > 0 (or None)")
    a, b = _bounds(p, q, lo, hi)

    def parts(x: Tensor) -> tuple[Tensor, Tensor]:
        lp = p.log_prob(x).to(torch.float64)
        lq = q.log_prob(x).to(torch.float64)
        m = 0.5 * (torch.exp(lp) + torch.exp(lq))
        lr = lp - lq
        if max_abs_log_ratio is not None:
            m = torch.where(lr.abs() <= max_abs_log_ratio, m, torch.zeros_like(m))
        return m, lr

    def weighted_sq(x: Tensor) -> Tensor:
        m, lr = parts(x)
        err = torch.where(m > 0, logit(x).to(torch.float64) - lr, torch.zeros_like(m))
        return m * err**2

    mass = adaptive_integrate(lambda x: parts(x)[0], a, b)
    if not mass > 0:
        raise ValueError("the region |log r| <= max_abs_log_ratio has no mass; raise max_abs_log_ratio")
    mse = adaptive_integrate(weighted_sq, a, b)
    return RatioError(rmse=math.sqrt(mse / mass), mass=mass)
