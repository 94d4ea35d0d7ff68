r"""Wasserstein critics under a Lipschitz constraint: train one, and measure the constant it attains.

By Kantorovich--Rubinstein duality (Arjovsky, Chintala & Bottou 2017)

``W_1(P, Q) = \sup_{\|v\|_L \le 1} \mathbb{E}_P[v] - \mathbb{E}_Q[v]``,

so a critic trained on the ``wgan`` loss estimates ``W_1`` only as well as its Lipschitz constant
is controlled. :func:`fit_wasserstein_critic` trains a critic with one of the three usual controls
(weight clipping, Arjovsky et al. 2017; the gradient penalty, Gulrajani et al. 2017; spectral
normalisation, Miyato et al. 2018), each taken from :mod:`gan_lib.losses.regularisers`.
:func:`attained_lipschitz` then measures, instead of assuming, the constant the trained critic has
over the data: the largest gradient norm at samples of ``P``, of ``Q`` and at points between them,
and the largest slope ``|v(x) - v(y)| / \|x - y\|`` over random pairs of those points. Both are
lower bounds on the critic's Lipschitz constant over the convex hull of the points (the critic may
be steeper where no point fell). Only division by an *upper* bound ``\bar L`` on the constant
guarantees ``estimate / \bar L <= W_1`` (up to sampling error), since ``v / \bar L`` is then
1-Lipschitz; the estimate divided by the measured constant is a heuristic normalisation that can
exceed ``W_1``. :func:`critic_estimate` gives the estimate with its standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from gan_lib import losses as _losses
from gan_lib.losses.regularisers import apply_spectral_norm, clip_weights_, gradient_penalty, input_gradients
from gan_lib.validation import integer_number, one_of, real_number

from .gan import History

__all__ = [
    "CONSTRAINTS",
    "fit_wasserstein_critic",
    "CriticEstimate",
    "critic_estimate",
    "LipschitzEstimate",
    "attained_lipschitz",
]

Sampler = Callable[[int], Tensor]

#: How :func:`fit_wasserstein_critic` keeps the critic Lipschitz: ``clip`` (weights clamped to
#: ``[-clip, clip]`` after every step), ``gp`` (two-sided gradient penalty of weight ``gp_weight``
#: at random interpolates), ``sn`` (spectral normalisation of every linear layer), ``none``.
CONSTRAINTS: tuple[str, ...] = ("clip", "gp", "sn", "none")


def _values(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The critic's outputs on ``x`` as one value per sample: ``(n,)`` from ``(n,)`` or ``(n, 1)``."""
    out = critic(x)
    if not isinstance(out, Tensor) or not out.is_floating_point():
        raise TypeError("the critic must return a floating-point tensor")
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (x.shape[0],):
        raise ValueError(
            f"the critic must return one value per sample, shape ({x.shape[0]},) or ({x.shape[0]}, 1); "
            f"got {tuple(out.shape)}"
        )
    return out


def _dtype(module: nn.Module) -> torch.dtype:
    for prm in module.parameters():
        return prm.dtype
    return torch.get_default_dtype()


def _check_points(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, d) with n >= 1; got {tuple(x.shape)}")


def fit_wasserstein_critic(
    critic: nn.Module,
    sample_p: Sampler,
    sample_q: Sampler,
    *,
    constraint: str,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    clip: float = 0.01,
    gp_weight: float = 10.0,
    log_every: int = 50,
    progress: bool = False,
    desc: str = "critic",
) -> History:
    r"""Train ``critic`` to maximise ``\mathbb{E}_P[v] - \mathbb{E}_Q[v]`` under ``constraint``.

    The loss is the registered ``wgan`` discriminator loss ``\mathbb{E}_Q[v] - \mathbb{E}_P[v]``,
    minimised by Adam (``lr``, ``betas``) for ``steps`` steps on fresh batches
    ``sample_p(batch_size)``, ``sample_q(batch_size)`` of shape ``(n, d)``. ``constraint`` is one
    of :data:`CONSTRAINTS`: ``"clip"`` clamps every parameter to ``[-clip, clip]`` after each step
    (:func:`~gan_lib.losses.regularisers.clip_weights_`); ``"gp"`` adds
    :func:`~gan_lib.losses.regularisers.gradient_penalty` with weight ``gp_weight`` and target 1;
    ``"sn"`` applies :func:`~gan_lib.losses.regularisers.apply_spectral_norm` to ``critic`` *in
    place* before training (so the module is changed for good); ``"none"`` trains unconstrained.
    The critic maps ``(n, d)`` to ``(n,)`` or ``(n, 1)``. Returns the :class:`History` of the batch
    estimate ``E_P v - E_Q v`` (key ``estimate``) and the loss with penalty (``loss``).
    """
    if not isinstance(critic, nn.Module):
        raise TypeError(f"critic must be a torch.nn.Module; got {type(critic).__name__}")
    try:
        constraint = one_of(*CONSTRAINTS)(constraint)
    except ValueError:
        raise ValueError(f"constraint={constraint!r} is not allowed; choose one of {', '.join(CONSTRAINTS)}") from None
    for name, value in (("steps", steps), ("batch_size", batch_size), ("log_every", log_every)):
        try:
            integer_number(value, lo=1)
        except ValueError:
            raise ValueError(f"{name}={value!r} must be an integer >= 1") from None
    for name, value in (("lr", lr), ("clip", clip), ("gp_weight", gp_weight)):
        try:
            ok = real_number(value) > 0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{name}={value!r} must be a finite number > 0")
    if constraint == "sn":
        apply_spectral_norm(critic)
    if not any(True for _ in critic.parameters()):
        raise ValueError("the critic has no parameters to train")
    wgan = _losses.get("wgan")
    opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
    critic.train()
    history = History()
    for step in tqdm(range(1, steps + 1), desc=desc, disable=not progress, mininterval=1.0):
        x_p, x_q = sample_p(batch_size), sample_q(batch_size)
        v_p, v_q = _values(critic, x_p), _values(critic, x_q)
        gap = wgan.discriminator(v_p, v_q)
        loss = gap
        if constraint == "gp":
            loss = loss + gradient_penalty(lambda x: _values(critic, x), x_p, x_q, weight=gp_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if constraint == "clip":
            clip_weights_(critic, clip)
        if step % log_every == 0 or step == steps:
            history.append({"step": step, "estimate": -gap.item(), "loss": loss.item()})
    return history


@dataclass(frozen=True)
class CriticEstimate:
    """``value = mean_P v - mean_Q v`` of a critic on two samples, with its standard error
    ``se = sqrt(var_P(v)/n_p + var_Q(v)/n_q)``."""

    value: float
    se: float


def _evaluate(critic: nn.Module, x: Tensor, chunk: int) -> Tensor:
    dtype = _dtype(critic)
    with torch.no_grad():
        return torch.cat([_values(critic, x[i : i + chunk].to(dtype)) for i in range(0, x.shape[0], chunk)]).double()


def _eval_mode(critic: nn.Module) -> bool:
    """Put ``critic`` in eval mode (spectral norm then stops its power iteration); return the old mode."""
    was_training = critic.training
    critic.eval()
    return was_training


def critic_estimate(critic: nn.Module, x_p: Tensor, x_q: Tensor, chunk: int = 65536) -> CriticEstimate:
    r"""The critic's estimate ``\mathbb{E}_P[v] - \mathbb{E}_Q[v]`` on samples ``x_p ~ P``, ``x_q ~ Q``
    (``(n, d)`` each), in float64, without gradients, in eval mode, with its standard error."""
    _check_points("x_p", x_p)
    _check_points("x_q", x_q)
    was_training = _eval_mode(critic)
    try:
        v_p, v_q = _evaluate(critic, x_p, chunk), _evaluate(critic, x_q, chunk)
    finally:
        critic.train(was_training)
    var_p = float(v_p.var()) if v_p.numel() > 1 else 0.0
    var_q = float(v_q.var()) if v_q.numel() > 1 else 0.0
    return CriticEstimate(float(v_p.mean() - v_q.mean()), math.sqrt(var_p / v_p.numel() + var_q / v_q.numel()))


@dataclass(frozen=True)
class LipschitzEstimate:
    """The Lipschitz constant a critic attains over the data, measured two ways (both lower bounds
    on its Lipschitz constant over the convex hull of the points):

    - ``gradient``: the largest ``\\|\\nabla_x v\\|_2`` at the samples of ``P`` and ``Q`` and at
      ``n_interpolates`` points ``\\epsilon x_p + (1 - \\epsilon) x_q`` between them;
    - ``pairs``: the largest ``|v(x) - v(y)| / \\|x - y\\|_2`` over ``n_pairs`` random pairs of
      those points (pairs closer than ``min_distance`` are skipped).
    """

    gradient: float
    pairs: float
    n_points: int
    n_pairs: int


def attained_lipschitz(
    critic: nn.Module,
    x_p: Tensor,
    x_q: Tensor,
    *,
    n_pairs: int = 100_000,
    seed: int = 0,
    min_distance: float = 1e-6,
    chunk: int = 65536,
) -> LipschitzEstimate:
    r"""Measure the Lipschitz constant ``critic`` attains over samples ``x_p ~ P`` and ``x_q ~ Q``.

    The points are ``x_p``, ``x_q`` and ``min(n_p, n_q)`` interpolates
    ``\epsilon_i x_{p,i} + (1 - \epsilon_i) x_{q,i}``, ``\epsilon_i \sim U[0, 1]`` (the points a
    gradient penalty sees). Gradients come from autograd in float64 where the critic allows it
    (its own dtype otherwise); pairs are drawn uniformly with replacement among the points, from a
    generator seeded with ``seed``. The critic is evaluated in eval mode (spectral normalisation
    then uses its stored singular vectors) and restored to its mode afterwards.
    """
    _check_points("x_p", x_p)
    _check_points("x_q", x_q)
    if x_p.shape[1] != x_q.shape[1]:
        raise ValueError(f"x_p has dimension {x_p.shape[1]} but x_q has {x_q.shape[1]}")
    try:
        n_pairs = integer_number(n_pairs, lo=1)
    except ValueError:
        raise ValueError(f"n_pairs={n_pairs!r} must be an integer >= 1") from None
    if not (isinstance(min_distance, (int, float)) and min_distance >= 0):
        raise ValueError(f"min_distance={min_distance!r} must be a number >= 0")
    gen = torch.Generator().manual_seed(int(seed))
    m = min(x_p.shape[0], x_q.shape[0])
    dtype = _dtype(critic)
    eps = torch.rand(m, 1, generator=gen, dtype=torch.float64)
    between = eps * x_p[:m].double() + (1.0 - eps) * x_q[:m].double()
    points = torch.cat([x_p.double(), x_q.double(), between]).to(dtype)
    was_training = _eval_mode(critic)
    try:
        norms = []
        for i in range(0, points.shape[0], chunk):
            x = points[i : i + chunk].detach().clone().requires_grad_(True)
            grad = input_gradients(lambda z: _values(critic, z), x, create_graph=False)
            norms.append(torch.linalg.vector_norm(grad.double(), dim=1))
        grad_max = float(torch.cat(norms).max())
        values = _evaluate(critic, points, chunk)
    finally:
        critic.train(was_training)
    i = torch.randint(points.shape[0], (n_pairs,), generator=gen)
    j = torch.randint(points.shape[0], (n_pairs,), generator=gen)
    dist = torch.linalg.vector_norm(points[i].double() - points[j].double(), dim=1)
    keep = dist > min_distance
    slopes = (values[i] - values[j]).abs()[keep] / dist[keep]
    pair_max = float(slopes.max()) if slopes.numel() else 0.0
    return LipschitzEstimate(grad_max, pair_max, int(points.shape[0]), int(keep.sum()))
