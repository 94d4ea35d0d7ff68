r"""Estimating f-divergences from samples by training critics on the variational lower bound.

For a convex ``f`` with conjugate ``f^*`` (Nowozin, Cseke & Tomioka 2016, ``nowozin2016fgan``)

``D_f(P||Q) = \int q f(p/q)  >=  sup_T  E_P[T(x)] - E_Q[f^*(T(x))]``,

with equality at ``T^*(x) = f'(p(x)/q(x))``. A critic network outputs a raw value ``v(x)``; the
divergence's output activation gives ``T = g_f(v)``. Training maximises the bound on a training
sample; the *estimate* is the bound evaluated on fresh, held-out samples, an unbiased estimate of
the bound of the trained critic and therefore (up to sampling noise) below ``D_f``.

Several critics are trained at once by a :class:`BatchedMLP`: ``K`` independent MLPs stored as
batched weight tensors, so one optimisation loop trains critics for different divergences,
widths and training-set sizes together. Member ``k`` has its own parameters, its own divergence,
its own hidden width (narrower members are zero-masked copies of the widest, which is exactly a
smaller network: masked weights get zero gradients and stay zero under Adam) and its own number of
training samples (the first ``n_train[k]`` rows of the shared pools). The members' losses are
summed; since parameters are disjoint each member receives the gradient of its own loss only, and
Adam acts elementwise, so the result is the same as training the critics one by one with the
same mini-batches.

The same stack trains one classifier per proper scoring rule in chapter 3 (:func:`stacked_loss`).

Training uses the library's f-GAN discriminator losses (``gan_lib.losses.get("fgan_<name>")``),
the estimate uses :func:`gan_lib.divergences.variational_bound`'s ingredients
(``activation`` and ``conjugate_of_activation``), so nothing about ``f`` is restated here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from gan_lib import losses as _losses
from gan_lib.divergences import FDivergence, quad_expectation
from gan_lib.divergences.scoring import ScoringRule, get_rule
from gan_lib.nets import BatchedMLP

__all__ = [
    "BoundEstimate",
    "OptimalMoments",
    "fgan_loss_for",
    "stacked_loss",
    "fit_critics",
    "bound_estimates",
    "critic_outputs",
    "optimal_critic_moments",
]

def fgan_loss_for(div: FDivergence, clamp: bool = True) -> _losses.GANLoss:
    """The registered f-GAN loss ``fgan_<div.name>`` for ``div`` (with its ``alpha``), clamped where possible."""
    spec = _losses.REGISTRY[f"fgan_{div.name}"]
    options: dict[str, object] = {}
    if div.alpha is not None:
        options["alpha"] = div.alpha
    if clamp and "clamp" in spec.options:
        options["clamp"] = True
    return _losses.get(f"fgan_{div.name}", **options)


def _as_list(value: int | Sequence[int], k: int, name: str) -> list[int]:
    values = [int(value)] * k if isinstance(value, (int,)) else [int(v) for v in value]
    if len(values) != k:
        raise ValueError(f"{name} has {len(values)} entries but there are {k} divergences")
    return values


def fit_critics(
    divs: Sequence[FDivergence],
    x_p: Tensor,
    x_q: Tensor,
    *,
    widths: int | Sequence[int] = 32,
    n_train: int | Sequence[int] | None = None,
    depth: int = 2,
    steps: int = 1000,
    batch_size: int = 512,
    lr: float = 2e-3,
    seed: int = 0,
    clamp: bool = True,
    threads: int | None = 1,
    progress: bool = True,
    desc: str = "critics",
) -> BatchedMLP:
    r"""Train one critic per entry of ``divs`` to maximise its f-GAN bound; return the :class:`BatchedMLP`.

    ``x_p`` (samples of P, the data) and ``x_q`` (of Q, the model) are training pools of shape
    ``(N, d)``; member ``k`` draws its mini-batches (with replacement) from the first
    ``n_train[k]`` rows of each (default: all ``N``). ``widths`` is one hidden width or one per
    member. Adam with learning rate ``lr``, ``steps`` steps of ``batch_size`` samples from each
    pool. The loss is the library's ``fgan_<name>`` discriminator loss (``-`` the bound), summed
    over members; ``clamp`` clamps raw outputs to the divergence's float-safe range.

    ``threads``: torch intra-op threads *during this call* (restored afterwards; ``None`` keeps the
    current setting). The tensors are tiny (a few hundred rows), so extra threads only add
    synchronisation; on a shared 2-core machine two threads were up to ten times slower than one.
    """
    divs = list(divs)
    k = len(divs)
    if k == 0:
        raise ValueError("divs is empty; give at least one FDivergence")
    for name, x in (("x_p", x_p), ("x_q", x_q)):
        if x.ndim != 2:
            raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (N, d)")
    if x_p.shape[1] != x_q.shape[1]:
        raise ValueError(f"x_p has dimension {x_p.shape[1]} but x_q has {x_q.shape[1]}")
    pool = min(x_p.shape[0], x_q.shape[0])
    ns = _as_list(pool if n_train is None else n_train, k, "n_train")
    if min(ns) < 1 or max(ns) > pool:
        raise ValueError(f"n_train={ns} must lie in [1, {pool}] (the size of the smaller pool)")
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r} must be an integer >= 1")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads={threads!r} must be None or an integer >= 1")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr={lr} must be a finite number > 0")
    gen = torch.Generator().manual_seed(int(seed))
    bank = BatchedMLP(x_p.shape[1], _as_list(widths, k, "widths"), depth=depth, generator=gen)
    loss_fns = [fgan_loss_for(d, clamp=clamp).discriminator for d in divs]
    x_p = x_p.to(torch.float32)
    x_q = x_q.to(torch.float32)
    n_col = torch.tensor(ns, dtype=torch.float32).reshape(k, 1)
    opt = torch.optim.Adam(bank.parameters(), lr=lr)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        for _ in tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0):
            ip = (torch.rand(k, batch_size, generator=gen) * n_col).long()
            iq = (torch.rand(k, batch_size, generator=gen) * n_col).long()
            v_p = bank(x_p[ip])
            v_q = bank(x_q[iq])
            loss = sum(fn(v_p[i], v_q[i]) for i, fn in enumerate(loss_fns))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            opt.step()
    finally:
        torch.set_num_threads(old_threads)
    return bank


@dataclass(frozen=True)
class BoundEstimate:
    """The bound ``mean_P T - mean_Q f^*(T)`` of one critic on a sample, with its pieces.

    ``se`` is the standard error ``sqrt(var_P(T)/n_p + var_Q(f^*(T))/n_q)``; ``sd_p`` and ``sd_q``
    are the per-sample standard deviations of ``T`` under P and of ``f^*(T)`` under Q.
    """

    value: float
    se: float
    mean_p: float
    mean_q: float
    sd_p: float
    sd_q: float


def bound_estimates(
    divs: Sequence[FDivergence], bank: BatchedMLP, x_p: Tensor, x_q: Tensor, chunk: int = 65536
) -> list[BoundEstimate]:
    """Evaluate every member's bound on samples ``x_p ~ P``, ``x_q ~ Q`` (no gradients, float64 sums)."""
    divs = list(divs)
    if len(divs) != len(bank):
        raise ValueError(f"{len(divs)} divergences for a bank of {len(bank)} critics")
    v_p = critic_outputs(bank, x_p, chunk)
    v_q = critic_outputs(bank, x_q, chunk)
    out = []
    for i, d in enumerate(divs):
        t_p = d.activation(v_p[i].double())
        c_q = d.conjugate_of_activation(v_q[i].double())
        mp, mq = float(t_p.mean()), float(c_q.mean())
        sp, sq = float(t_p.std()), float(c_q.std())
        se = math.sqrt(sp**2 / t_p.numel() + sq**2 / c_q.numel())
        out.append(BoundEstimate(mp - mq, se, mp, mq, sp, sq))
    return out


def critic_outputs(bank: BatchedMLP, x: Tensor, chunk: int = 65536) -> Tensor:
    """Raw outputs ``v`` of every member on ``x`` (``(n, d)`` -> ``(K, n)``), in chunks, without gradients."""
    with torch.no_grad():
        parts = [bank(x[i : i + chunk].to(torch.float32)) for i in range(0, x.shape[0], chunk)]
    return torch.cat(parts, dim=1)


@dataclass(frozen=True)
class OptimalMoments:
    """Means and variances of the bound's two terms at the optimal critic ``T^* = f'(p/q)``.

    ``bound = mean_p - mean_q`` equals ``D_f(P||Q)``; a bound estimated from ``n`` samples of each
    distribution at ``T^*`` has standard error ``sqrt((var_p + var_q) / n)``.
    """

    bound: float
    mean_p: float
    mean_q: float
    var_p: float
    var_q: float

    @property
    def sd(self) -> float:
        """Per-sample-pair standard deviation ``sqrt(var_p + var_q)``."""
        return math.sqrt(self.var_p + self.var_q)


def optimal_critic_moments(
    div: FDivergence,
    p: object,
    q: object,
    lo: float | None = None,
    hi: float | None = None,
    via: str = "activation",
    with_variance: bool = True,
) -> OptimalMoments:
    r"""``E_P[T^*]``, ``E_Q[f^*(T^*)]`` and their variances for 1-D densities, by adaptive quadrature.

    ``p``, ``q``: 1-D distributions with ``log_prob`` (and ``mean``/``stddev`` when ``lo``/``hi``
    are not given; each expectation then runs over its own distribution's ``mean ± 12 stddev``).
    ``T^*(x) = f'(p(x)/q(x))`` is ``div.t_star`` of the ratio. ``via="activation"`` evaluates the
    terms as training does, from the raw value ``v^* = g_f^{-1}(T^*)`` through ``div.activation`` and
    ``div.conjugate_of_activation``; ``via="table"`` uses ``T^*`` and the table's ``div.f_star``.
    ``with_variance=False`` skips the two variance integrals (they are then ``nan``).
    """
    if via not in ("activation", "table"):
        raise ValueError(f"via={via!r} must be 'activation' or 'table'")

    def ratio(x: Tensor) -> Tensor:
        return torch.exp(p.log_prob(x).double() - q.log_prob(x).double())  # type: ignore[attr-defined]

    def term_p(x: Tensor) -> Tensor:
        t = div.t_star(ratio(x))
        return div.activation(div.activation_inverse(t)) if via == "activation" else t

    def term_q(x: Tensor) -> Tensor:
        t = div.t_star(ratio(x))
        return div.conjugate_of_activation(div.activation_inverse(t)) if via == "activation" else div.f_star(t)

    mean_p = quad_expectation(term_p, p, lo, hi)
    mean_q = quad_expectation(term_q, q, lo, hi)
    if not with_variance:
        return OptimalMoments(mean_p - mean_q, mean_p, mean_q, math.nan, math.nan)
    var_p = quad_expectation(lambda x: (term_p(x) - mean_p) ** 2, p, lo, hi)
    var_q = quad_expectation(lambda x: (term_q(x) - mean_q) ** 2, q, lo, hi)
    return OptimalMoments(mean_p - mean_q, mean_p, mean_q, var_p, var_q)


def stacked_loss(rules: Sequence[ScoringRule | str]) -> Callable[[Tensor, Tensor], Tensor]:
    """Loss for a :class:`gan_lib.nets.BatchedMLP` of classifiers: ``sum_k rules[k].loss(v_real[k], v_fake[k])``.

    The members share no parameter, so the gradient of the sum with respect to member ``k`` is the
    gradient of rule ``k``'s loss alone.
    """
    resolved = [get_rule(r) if isinstance(r, str) else r for r in rules]
    if not resolved:
        raise ValueError("give at least one scoring rule")

    def loss(v_real: Tensor, v_fake: Tensor) -> Tensor:
        if v_real.shape[0] != len(resolved) or v_fake.shape[0] != len(resolved):
            raise ValueError(
                f"logits have {v_real.shape[0]} and {v_fake.shape[0]} members (rows); expected {len(resolved)}"
            )
        return sum(rule.loss(v_real[k], v_fake[k]) for k, rule in enumerate(resolved))

    return loss
