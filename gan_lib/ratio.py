r"""Density-ratio estimation by classification: train several classifiers at once, score them.

Chapter 3 trains one small classifier per scoring rule (:mod:`gan_lib.scoring`) on the same
batches and asks how well its logit recovers the log density ratio :math:`\log r = \log p - \log q`,
and how close its population score comes to the f-divergence the rule bounds. This module holds the
pieces a second chapter would reuse:

* :class:`StackedMLP`: ``K`` copies of :func:`gan_lib.nets.mlp` evaluated in one batched pass
  (output ``(batch, K)``), all starting from the same weights by default. Their parameters are
  disjoint, so one Adam optimiser over the stack takes exactly the steps ``K`` separate optimisers
  would; :meth:`StackedMLP.member` hands back member ``k`` as a plain ``nn.Sequential``.
* :func:`stacked_loss`: sums rule ``k``'s loss on column ``k`` (the loss function for
  :func:`gan_lib.train.train_discriminator`).
* :func:`logit_function`: a float64 copy of a network as a function of a 1-D grid, for quadrature.
* Quadrature in 1-D (adaptive Gauss--Legendre from :mod:`gan_lib.divergences`):
  :func:`population_risk` :math:`\mathbb{E}_P[\ell_1(v)] + \mathbb{E}_Q[\ell_0(v)]`,
  :func:`implied_divergence` :math:`\int q\, f(p/q)` with a rule's implied ``f``, and
  :func:`log_ratio_rmse`, the error of a logit against :math:`\log r` under the mixture
  :math:`M = (P+Q)/2` the classifier is trained on, optionally restricted to where both densities
  have mass (:math:`|\log r| \le L`).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from gan_lib.divergences import _adaptive_integrate, _auto_bounds, perspective
from gan_lib.nets import mlp
from gan_lib.scoring import ScoringRule, get_rule

__all__ = [
    "StackedMLP",
    "stacked_loss",
    "logit_function",
    "population_risk",
    "implied_divergence",
    "RatioError",
    "log_ratio_rmse",
]

LogitFn = Callable[[Tensor], Tensor]


class StackedMLP(nn.Module):
    """``n_members`` networks ``mlp(in_dim, 1, hidden, depth, activation)`` evaluated side by side.

    ``forward(x)`` maps ``x`` of shape ``(batch, in_dim)`` to logits of shape ``(batch, n_members)``;
    column ``k`` is member ``k``'s output. With ``same_init=True`` (default) every member starts from
    the weights of one freshly initialised :func:`gan_lib.nets.mlp` (PyTorch's default
    initialisation), so differences between members come from their losses alone.
    """

    def __init__(
        self,
        n_members: int,
        in_dim: int = 1,
        hidden: int = 64,
        depth: int = 2,
        activation: str = "leaky_relu",
        *,
        same_init: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(n_members, int) or n_members < 1:
            raise ValueError(f"n_members={n_members!r} must be an integer >= 1")
        template = mlp(in_dim, 1, hidden, depth, activation)
        members = [template] + [
            copy.deepcopy(template) if same_init else mlp(in_dim, 1, hidden, depth, activation)
            for _ in range(n_members - 1)
        ]
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in members]
        # the activation modules are stateless: keep one instance of each
        self.activations = nn.ModuleList([m for m in template if not isinstance(m, nn.Linear)])
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for layer in range(len(linears[0])):
            # stored as (K, fan_in, fan_out) so that forward is a batched x @ W
            w = torch.stack([lin[layer].weight.detach().T for lin in linears])
            b = torch.stack([lin[layer].bias.detach() for lin in linears])
            self.weights.append(nn.Parameter(w.clone()))
            self.biases.append(nn.Parameter(b.clone()))
        self.n_members = n_members
        self.in_dim = in_dim
        self._spec = (in_dim, hidden, depth, activation)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected input of shape (batch, {self.in_dim}); got {tuple(x.shape)}")
        h = x.unsqueeze(0).expand(self.n_members, -1, -1)  # (K, B, in)
        n_layers = len(self.weights)
        for i in range(n_layers):
            h = torch.baddbmm(self.biases[i].unsqueeze(1), h, self.weights[i])
            if i < n_layers - 1:
                h = self.activations[i](h)
        return h.squeeze(-1).T  # (B, K)

    def member(self, k: int) -> nn.Sequential:
        """Member ``k`` as a standalone ``nets.mlp`` with copied weights (same dtype as the stack)."""
        if not 0 <= k < self.n_members:
            raise IndexError(f"member {k} does not exist; the stack has {self.n_members}")
        in_dim, hidden, depth, activation = self._spec
        net = mlp(in_dim, 1, hidden, depth, activation).to(self.weights[0].dtype)
        lins = [m for m in net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for i, lin in enumerate(lins):
                lin.weight.copy_(self.weights[i][k].T)
                lin.bias.copy_(self.biases[i][k])
        return net


def stacked_loss(rules: Sequence[ScoringRule | str]) -> Callable[[Tensor, Tensor], Tensor]:
    """Loss for a :class:`StackedMLP`: ``sum_k rules[k].loss(v_real[:, k], v_fake[:, k])``.

    The members share no parameter, so the gradient of the sum with respect to member ``k`` is the
    gradient of rule ``k``'s loss alone.
    """
    resolved = [get_rule(r) if isinstance(r, str) else r for r in rules]
    if not resolved:
        raise ValueError("give at least one scoring rule")

    def loss(v_real: Tensor, v_fake: Tensor) -> Tensor:
        if v_real.shape[-1] != len(resolved) or v_fake.shape[-1] != len(resolved):
            raise ValueError(
                f"logits have {v_real.shape[-1]} and {v_fake.shape[-1]} columns; expected {len(resolved)}"
            )
        return sum(rule.loss(v_real[..., k], v_fake[..., k]) for k, rule in enumerate(resolved))

    return loss


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
        a, b = _auto_bounds([p, q])
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

    return _adaptive_integrate(integrand, a, b)


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

    return _adaptive_integrate(integrand, a, b)


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
    if max_abs_log_ratio is not None and not max_abs_log_ratio > 0:
        raise ValueError(f"max_abs_log_ratio={max_abs_log_ratio} must be > 0 (or None)")
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

    mass = _adaptive_integrate(lambda x: parts(x)[0], a, b)
    if not mass > 0:
        raise ValueError("the region |log r| <= max_abs_log_ratio has no mass; raise max_abs_log_ratio")
    mse = _adaptive_integrate(weighted_sq, a, b)
    return RatioError(rmse=math.sqrt(mse / mass), mass=mass)
