"""Low-dimensional distributions with known densities, for experiments whose answer is known.

Everything here is a thin layer over :mod:`torch.distributions`: a distribution exposes
``log_prob(x)`` and ``sample(shape)``, which is all the quadrature and Monte-Carlo code in
:mod:`gan_lib.divergences` needs.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import distributions as td

from gan_lib.validation import integer_number, real_number

__all__ = ["mixture_1d", "gaussian_1d", "gaussian_nd", "mixture_nd", "grid_1d"]


def _as_vector(name: str, values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if t.numel() == 0:
        raise ValueError(f"{name} is empty; give at least one component")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}={t.tolist()} contains a non-finite value; all must be finite")
    return t


def _real(name: str, value: Any) -> float:
    try:
        return real_number(value)
    except ValueError as err:
        raise ValueError(f"{name}={value!r} not allowed: {err}") from None


def mixture_1d(
    means: Sequence[float], stds: Sequence[float], weights: Sequence[float] | None = None
) -> td.MixtureSameFamily:
    """A 1-D Gaussian mixture ``sum_k w_k N(mean_k, std_k^2)`` (float64).

    ``weights`` default to equal; they are normalised to sum to one.
    """
    mu = _as_vector("means", means)
    sd = _as_vector("stds", stds)
    if sd.shape != mu.shape:
        raise ValueError(f"stds has {sd.numel()} entries but means has {mu.numel()}; they must match")
    if (sd <= 0).any():
        raise ValueError(f"stds={sd.tolist()} must all be > 0")
    w = torch.ones_like(mu) if weights is None else _as_vector("weights", weights)
    if w.shape != mu.shape:
        raise ValueError(f"weights has {w.numel()} entries but means has {mu.numel()}; they must match")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights={w.tolist()} must be >= 0 with a positive sum")
    return td.MixtureSameFamily(td.Categorical(probs=w / w.sum()), td.Normal(mu, sd))


def gaussian_1d(mean: float, std: float) -> td.Normal:
    """A 1-D Gaussian ``N(mean, std^2)`` in float64 (``mean`` finite, ``std`` finite and > 0)."""
    m = _real("mean", mean)
    try:
        sd = real_number(std)
    except ValueError:
        sd = math.nan
    if not sd > 0:
        raise ValueError(f"std={std!r} must be > 0 and finite (a real number)")
    return td.Normal(torch.tensor(m, dtype=torch.float64), torch.tensor(sd, dtype=torch.float64))


def gaussian_nd(mean: Sequence[float], cov: Sequence[Sequence[float]]) -> td.MultivariateNormal:
    """A d-dimensional Gaussian ``N(mean, cov)`` in float64 (cov must be symmetric positive definite)."""
    mu = _as_vector("mean", mean)
    S = torch.as_tensor(cov, dtype=torch.float64)
    if S.shape != (mu.numel(), mu.numel()):
        raise ValueError(f"cov has shape {tuple(S.shape)}; expected ({mu.numel()}, {mu.numel()})")
    if not torch.isfinite(S).all():
        raise ValueError(f"cov={S.tolist()} contains a non-finite value; all must be finite")
    if not torch.allclose(S, S.T):
        raise ValueError("cov must be symmetric")
    if torch.linalg.eigvalsh(S).min() <= 0:
        raise ValueError("cov must be positive definite")
    return td.MultivariateNormal(mu, covariance_matrix=S)


def mixture_nd(
    means: Sequence[Sequence[float]], stds: Sequence[float], weights: Sequence[float] | None = None
) -> td.MixtureSameFamily:
    """A d-dimensional mixture of isotropic Gaussians ``sum_k w_k N(mean_k, std_k^2 I)`` (float64)."""
    mu = torch.as_tensor(means, dtype=torch.float64)
    if mu.ndim != 2 or mu.numel() == 0:
        raise ValueError(f"means must be a non-empty (K, d) array; got shape {tuple(mu.shape)}")
    if not torch.isfinite(mu).all():
        raise ValueError(f"means={mu.tolist()} contains a non-finite value; all must be finite")
    sd = _as_vector("stds", stds)
    if sd.numel() != mu.shape[0]:
        raise ValueError(f"stds has {sd.numel()} entries but there are {mu.shape[0]} means")
    if (sd <= 0).any():
        raise ValueError(f"stds={sd.tolist()} must all be > 0")
    w = torch.ones(mu.shape[0], dtype=torch.float64) if weights is None else _as_vector("weights", weights)
    if w.numel() != mu.shape[0] or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights={w.tolist()} must be {mu.shape[0]} values >= 0 with a positive sum")
    comp = td.Independent(td.Normal(mu, sd[:, None].expand_as(mu)), 1)
    return td.MixtureSameFamily(td.Categorical(probs=w / w.sum()), comp)


def grid_1d(lo: float, hi: float, n: int = 4001) -> torch.Tensor:
    """An evenly spaced float64 grid on ``[lo, hi]`` with ``n`` points, for plots and quadrature.

    ``lo < hi`` finite real numbers, ``n`` an integer >= 2."""
    a, b = _real("lo", lo), _real("hi", hi)
    if not b > a:
        raise ValueError(f"grid_1d needs hi > lo; got lo={lo}, hi={hi}")
    try:
        count = integer_number(n, lo=2)
    except ValueError:
        raise ValueError(f"grid_1d needs an integer n >= 2; got n={n!r}") from None
    return torch.linspace(a, b, count, dtype=torch.float64)
