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
* ``kl_hinge`` (Song & Ermon 2020, "KL-WGAN"): the hinge loss with the fake critic values
  reweighted within the batch by ``r_i = e^{v_i} / \mathrm{mean}_j e^{v_j}`` (``n`` times a
  softmax, so stable for any logits): the optimal weights of their objective
  ``\min_{r \in \Delta(Q)} \mathbb{E}_Q[f(r) - r v]`` for the KL ``f``. The weights couple the
  samples of a batch, so the loss depends on the batch size, and it takes ``reduction="mean"``
  or ``"sum"`` only, without per-sample weights (``GANLoss.batch_statistics``).
* ``chi2_hinge`` ("chi^2-WGAN", derived here from the objective of Song & Ermon 2020, who name it
  but release no code for it): the same hinge loss with the weights that solve that problem for the
  Pearson ``f(u) = (u - 1)^2``, ``r_i = \max(0, 1 + (v_i - \lambda)/2)`` with ``\lambda`` making
  the mean weight one (:func:`chi2_batch_weights`, the Euclidean projection of ``1 + v/2`` onto
  the weights with mean one, found exactly by sorting).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from gan_lib.validation import boolean

from .registry import (
    LossParts,
    LossSpec,
    LossTerms,
    Option,
    Weights,
    check_batch_statistics_call,
    reduce_real_fake,
    reduce_terms,
    register,
    register_fixed,
)

__all__ = [
    "wgan_discriminator",
    "hinge_discriminator",
    "ipm_generator",
    "kl_batch_weights",
    "kl_hinge_discriminator",
    "kl_hinge_generator",
    "chi2_batch_weights",
    "chi2_hinge_discriminator",
    "chi2_hinge_generator",
]


def wgan_discriminator(
    d_real: Tensor,
    d_fake: Tensor,
    *,
    reduction: str = "mean",
    weights_real: Weights = None,
    weights_fake: Weights = None,
) -> Tensor | LossTerms:
    r"""Wasserstein critic loss ``\mathbb{E}_Q[v] - \mathbb{E}_P[v]`` (Arjovsky et al. 2017).

    Its negation at the optimal 1-Lipschitz critic is ``W_1(P, Q)``. Per-sample terms: ``-v`` on
    the reals, ``v`` on the fakes.
    """
    return reduce_real_fake(d_real, d_fake, reduction, weights_real, weights_fake, scale_real=-1.0)


def hinge_discriminator(
    d_real: Tensor,
    d_fake: Tensor,
    *,
    reduction: str = "mean",
    weights_real: Weights = None,
    weights_fake: Weights = None,
) -> Tensor | LossTerms:
    r"""Hinge critic loss (Lim & Ye 2017).

    ``\mathbb{E}_P[\mathrm{relu}(1 - v)] + \mathbb{E}_Q[\mathrm{relu}(1 + v)]``; minimised by
    ``v^* = \mathrm{sign}(p - q)`` with minimum ``2 - 2\,TV(P, Q)``.
    """
    return reduce_real_fake(F.relu(1.0 - d_real), F.relu(1.0 + d_fake), reduction, weights_real, weights_fake)


def ipm_generator(d_fake: Tensor, *, reduction: str = "mean", weights: Weights = None) -> Tensor:
    r"""Generator loss of WGAN and hinge GAN: ``-\mathbb{E}_Q[v]`` (Arjovsky et al. 2017; Lim & Ye 2017)."""
    return reduce_terms(d_fake, reduction, weights, scale=-1.0)


_G = r"-\mathbb{E}_Q[v]"

register_fixed(
    "wgan", "ipm", "arjovsky2017wgan",
    LossParts(wgan_discriminator, ipm_generator, r"\mathbb{E}_Q[v] - \mathbb{E}_P[v]", _G),
    "Wasserstein-1 critic (needs a Lipschitz constraint: clipping, gradient penalty, spectral norm).",
)
register_fixed(
    "hinge", "ipm", "lim2017geometric",
    LossParts(
        hinge_discriminator,
        ipm_generator,
        r"\mathbb{E}_P[\mathrm{relu}(1 - v)] + \mathbb{E}_Q[\mathrm{relu}(1 + v)]",
        _G,
    ),
    "Hinge critic (Geometric GAN, SNGAN); generator as in WGAN.",
)


def kl_batch_weights(d_fake: Tensor, dim: int | None = None) -> Tensor:
    r"""In-batch KL weights ``r_i = e^{v_i} / \tfrac1n\sum_j e^{v_j} = n\,\mathrm{softmax}(v)_i`` (Song & Ermon 2020).

    Same shape as ``d_fake``; the weights are positive and average to one. ``dim=None``: all of
    ``d_fake`` is one batch; ``dim=d``: every slice along ``d`` is a batch of its own (e.g. ``-1``
    for ``(K, n)`` critic values of ``K`` independent batches).
    """
    _check_floating(d_fake)
    if dim is not None:
        return d_fake.shape[dim] * torch.softmax(d_fake, dim=dim)
    weights = d_fake.numel() * torch.softmax(d_fake.flatten(), dim=0)  # flatten: no copy, no node for 1-D
    return weights if d_fake.dim() == 1 else weights.reshape(d_fake.shape)


def chi2_batch_weights(d_fake: Tensor, dim: int | None = None) -> Tensor:
    r"""In-batch chi^2 weights ``r_i = \max(0, 1 + (v_i - \lambda)/2)``, ``\tfrac1n\sum_i r_i = 1``.

    The minimiser of ``\tfrac1n\sum_i [(r_i - 1)^2 - r_i v_i]`` over ``r_i \ge 0`` with mean one,
    the Pearson case of the objective ``\min_{r \in \Delta(Q)} \mathbb{E}_Q[f(r) - r v]`` of Song &
    Ermon (2020): since ``(r - 1)^2 - r v = (r - 1 - v/2)^2 - v - v^2/4``, it is the Euclidean
    projection of ``1 + v/2`` onto ``\{r \ge 0, \sum_i r_i = n\}`` (a sparsemax, Martins &
    Astudillo 2016). With the values sorted, ``v_{(1)} \ge \dots \ge v_{(n)}``, the support is the
    ``k`` largest, ``k`` the largest index with ``1 + (v_{(k)} - \lambda_k)/2 > 0`` where
    ``\lambda_k = \tfrac1k\sum_{j \le k} v_{(j)} + 2 - 2n/k``; then ``\lambda = \lambda_k``.
    Exact (no bisection), invariant to a shift of ``v``; where no weight is clipped,
    ``r_i = 1 + (v_i - \bar v)/2``. Same shape and dtype as ``d_fake`` (float16 / bfloat16 are
    computed in float32); gradients flow through the sort and ``\lambda``. An empty ``d_fake`` gives
    empty weights. ``dim`` as in :func:`kl_batch_weights`: ``None`` for one batch, ``d`` for
    independent batches along ``d``.
    """
    _check_floating(d_fake)
    if d_fake.numel() == 0:  # no batch, no weights (as kl_batch_weights); the losses refuse the empty batch themselves
        return torch.ones_like(d_fake)
    # the batches along the last axis: (B, n)
    rows = d_fake.flatten().unsqueeze(0) if dim is None else d_fake.movedim(dim, -1)
    v = rows.float() if rows.dtype in (torch.float16, torch.bfloat16) else rows
    # measured from each batch's largest value (a constant: the weights do not change, nor their
    # gradients), so that the cumulative sums stay small and a large common offset costs no digits
    v = v - v.detach().amax(-1, keepdim=True)
    n = v.shape[-1]
    ordered = torch.sort(v, dim=-1, descending=True).values
    k = torch.arange(1, n + 1, dtype=v.dtype, device=v.device)
    lam_k = (torch.cumsum(ordered, -1) + 2.0 * (k - n)) / k
    support = (1.0 + 0.5 * (ordered - lam_k)) > 0  # a prefix of the sorted values; k = 1 always in it
    last = (support.sum(-1, keepdim=True) - 1).clamp(min=0)
    lam = torch.gather(lam_k, -1, last)
    weights = torch.relu(1.0 + 0.5 * (v - lam)).to(d_fake.dtype)
    return weights.reshape(d_fake.shape) if dim is None else weights.movedim(-1, dim)


def _check_floating(d_fake: Any) -> None:
    if not isinstance(d_fake, Tensor) or not d_fake.is_floating_point():
        kind = d_fake.dtype if isinstance(d_fake, Tensor) else type(d_fake).__name__
        raise TypeError(f"the in-batch weights need a floating-point tensor of critic values; got {kind}")


def _wide(t: Tensor) -> Tensor:
    """``t`` in float32 when it is float16 / bfloat16 (else ``t`` itself)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _weighted_fake(d_fake: Tensor, detach_weights: bool, batch_weights: Any = kl_batch_weights,
                   dim: int | None = None) -> Tensor:
    """``r v`` per sample; in float32 for float16 / bfloat16 values, since a weight may reach ``n``
    and ``r v`` then leaves float16's range (65504) long before the loss, a mean, does.

    Where a weight is zero the term is zero: a critic value of ``-inf`` (a fake the critic rules
    out, e.g. a log-density ratio outside the data's support) gets weight 0, and ``r v`` tends to
    0 as ``v -> -inf`` (KL: ``r = O(e^v)``; chi^2: ``r = 0`` below the threshold) where the product
    would give ``0 * (-inf) = nan``. The value is zeroed before the product, so no ``nan`` reaches
    the gradients either; for finite values nothing changes (a weight computed as 0 passes no
    gradient, through the softmax or the relu, and its term is 0 either way). A batch whose values
    are all ``-inf``, or any ``+inf``, has no weights (``nan``).
    """
    v = _wide(d_fake)
    weights = batch_weights(v, dim=dim)
    v_kept = torch.where(weights == 0, 0.0, v)
    return v_kept * (weights.detach() if detach_weights else weights)


def _result_dtype(d_real: Tensor, d_fake: Tensor) -> torch.dtype:
    """The result type of two ``(K, n)`` tensors (``torch.result_type`` breaks ``torch.compile``'s
    graph; ``torch.promote_types`` is a dispatched call, made only when the dtypes differ)."""
    return d_real.dtype if d_real.dtype == d_fake.dtype else torch.promote_types(d_real.dtype, d_fake.dtype)


def _weighted_hinge_rows(d_real: Tensor, d_fake: Tensor, detach_weights: bool, batch_weights: Any) -> Tensor:
    """The mean-reduced f-WGAN hinge critic loss of every row of ``(K, n)`` inputs (one batch per row)."""
    weighted = _weighted_fake(d_fake, detach_weights, batch_weights, dim=-1)
    out = F.relu(1.0 - _wide(d_real)).mean(-1) + F.relu(1.0 + weighted).mean(-1)
    return out.to(_result_dtype(d_real, d_fake))


def _weighted_generator_rows(d_fake: Tensor, detach_weights: bool, batch_weights: Any) -> Tensor:
    """``-E_Q[r v]`` of every row of ``(K, n)`` fake critic values (one batch per row)."""
    return _weighted_fake(d_fake, detach_weights, batch_weights, dim=-1).mean(-1).neg().to(d_fake.dtype)


_KL_COUPLING = "the in-batch softmax weights r = n softmax(v_fake)"


def kl_hinge_discriminator(
    d_real: Tensor,
    d_fake: Tensor,
    detach_weights: bool = False,
    *,
    reduction: str = "mean",
    weights_real: Weights = None,
    weights_fake: Weights = None,
) -> Tensor:
    r"""KL-WGAN critic loss (Song & Ermon 2020).

    ``\mathbb{E}_P[\mathrm{relu}(1 - v)] + \mathbb{E}_Q[\mathrm{relu}(1 + r v)]`` with
    ``r = n\,\mathrm{softmax}(v_{fake})`` over the batch (:func:`kl_batch_weights`); gradients flow
    through ``r`` unless ``detach_weights``. The weights couple the fakes of a batch: ``reduction``
    ``"mean"`` or ``"sum"`` only, and no per-sample weights. A fake value of ``-inf`` counts as its
    limit (weight 0, term 0); all ``-inf`` or any ``+inf`` give ``nan``.
    """
    reduction = check_batch_statistics_call(
        "kl_hinge", _KL_COUPLING, reduction, weights_real=weights_real, weights_fake=weights_fake
    )
    out = reduce_real_fake(F.relu(1.0 - _wide(d_real)), F.relu(1.0 + _weighted_fake(d_fake, detach_weights)), reduction)
    return out.to(_result_dtype(d_real, d_fake))


def kl_hinge_generator(
    d_fake: Tensor, detach_weights: bool = False, *, reduction: str = "mean", weights: Weights = None
) -> Tensor:
    r"""KL-WGAN generator loss ``-\mathbb{E}_Q[r v]``, ``r = n\,\mathrm{softmax}(v_{fake})`` (Song & Ermon 2020).

    ``reduction`` ``"mean"`` or ``"sum"`` only, and no per-sample weights (the ``r`` couple the batch).
    A fake value of ``-inf`` counts as its limit (weight 0, term 0); all ``-inf`` or any ``+inf`` give ``nan``.
    """
    reduction = check_batch_statistics_call("kl_hinge", _KL_COUPLING, reduction, weights=weights)
    return reduce_terms(_weighted_fake(d_fake, detach_weights), reduction, scale=-1.0).to(d_fake.dtype)


_CHI2_COUPLING = "the in-batch chi^2 weights r = max(0, 1 + (v_fake - lambda)/2) with mean 1"


def chi2_hinge_discriminator(
    d_real: Tensor,
    d_fake: Tensor,
    detach_weights: bool = False,
    *,
    reduction: str = "mean",
    weights_real: Weights = None,
    weights_fake: Weights = None,
) -> Tensor:
    r"""chi^2-WGAN critic loss, the Pearson case of Song & Ermon (2020).

    ``\mathbb{E}_P[\mathrm{relu}(1 - v)] + \mathbb{E}_Q[\mathrm{relu}(1 + r v)]`` with
    ``r_i = \max(0, 1 + (v_i - \lambda)/2)`` over the batch (:func:`chi2_batch_weights`); gradients
    flow through ``r`` unless ``detach_weights``. ``reduction`` ``"mean"`` or ``"sum"`` only, and no
    per-sample weights (the ``r`` couple the fakes of a batch). A fake value of ``-inf`` counts as
    its limit (weight 0, term 0); all ``-inf`` or any ``+inf`` give ``nan``.
    """
    reduction = check_batch_statistics_call(
        "chi2_hinge", _CHI2_COUPLING, reduction, weights_real=weights_real, weights_fake=weights_fake
    )
    weighted = _weighted_fake(d_fake, detach_weights, chi2_batch_weights)
    out = reduce_real_fake(F.relu(1.0 - _wide(d_real)), F.relu(1.0 + weighted), reduction)
    return out.to(_result_dtype(d_real, d_fake))


def chi2_hinge_generator(
    d_fake: Tensor, detach_weights: bool = False, *, reduction: str = "mean", weights: Weights = None
) -> Tensor:
    r"""chi^2-WGAN generator loss ``-\mathbb{E}_Q[r v]``, ``r_i = \max(0, 1 + (v_i - \lambda)/2)``.

    ``reduction`` ``"mean"`` or ``"sum"`` only, and no per-sample weights (the ``r`` couple the batch).
    A fake value of ``-inf`` counts as its limit (weight 0, term 0); all ``-inf`` or any ``+inf`` give ``nan``.
    """
    reduction = check_batch_statistics_call("chi2_hinge", _CHI2_COUPLING, reduction, weights=weights)
    return reduce_terms(_weighted_fake(d_fake, detach_weights, chi2_batch_weights), reduction,
                        scale=-1.0).to(d_fake.dtype)


def _register_weighted_hinge(name: str, discriminator_fn: Any, generator_fn: Any, batch_weights: Any,
                             where: str, summary: str) -> None:
    """Register an f-WGAN hinge loss whose fake critic values are reweighted in-batch (one option:
    ``detach_weights``); ``kl_hinge`` and ``chi2_hinge`` differ only in the weights
    (``batch_weights``, also used by the row-wise form)."""

    def factory(detach_weights: bool) -> LossParts:
        def discriminator(d_real: Tensor, d_fake: Tensor, **reduce: Any) -> Tensor:
            return discriminator_fn(d_real, d_fake, detach_weights, **reduce)

        def generator(d_fake: Tensor, **reduce: Any) -> Tensor:
            return generator_fn(d_fake, detach_weights, **reduce)

        def discriminator_rows(d_real: Tensor, d_fake: Tensor) -> Tensor:
            return _weighted_hinge_rows(d_real, d_fake, detach_weights, batch_weights)

        def generator_rows(d_fake: Tensor) -> Tensor:
            return _weighted_generator_rows(d_fake, detach_weights, batch_weights)

        return LossParts(
            discriminator,
            generator,
            r"\mathbb{E}_P[\mathrm{relu}(1 - v)] + \mathbb{E}_Q[\mathrm{relu}(1 + r v)]",
            r"-\mathbb{E}_Q[r v]",
            where=where,
            discriminator_rows=discriminator_rows,
            generator_rows=generator_rows,
        )

    register(
        LossSpec(
            name=name,
            family="ipm",
            citation="song2020bridging",
            options={
                "detach_weights": Option(
                    False, boolean, "True or False", "treat the in-batch weights r as constants in the gradient"
                )
            },
            factory=factory,
            batch_statistics=True,
            summary=summary,
        )
    )


_register_weighted_hinge(
    "kl_hinge",
    kl_hinge_discriminator,
    kl_hinge_generator,
    kl_batch_weights,
    r"r_i = n\,\mathrm{softmax}(v_{\mathrm{fake}})_i",
    "KL-WGAN: hinge loss on fake critic values reweighted in-batch by n*softmax(v).",
)
_register_weighted_hinge(
    "chi2_hinge",
    chi2_hinge_discriminator,
    chi2_hinge_generator,
    chi2_batch_weights,
    r"r_i = \max\big(0, 1 + (v_i - \lambda)/2\big),\ \tfrac1n\textstyle\sum_i r_i = 1",
    "chi^2-WGAN: hinge loss on fake critic values reweighted in-batch by the projection max(0, 1 + (v - lambda)/2).",
)
