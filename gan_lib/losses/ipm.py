r"""Integral-probability-metric losses: the Wasserstein critic and the hinge loss.

The critic's raw output ``v`` is used as is (no activation). Both losses share the generator
half ``-\mathbb{E}_Q[v]`` (one implementation, :func:`ipm_generator`).

* ``wgan`` (Arjovsky, Chintala & Bottou 2017): the critic maximises
  ``\mathbb{E}_P[v] - \mathbb{E}_Q[v]``, which over 1-Lipschitz critics is the Wasserstein-1
  distance (Kantorovich-Rubinstein duality). The Lipschitz constraint is not part of the loss:
  add :func:`~gan_lib.losses.regularisers.gradient_penalty`, weight clipping or spectral norm.
* ``hinge`` (Lim & Ye 2017, "Geometric GAN"; used by Miyato et al. 2018): the critic minimises
  ``\mathbb{E}_P[\mathrm{relu}(1 - v)] + \mathbb{E}_Q[\mathrm{relu}(1 + v)]``, whose pointwise
  optimum is ``v^* = \mathrm{sign}(p - q)`` with minimum ``2 - 2\,TV(P, Q)``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ._registry import LossParts, LossSpec, register

__all__ = ["wgan_discriminator", "hinge_discriminator", "ipm_generator"]


def wgan_discriminator(d_real: Tensor, d_fake: Tensor) -> Tensor:
    r"""Wasserstein critic loss ``\mathbb{E}_Q[v] - \mathbb{E}_P[v]`` (Arjovsky et al. 2017).

    Its negation at the optimal 1-Lipschitz critic is ``W_1(P, Q)``.
    """
    return d_fake.mean() - d_real.mean()


def hinge_discriminator(d_real: Tensor, d_fake: Tensor) -> Tensor:
    r"""Hinge critic loss ``\mathbb{E}_P[\mathrm{relu}(1 - v)] + \mathbb{E}_Q[\mathrm{relu}(1 + v)]`` (Lim & Ye 2017)."""
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def ipm_generator(d_fake: Tensor) -> Tensor:
    r"""Generator loss of WGAN and hinge GAN: ``-\mathbb{E}_Q[v]`` (Arjovsky et al. 2017; Lim & Ye 2017)."""
    return -d_fake.mean()


_G = r"-\mathbb{E}_Q[v]"

register(
    LossSpec(
        name="wgan",
        family="ipm",
        citation="arjovsky2017wgan",
        options={},
        factory=lambda: LossParts(
            wgan_discriminator, ipm_generator, r"\mathbb{E}_Q[v] - \mathbb{E}_P[v]", _G
        ),
        summary="Wasserstein-1 critic (needs a Lipschitz constraint: clipping, gradient penalty, spectral norm).",
    )
)

register(
    LossSpec(
        name="hinge",
        family="ipm",
        citation="lim2017geometric",
        options={},
        factory=lambda: LossParts(
            hinge_discriminator,
            ipm_generator,
            r"\mathbb{E}_P[\mathrm{relu}(1 - v)] + \mathbb{E}_Q[\mathrm{relu}(1 + v)]",
            _G,
        ),
        summary="Hinge critic (Geometric GAN, SNGAN); generator as in WGAN.",
    )
)
