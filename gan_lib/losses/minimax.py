"""The original GAN game (Goodfellow et al. 2014) and its non-saturating generator.

The discriminator outputs a logit ``v``; ``D(x) = sigmoid(v(x))`` is its probability that ``x`` is
real. Everything is written with ``softplus`` so no probability is ever formed:
``-log D = softplus(-v)`` and ``-log(1 - D) = softplus(v)``.

Every function takes ``reduction`` and per-sample weights as described in
:mod:`gan_lib.losses.registry`.

Registered names: ``minimax``, ``non_saturating``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .registry import LossParts, LossTerms, Weights, reduce_real_fake, reduce_terms, register_fixed

__all__ = ["bce_discriminator", "minimax_generator", "non_saturating_generator"]

BCE_D = r"\mathbb{E}_P[\mathrm{softplus}(-v)] + \mathbb{E}_Q[\mathrm{softplus}(v)]"


def bce_discriminator(
    d_real: Tensor,
    d_fake: Tensor,
    *,
    reduction: str = "mean",
    weights_real: Weights = None,
    weights_fake: Weights = None,
) -> Tensor | LossTerms:
    r"""Binary cross-entropy of the discriminator, the negated GAN value function (Goodfellow et al. 2014).

    ``\mathbb{E}_P[\mathrm{softplus}(-v)] + \mathbb{E}_Q[\mathrm{softplus}(v)]
    = -\mathbb{E}_P[\log D] - \mathbb{E}_Q[\log(1 - D)]``, ``D = \sigma(v)``.
    At the optimum ``v^* = \log p - \log q`` it equals ``\log 4 - 2\,\mathrm{JSD}(P, Q)``.
    """
    return reduce_real_fake(F.softplus(-d_real), F.softplus(d_fake), reduction, weights_real, weights_fake)


def minimax_generator(d_fake: Tensor, *, reduction: str = "mean", weights: Weights = None) -> Tensor:
    r"""Saturating (minimax) generator loss (Goodfellow et al. 2014).

    ``\mathbb{E}_Q[\log(1 - \sigma(v))] = -\mathbb{E}_Q[\mathrm{softplus}(v)]``; its gradient vanishes
    when the discriminator confidently rejects the fakes (``v \to -\infty``).
    """
    return reduce_terms(F.softplus(d_fake), reduction, weights, scale=-1.0)


def non_saturating_generator(d_fake: Tensor, *, reduction: str = "mean", weights: Weights = None) -> Tensor:
    r"""Non-saturating generator loss ``-\log D`` (Goodfellow et al. 2014, §3).

    ``-\mathbb{E}_Q[\log \sigma(v)] = \mathbb{E}_Q[\mathrm{softplus}(-v)]``. With the optimal
    discriminator it equals ``KL(Q\|P) - 2\,JSD + \mathbb{E}_P[\log D^*] + \log 4``; Poole et al.
    (2016) call it ``GAN-standard``, the f-divergence with ``f_G(u) = \log(1 + 1/u)``.
    """
    return reduce_terms(F.softplus(-d_fake), reduction, weights)


register_fixed(
    "minimax", "standard", "goodfellow2014gan",
    LossParts(bce_discriminator, minimax_generator, BCE_D, r"-\mathbb{E}_Q[\mathrm{softplus}(v)]"),
    "The original zero-sum GAN game; the generator minimises E_Q log(1 - D).",
)
register_fixed(
    "non_saturating", "standard", "goodfellow2014gan",
    LossParts(bce_discriminator, non_saturating_generator, BCE_D, r"\mathbb{E}_Q[\mathrm{softplus}(-v)]"),
    "The GAN used in practice: same discriminator, the generator minimises -E_Q log D.",
)
