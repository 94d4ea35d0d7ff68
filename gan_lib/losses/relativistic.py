r"""Relativistic GANs (Jolicoeur-Martineau 2019): the discriminator judges a real sample *relative to*
a fake one.

``v`` is the raw critic output ``C(x)``; ``\sigma(C(x_r) - C(x_f))`` is the probability that the real
sample is more realistic than the fake one. Written with ``softplus`` (``-\log\sigma(z) =
\mathrm{softplus}(-z)``):

* ``rgan`` (RSGAN, paired): ``D: \mathbb{E}[\mathrm{softplus}(-(v_r - v_f))]``,
  ``G: \mathbb{E}[\mathrm{softplus}(-(v_f - v_r))]``; element ``i`` of ``d_real`` is paired with
  element ``i`` of ``d_fake``.
* ``ragan`` (RaSGAN, relativistic average): each sample is compared with the *batch mean* of the
  other side, ``D: \mathbb{E}_P[\mathrm{softplus}(-(v_r - \bar v_f))] +
  \mathbb{E}_Q[\mathrm{softplus}(v_f - \bar v_r)]`` and ``G`` the same with real and fake swapped.

Both generator halves need ``d_real``; both insist that ``d_real`` and ``d_fake`` have the same
shape (for ``ragan`` this keeps the two batch means over the same number of samples, as in the
paper's algorithm). Nothing is detached: in a generator step, compute ``d_real`` under
``torch.no_grad()`` or zero the discriminator's gradients afterwards.

Reductions (:mod:`gan_lib.losses.registry`): ``rgan`` has one term per pair; ``reduction="none"``
returns it shaped like the pairs, and the discriminator weights pair ``i`` by
``weights_real[i] * weights_fake[i]``, the generator by ``weights[i]``. ``ragan``'s terms share the
batch means, so it takes ``reduction="mean"`` or ``"sum"`` only, without weights.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .registry import (
    LossParts,
    Weights,
    apply_weights,
    check_batch_statistics_call,
    check_same_shape,
    reduce_real_fake,
    reduce_terms,
    register_fixed,
)

__all__ = ["rgan_discriminator", "rgan_generator", "ragan_discriminator", "ragan_generator"]


def rgan_discriminator(
    d_real: Tensor,
    d_fake: Tensor,
    *,
    reduction: str = "mean",
    weights_real: Weights = None,
    weights_fake: Weights = None,
) -> Tensor:
    r"""Relativistic standard GAN, discriminator (Jolicoeur-Martineau 2019).

    ``\mathbb{E}[\mathrm{softplus}(-(v_r - v_f))] = -\mathbb{E}[\log\sigma(v_r - v_f)]``, pairs ``(v_r[i], v_f[i])``;
    pair ``i`` is weighted by ``weights_real[i] * weights_fake[i]``.
    """
    check_same_shape("rgan", d_real, d_fake)
    pairs = apply_weights(F.softplus(d_fake - d_real), weights_real, "weights_real", "d_real")
    return reduce_terms(pairs, reduction, weights_fake, name="weights_fake")


def rgan_generator(d_fake: Tensor, d_real: Tensor, *, reduction: str = "mean", weights: Weights = None) -> Tensor:
    r"""Relativistic standard GAN, generator (Jolicoeur-Martineau 2019).

    ``\mathbb{E}[\mathrm{softplus}(-(v_f - v_r))] = -\mathbb{E}[\log\sigma(v_f - v_r)]``, pairs ``(v_f[i], v_r[i])``.
    """
    check_same_shape("rgan", d_real, d_fake)
    return reduce_terms(F.softplus(d_real - d_fake), reduction, weights)


_RAGAN_COUPLING = "the batch means of the other side"


def _ragan(first: Tensor, second: Tensor, reduction: str) -> Tensor:
    # -E[log sigma(first - mean second)] - E[log(1 - sigma(second - mean first))]
    return reduce_real_fake(F.softplus(second.mean() - first), F.softplus(second - first.mean()), reduction)


def _ragan_rows(first: Tensor, second: Tensor) -> Tensor:
    # _ragan(first[k], second[k], "mean") for every row k of (K, n) inputs: the batch means per row
    return (F.softplus(second.mean(-1, keepdim=True) - first).mean(-1)
            + F.softplus(second - first.mean(-1, keepdim=True)).mean(-1))


def ragan_discriminator(
    d_real: Tensor,
    d_fake: Tensor,
    *,
    reduction: str = "mean",
    weights_real: Weights = None,
    weights_fake: Weights = None,
) -> Tensor:
    r"""Relativistic average GAN, discriminator (Jolicoeur-Martineau 2019).

    ``\mathbb{E}_P[\mathrm{softplus}(-(v_r - \bar v_f))] + \mathbb{E}_Q[\mathrm{softplus}(v_f - \bar v_r)]``
    with ``\bar v`` the batch means; ``reduction`` ``"mean"`` or ``"sum"``, no per-sample weights.
    """
    check_same_shape("ragan", d_real, d_fake)
    reduction = check_batch_statistics_call(
        "ragan", _RAGAN_COUPLING, reduction, weights_real=weights_real, weights_fake=weights_fake
    )
    return _ragan(d_real, d_fake, reduction)


def ragan_generator(d_fake: Tensor, d_real: Tensor, *, reduction: str = "mean", weights: Weights = None) -> Tensor:
    r"""Relativistic average GAN, generator (Jolicoeur-Martineau 2019).

    ``\mathbb{E}_Q[\mathrm{softplus}(-(v_f - \bar v_r))] + \mathbb{E}_P[\mathrm{softplus}(v_r - \bar v_f)]``;
    ``reduction`` ``"mean"`` or ``"sum"``, no per-sample weights.
    """
    check_same_shape("ragan", d_real, d_fake)
    reduction = check_batch_statistics_call("ragan", _RAGAN_COUPLING, reduction, weights=weights)
    return _ragan(d_fake, d_real, reduction)


register_fixed(
    "rgan", "relativistic", "jolicoeur2019relativistic",
    LossParts(
        rgan_discriminator,
        rgan_generator,
        r"\mathbb{E}[\mathrm{softplus}(-(v_r - v_f))]",
        r"\mathbb{E}[\mathrm{softplus}(-(v_f - v_r))]",
    ),
    "Relativistic standard GAN: real vs fake judged in pairs.",
    requires_real_in_generator=True,
    paired=True,
)
register_fixed(
    "ragan", "relativistic", "jolicoeur2019relativistic",
    LossParts(
        ragan_discriminator,
        ragan_generator,
        r"\mathbb{E}_P[\mathrm{softplus}(\bar v_f - v_r)] + \mathbb{E}_Q[\mathrm{softplus}(v_f - \bar v_r)]",
        r"\mathbb{E}_Q[\mathrm{softplus}(\bar v_r - v_f)] + \mathbb{E}_P[\mathrm{softplus}(v_r - \bar v_f)]",
        discriminator_rows=_ragan_rows,
        generator_rows=_ragan_rows,  # (d_fake, d_real): the same form with the sides swapped
    ),
    "Relativistic average GAN: each sample against the other side's batch mean.",
    requires_real_in_generator=True,
    paired=True,
    batch_statistics=True,
)
