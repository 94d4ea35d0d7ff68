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

from gan_lib.validation import integer_number, seed_number

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
    lo: float | None = None,
    hi: float | None = None,
    rtol: float = 1e-11,
    atol: float = 1e-15,
    init_panels: int = 64,
    max_rounds: int = 60,
    max_panels: int = 1 << 14,
    *,
    edges: Sequence[float] | np.ndarray | None = None,
) -> float:
    """Adaptive Gauss--Legendre (order 15) on [lo, hi]; each round evaluates ``fn`` once, batched.

    The first panels are ``init_panels`` equal ones on ``[lo, hi]``, or the panels between
    consecutive ``edges`` (finite, strictly increasing; then ``lo``/``hi`` may be omitted and, if
    given, must equal the first and last edge): put edges where the integrand changes scale, e.g.
    at multiples of a density's standard deviation about its mean.

    A panel is accepted when its one-panel and two-half-panel estimates agree to within its share
    (by width) of ``max(atol, rtol * |integral|)``; otherwise it is halved, and each half's estimate
    from this round serves as its one-panel estimate in the next (so a round evaluates ``fn`` at
    only the halves' nodes). At most ``max_panels`` panels are refined in one round: an integrand
    that is noisy at the level of ``rtol`` (e.g. a network evaluated in float32) would otherwise
    double the panels every round without end; past the cap the remaining panels are accepted as
    they are, with a warning. Returns ``inf`` when an estimate is ``+inf`` (a divergent integral)
    and propagates ``-inf``/``nan``.
    """
    if edges is None:
        if lo is None or hi is None:
            raise ValueError("give lo and hi, or edges")
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"need finite lo < hi; got lo={lo}, hi={hi}")
        start = np.linspace(lo, hi, init_panels + 1)
    else:
        start = np.asarray(edges, dtype=np.float64).reshape(-1)
        if start.size < 2 or not np.all(np.isfinite(start)) or not np.all(np.diff(start) > 0):
            raise ValueError(f"edges must be at least two finite, strictly increasing values; got {start.tolist()}")
        for name, given, edge in (("lo", lo, start[0]), ("hi", hi, start[-1])):
            if given is not None and float(given) != float(edge):
                raise ValueError(f"{name}={given} differs from the edge {edge}; give edges alone")
        lo, hi = float(start[0]), float(start[-1])
    nodes, weights = _gauss_legendre(_GL_ORDER)
    length = hi - lo

    def estimate(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
        half = (pb - pa) / 2.0
        x = ((pa + pb) / 2.0)[:, None] + half[:, None] * nodes[None, :]
        with torch.no_grad():
            y = fn(torch.from_numpy(x.reshape(-1))).to(torch.float64).reshape(x.shape).numpy()
        return (y * weights[None, :]).sum(axis=1) * half

    a, b = start[:-1], start[1:]
    whole: np.ndarray | None = None  # one-panel estimates, carried over from the previous round
    total = 0.0
    scale: float | None = None
    for round_ in range(max_rounds):
        m = (a + b) / 2.0
        k = a.size
        if whole is None:
            est = estimate(np.concatenate([a, a, m]), np.concatenate([b, m, b]))
            whole, halves = est[:k], est[k:]
        else:
            halves = estimate(np.concatenate([a, m]), np.concatenate([m, b]))
        left, right = halves[:k], halves[k:]
        two = left + right
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
        keep = ~done
        if not np.any(keep):
            break
        a_left, m_left, b_left = a[keep], m[keep], b[keep]
        a = np.concatenate([a_left, m_left])
        b = np.concatenate([m_left, b_left])
        whole = np.concatenate([left[keep], right[keep]])
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


_Full = Callable[[Tensor, Tensor], Tensor]
_Above = Callable[[Tensor, Tensor, Tensor], Tensor]
_Below = Callable[[Tensor, Tensor], Tensor]


def _full_range_form(div: FDivergence) -> _Full | None:
    """``(lp, lq) -> q f(p/q)`` as one expression in the log-densities, exact for every ``p/q`` in
    ``[0, inf]`` (no ratio is formed, so none over- or underflows); ``None`` where ``f`` has no
    such cheap form. ``p = q = 0`` is left to the caller."""
    e = torch.exp
    if div.name == "kl":  # p log(p/q), 0 where p = 0
        return lambda lp, lq: torch.where(torch.isneginf(lp), torch.zeros_like(lp), e(lp) * (lp - lq))
    if div.name == "reverse_kl":  # q log(q/p), 0 where q = 0
        return lambda lp, lq: torch.where(torch.isneginf(lq), torch.zeros_like(lq), e(lq) * (lq - lp))
    if div.name == "jeffrey":  # (p - q) log(p/q)
        return lambda lp, lq: (e(lp) - e(lq)) * (lp - lq)
    if div.name == "alpha" and div.alpha is not None:  # (p^a q^(1-a) - q - a (p - q)) / (a (a - 1))
        a = div.alpha
        return lambda lp, lq: (e(a * lp + (1.0 - a) * lq) - e(lq) - a * (e(lp) - e(lq))) / (a * (a - 1.0))
    return None


def _q_times(lq: Tensor, t: Tensor) -> Tensor:
    """``-q t`` with ``q = e^lq``, ``0`` where ``q = 0`` (``t`` may then be infinite)."""
    return torch.where(torch.isneginf(lq), torch.zeros_like(t), -torch.exp(lq) * t)


def _exact_forms(div: FDivergence) -> tuple[_Above | None, _Below | None]:
    """Exact log-space forms of ``q f(p/q)`` for a divergence of :mod:`.fdiv` without a full-range
    form, for :func:`perspective`.

    ``above(lp, lq, t)`` for ``u = p/q > 1`` (``t = log u``) and ``below(lq, t)`` for ``u`` below
    ``e^-700``, written as sums of exponentials of log-quantities so that they stay exact when
    ``u = e^t`` is beyond float range; ``None`` where ``f`` grows at most linearly (above) or is
    bounded near 0 (below), so the clamped ratio is exact enough there.
    """
    e = torch.exp
    above: dict[str, _Above] = {
        "pearson": lambda lp, lq, t: e(lp + t) - 2.0 * e(lp) + e(lq),
        "neyman": lambda lp, lq, t: e(lp) * (1.0 - e(-t)) ** 2,
        "squared_hellinger": lambda lp, lq, t: e(lp) * (1.0 - e(-0.5 * t)) ** 2,
        # p t - (p + q) softplus(t) written as -q t - (p + q) softplus(-t): no cancellation of two
        # terms of size p t, so q = 0 (t = +inf) gives the limits p log 2 and 0 exactly
        "jensen_shannon": lambda lp, lq, t: _q_times(lq, t) + (e(lp) + e(lq)) * (math.log(2.0) - exact_softplus(-t)),
        "gan": lambda lp, lq, t: _q_times(lq, t) - (e(lp) + e(lq)) * exact_softplus(-t),
        "total_variation": lambda lp, lq, t: 0.5 * (e(lp) - e(lq)).abs(),
    }
    # f unbounded as u -> 0: q f(u) = q (1 - u)^2 / u
    below: dict[str, _Below] = {
        "neyman": lambda lq, t: e(lq - t) * (-torch.expm1(t)) ** 2,
    }
    return above.get(div.name), below.get(div.name)


def _log_ratio_bound(dtype: torch.dtype) -> float:
    """Log-ratios are clamped to +-this before ``u = e^t`` is formed: 700 in float64, less in
    narrower floats so that ``e^t`` and ``f(e^t)`` stay finite."""
    return min(700.0, math.log(torch.finfo(dtype).max) - 2.0) if dtype.is_floating_point else 700.0


def perspective(
    f: Callable[[Tensor], Tensor],
    lp: Tensor,
    lq: Tensor,
    p_f_over_u: Callable[[Tensor], Tensor] | None = None,
    q_f_below: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """``q f(p/q)`` from log-densities ``lp``, ``lq``: ``q f(u)`` where ``u = p/q <= 1`` and
    ``p f(u)/u`` where ``u > 1``, so a density that underflows in a tail gives no ``0 * inf``.

    ``u`` is formed from the log-ratio clamped to ``[-700, 700]`` (less in float32); for an ``f``
    that grows faster than linearly pass ``p_f_over_u(t)``, the exact ``p f(u)/u`` as a function of
    ``t = log u >= 0``, which is then used where ``u > 1`` (so log-ratios beyond float range keep
    their exact value); for an ``f`` unbounded as ``u -> 0`` pass ``q_f_below(lq, t)``, the exact
    ``q f(u)``, which is then used where ``t`` is below the clamp (``t = -inf`` where ``p = 0``).
    Each branch is evaluated on inputs inside its own range, so the branch not taken adds no
    ``nan`` to gradients.
    """
    both_zero = torch.isneginf(lp) & torch.isneginf(lq)
    lr_raw = torch.nan_to_num(lp - lq, nan=0.0)
    bound = _log_ratio_bound(lr_raw.dtype)
    lr = lr_raw.clamp(-bound, bound)
    if p_f_over_u is None:
        fu = f(torch.exp(lr))
        below = torch.exp(lq) * fu
        above = torch.exp(lp - lr) * fu
    else:
        below = torch.exp(lq) * f(torch.exp(lr.clamp(max=0.0)))
        above = p_f_over_u(lr_raw.clamp(min=0.0))
    if q_f_below is not None:
        far = lr_raw < -bound
        t_far = torch.where(far, lp - lq, torch.full_like(lr_raw, -bound))
        lq_far = torch.where(far, lq, torch.zeros_like(lq))
        below = torch.where(far, q_f_below(lq_far, t_far), below)
    val = torch.where(lr <= 0, below, above)
    return torch.where(both_zero, torch.zeros_like(val), val)


def divergence_perspective(div: FDivergence, lp: Tensor, lq: Tensor) -> Tensor:
    """``q f(p/q)`` for a divergence of :mod:`.fdiv` from log-densities, exact for every ratio.

    KL, reverse KL, Jeffrey and alpha: one log-space expression (no ratio formed); the others:
    :func:`perspective` with ``div.f`` and their exact log-space forms where the ratio leaves
    float range. ``0`` where ``p = q = 0``.
    """
    full = _full_range_form(div)
    if full is None:
        above, below = _exact_forms(div)
        return perspective(div.f, lp, lq, None if above is None else (lambda t: above(lp, lq, t)), below)
    val = full(lp, lq)
    return torch.where(torch.isneginf(lp) & torch.isneginf(lq), torch.zeros_like(val), val)


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

    Needs ``q.sample`` and both ``log_prob``; any dimension. ``n``: the number of samples, an
    integer >= 2. Returns ``(estimate, standard_error)`` with the standard error ``std / sqrt(n)``.
    ``generator`` (a ``torch.Generator`` or a non-negative int seed) makes the draw reproducible
    without touching the global RNG; ``None`` draws from the global RNG.
    """
    d = resolve(div, **options)
    try:
        n = integer_number(n, lo=2)
    except ValueError as err:
        raise ValueError(f"n={n!r} not allowed: {err} (the number of samples)") from None
    if generator is None:
        x = q.sample((n,))
    else:
        if isinstance(generator, torch.Generator):
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        else:
            try:
                seed = seed_number(generator)
            except ValueError:
                raise ValueError(
                    f"generator={generator!r} not allowed: must be a torch.Generator, an integer seed "
                    f"in [0, 2**64 - 1], or None"
                ) from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x = q.sample((n,))
    with torch.no_grad():
        lr = _log_prob64(p, x) - _log_prob64(q, x)
        vals = d.f(torch.exp(lr))
    est = float(vals.mean())
    se = float(vals.std(unbiased=True)) / math.sqrt(n)
    return est, se
