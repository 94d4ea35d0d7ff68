r"""Numerical integration of divergences and expectations: one adaptive Gauss--Legendre engine
(:func:`adaptive_integrate`), the perspective ``q f(p/q)`` from log-densities, 1-D quadrature of
divergences and expectations, and Monte Carlo in any dimension."""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .fdiv import FDivergence, exact_softplus, resolve

__all__ = [
    "adaptive_integrate",
    "auto_bounds",
    "perspective",
    "divergence_perspective",
    "quad_expectation",
    "quad_divergence",
    "jsd",
    "mc_divergence",
]

logger = logging.getLogger(__name__)

_GL_ORDER = 15


@lru_cache(maxsize=4)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    return x, w


def adaptive_integrate(
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


def auto_bounds(dists: Sequence[Any], k: float = 12.0) -> tuple[float, float]:
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
        "jensen_shannon": lambda lp, lq, t: e(lp) * t - (e(lp) + e(lq)) * (exact_softplus(t) - math.log(2.0)),
        "gan": lambda lp, lq, t: e(lp) * t - (e(lp) + e(lq)) * exact_softplus(t),
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


def divergence_perspective(div: FDivergence, lp: Tensor, lq: Tensor) -> Tensor:
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
        auto = auto_bounds([p])
        lo = auto[0] if lo is None else lo
        hi = auto[1] if hi is None else hi

    def integrand(x: Tensor) -> Tensor:
        return torch.exp(_log_prob64(p, x)) * fn(x).to(torch.float64)

    return adaptive_integrate(integrand, float(lo), float(hi), rtol=rtol)


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
    :func:`gan_lib.data.mixture_1d`). The integrand is built from log-densities (``q f(u)`` for
    ``u = p/q <= 1``, ``p f(u)/u`` above) so neither density's underflow spoils it. Without bounds
    the range is ``[min mean - 12 std, max mean + 12 std]`` of the two, widened while the
    integrand is not negligible at its ends (slowly decaying ratios, e.g. Pearson). Relative
    accuracy about 1e-10 on smooth densities; Q must be positive wherever P is.
    """
    d = resolve(div, **options)

    def integrand(x: Tensor) -> Tensor:
        return divergence_perspective(d, _log_prob64(p, x), _log_prob64(q, x))

    if lo is not None and hi is not None:
        return adaptive_integrate(integrand, float(lo), float(hi))
    a, b = auto_bounds([p, q])
    a = a if lo is None else float(lo)
    b = b if hi is None else float(hi)
    value = adaptive_integrate(integrand, a, b)
    for _ in range(20):
        ends = integrand(torch.tensor([a, b], dtype=torch.float64)).abs()
        width = b - a
        need_lo = lo is None and float(ends[0]) * width > 1e-13 * max(abs(value), 1e-300)
        need_hi = hi is None and float(ends[1]) * width > 1e-13 * max(abs(value), 1e-300)
        if not (need_lo or need_hi) or not math.isfinite(value):
            break
        a = a - 0.5 * width if need_lo else a
        b = b + 0.5 * width if need_hi else b
        value = adaptive_integrate(integrand, a, b)
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
    d = resolve(div, **options)
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
