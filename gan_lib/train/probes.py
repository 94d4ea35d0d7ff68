r"""Probes of a generator step: the gradient a GAN's generator update follows, and the gradient of
the divergence it is meant to follow, for a 1-D Gaussian generator ``x = mu + sigma z``.

A generator step differentiates its loss with the discriminator *frozen*. For a loss
``per_sample(V(x))`` of the logit, with the optimal logit ``V = log p - log q`` held fixed at the
current model ``Q = N(mu, sigma^2)``, :func:`frozen_gradient` gives the population gradient of that
step exactly (Gauss--Legendre quadrature in ``z``, autograd in the parameters);
:func:`fd_gradient` gives the gradient of any function of ``(mu, sigma)`` -- a divergence computed
by quadrature, say -- by central differences. Both are in the coordinates ``(mu, log sigma)`` that
:class:`gan_lib.nets.LocationScale` trains. Comparing the two says which divergence a loss descends
(chapter 4).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy.special import roots_legendre
from torch import Tensor

__all__ = ["frozen_gradient", "fd_gradient"]


def _check_scale(mu: float, sigma: float) -> tuple[float, float]:
    mu, sigma = float(mu), float(sigma)
    if not math.isfinite(mu):
        raise ValueError(f"mu={mu!r} must be finite")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma={sigma!r} must be a finite number > 0")
    return mu, sigma


def frozen_gradient(
    per_sample: Callable[[Tensor], Tensor],
    log_p: Callable[[Tensor], Tensor],
    mu: float,
    sigma: float,
    *,
    nodes: int = 400,
    half_width: float = 12.0,
) -> np.ndarray:
    r"""``d/d(mu, log sigma)`` of ``E_{z~N(0,1)}[per_sample(V(mu + sigma z))]`` with
    ``V(x) = log p(x) - log q(x)`` frozen at ``Q = N(mu, sigma^2)``.

    ``per_sample`` maps a float64 tensor of logits to per-sample losses (e.g. a
    ``GeneratorDivergence.objective``); ``log_p`` is the data's log-density (e.g. a distribution's
    ``log_prob``). The expectation is a ``nodes``-point Gauss--Legendre rule on
    ``z in [-half_width, half_width]`` (the default is exact to about ``1e-12`` for smooth
    integrands of moderate growth); only the generator's own ``x = mu + sigma z`` carries the
    gradient, as in a generator step with the discriminator fixed. Returns ``[d/dmu, d/dlog sigma]``.
    """
    mu, sigma = _check_scale(mu, sigma)
    if not (isinstance(nodes, int) and nodes >= 2):
        raise ValueError(f"nodes={nodes!r} must be an integer >= 2")
    if not (math.isfinite(half_width) and half_width > 0):
        raise ValueError(f"half_width={half_width!r} must be a finite number > 0")
    zn, zw = roots_legendre(nodes)
    z = torch.from_numpy(half_width * zn)
    wz = torch.from_numpy(half_width * zw) * torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    q_frozen = torch.distributions.Normal(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))
    m = torch.tensor(mu, dtype=torch.float64, requires_grad=True)
    log_s = torch.tensor(math.log(sigma), dtype=torch.float64, requires_grad=True)
    x = m + log_s.exp() * z
    v = log_p(x) - q_frozen.log_prob(x)
    grads = torch.autograd.grad((wz * per_sample(v)).sum(), [m, log_s])
    return np.array([g.item() for g in grads])


def fd_gradient(fun: Callable[[float, float], float], mu: float, sigma: float, *, eps: float = 1e-5) -> np.ndarray:
    r"""``d/d(mu, log sigma)`` of ``fun(mu, sigma)`` by central differences of step ``eps`` in ``mu``
    and in ``log sigma``. Returns ``[d/dmu, d/dlog sigma]``; the error is ``O(eps^2)`` plus the
    error of ``fun`` divided by ``eps``."""
    mu, sigma = _check_scale(mu, sigma)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps={eps!r} must be a finite number > 0")
    d_mu = (fun(mu + eps, sigma) - fun(mu - eps, sigma)) / (2 * eps)
    d_log_sigma = (fun(mu, sigma * math.exp(eps)) - fun(mu, sigma * math.exp(-eps))) / (2 * eps)
    return np.array([float(d_mu), float(d_log_sigma)])
