r"""Generator objectives built from the density ratio a standard GAN discriminator estimates.

Poole, Alemi, Sohl-Dickstein & Angelova (2016), "Improved generator objectives for GANs": a
discriminator trained with the usual binary cross-entropy has logit ``V \approx \log(p/q)``
(``P`` data, ``Q`` model), so ``u = p/q \approx e^V`` and the generator can minimise any
f-divergence ``D_{f_G}(P\|Q) = \mathbb{E}_Q[f_G(p/q)]`` through ``\mathbb{E}_Q[f_G(e^V)]``.
The discriminator half of every loss here is the standard BCE.

Registered names:

* ``poole_standard``: ``f_G(u) = \log(1 + 1/u)``, loss ``softplus(-V)``. Same implementation
  as the ``non_saturating`` generator.
* ``poole_rkl``: ``f_G(u) = -\log u`` (reverse KL, ``KL(Q\|P)``), loss ``-V``.
  ``huszar_kl`` is the same loss under the name of Huszár's alternative update rule (the
  generator loss ``\mathbb{E}_Q[\log((1-D)/D)] = -\mathbb{E}_Q[V]``): one implementation, two names.
* ``poole_kl``: ``f_G(u) = u \log u`` (``KL(P\|Q)``), loss ``V e^V``.
* ``poole_alpha``: ``f_G(u) = (u^\alpha - 1 - \alpha(u - 1))/(\alpha(\alpha - 1))``, computed in a
  form that is exact as ``\alpha \to 0`` and as ``\alpha \to 1``
  (:func:`gan_lib.divergences.alpha_f_parts`).

Every function takes ``reduction`` and per-sample ``weights`` as described in
:mod:`gan_lib.losses.registry`.

Safe logit range of the exp-growing losses (``poole_kl``, ``poole_alpha``) in float32 and
bfloat16 (which share float32's exponent range): the logits for which the per-sample value and
its derivative stay below ``e^{EXP_BUDGET} = e^{70}`` (the budget of
:data:`gan_lib.divergences.LOG_SAFE_BUDGET`), so even batch sums of a million terms are finite.
Outside the range the value overflows to ``inf``. By default nothing is clamped, so a diverging
discriminator shows up as ``inf`` rather than as a silently vanishing gradient; ``clamp=True``
clamps the raw outputs to the safe range first (finite for every input, zero gradient outside
the range). float16 overflows already near ``e^{11}``: use float32 or bfloat16 for these losses.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gan_lib.divergences import alpha_f_parts
from gan_lib.divergences.generator import POOLE_NAMES, generator_divergence
from gan_lib.validation import alpha_number, boolean, one_of

from .registry import LossParts, LossSpec, Option, Weights, clamp_to_range, reduce_terms, register, register_fixed
from .minimax import BCE_D, bce_discriminator, non_saturating_generator

__all__ = [
    "EXP_BUDGET",
    "poole_standard_generator",
    "reverse_kl_generator",
    "poole_kl_generator",
    "poole_alpha_generator",
    "poole_kl_safe_range",
    "poole_alpha_safe_range",
]

EXP_BUDGET: float = 70.0
"""Per-sample values and derivatives stay below ``e^EXP_BUDGET`` inside the stated safe ranges."""

poole_standard_generator = non_saturating_generator
"""``GAN-standard`` of Poole et al. (2016): ``\\mathbb{E}_Q[\\mathrm{softplus}(-V)]``, the non-saturating loss."""


def reverse_kl_generator(d_fake: Tensor, *, reduction: str = "mean", weights: Weights = None) -> Tensor:
    r"""Reverse-KL generator loss ``-\mathbb{E}_Q[V]`` (Poole et al. 2016 ``GAN-RKL``; Huszár 2016).

    ``-V = \log((1 - D)/D)`` with ``D = \sigma(V)``; at the optimal discriminator
    (``V^* = \log p - \log q``) it equals ``KL(Q\|P)``. Linear in ``V``: finite for every finite
    logit.
    """
    return reduce_terms(d_fake, reduction, weights, scale=-1.0)


def poole_kl_safe_range() -> tuple[float, float]:
    """Logits for which :func:`poole_kl_generator` is finite with finite gradients in float32/bfloat16.

    ``(-inf, 70 - log 71] = (-inf, 65.74...]``: there ``|V| e^V`` and ``(1 + V) e^V`` stay below ``e^{70}``.
    """
    return (-math.inf, EXP_BUDGET - math.log1p(EXP_BUDGET))


def poole_kl_generator(d_fake: Tensor, *, reduction: str = "mean", weights: Weights = None) -> Tensor:
    r"""KL generator loss ``\mathbb{E}_Q[V e^V]`` (Poole et al. 2016 ``GAN-KL``).

    At the optimal discriminator it equals ``KL(P\|Q) = \mathbb{E}_Q[(p/q)\log(p/q)]`` (mode
    covering). Safe logit range in float32/bfloat16: ``V \le 65.7`` (:func:`poole_kl_safe_range`;
    ``V \to -\infty`` is fine, the loss tends to 0 and is 0 at ``V = -\infty``); larger logits
    overflow to ``inf``.
    """
    # V = -inf would give -inf * 0 = nan: read it as the lowest finite float, where V e^V is (-)0.
    v = d_fake.clamp(min=torch.finfo(d_fake.dtype).min)
    return reduce_terms(v * torch.exp(d_fake), reduction, weights)


def poole_alpha_safe_range(alpha: float) -> tuple[float, float]:
    """Logits for which :func:`poole_alpha_generator` is finite with finite gradients in float32/bfloat16.

    The loss and its derivative ``(e^{alpha V} - e^V)/(alpha - 1)`` are sums of ``e^{alpha V}`` and
    ``e^V`` times prefactors of size at most ``kappa = max(1, 1/|alpha - 1|, 1/|alpha(alpha - 1)|)``.
    With ``B = 70 - log kappa``: ``(-inf, B / max(alpha, 1)]`` for ``alpha > 0`` and
    ``[B / alpha, B]`` for ``alpha < 0``.
    """
    alpha = alpha_number(alpha)
    kappa = max(1.0, 1.0 / abs(alpha - 1.0), 1.0 / abs(alpha * (alpha - 1.0)))
    budget = EXP_BUDGET - math.log(kappa)
    if alpha > 0:
        return (-math.inf, budget / max(alpha, 1.0))
    return (budget / alpha, budget)


def poole_alpha_generator(d_fake: Tensor, alpha: float, *, reduction: str = "mean", weights: Weights = None) -> Tensor:
    r"""Alpha-divergence generator loss (Poole et al. 2016 ``GAN-\alpha``).

    ``\mathbb{E}_Q[(e^{\alpha V} - 1 - \alpha(e^V - 1)) / (\alpha(\alpha - 1))]``, per sample
    :func:`gan_lib.divergences.alpha_f_parts` (the alpha-divergence's ``f`` at ``u = e^V``, exact as
    ``\alpha \to 0`` and ``\alpha \to 1``; its constant factor is applied after the reduction).
    At the optimal discriminator it equals the alpha-divergence ``\mathbb{E}_Q[f_\alpha(p/q)]``; ``alpha -> 1`` gives
    ``KL(P\|Q)`` and ``alpha -> 0`` gives ``KL(Q\|P)``. Safe logit range (float32/bfloat16), for
    ``B = 70 - \log\max(1, 1/|\alpha-1|, 1/|\alpha(\alpha-1)|)``: ``V \le B/\max(\alpha, 1)`` for
    ``\alpha > 0``; ``B/\alpha \le V \le B`` for ``\alpha < 0`` (see :func:`poole_alpha_safe_range`;
    e.g. ``\alpha = 0.5``: ``V \le 68.6``; ``\alpha = 2``: ``V \le 35``). Beyond it the value grows
    past ``e^{70}`` and overflows to ``+inf`` (never NaN).
    """
    numerator, factor = alpha_f_parts(d_fake, alpha_number(alpha))  # f = factor * numerator
    return reduce_terms(numerator, reduction, weights, scale=factor)


_RKL_G = r"-\mathbb{E}_Q[v]"

register_fixed(
    "huszar_kl", "density-ratio", "huszar2016alternative",
    LossParts(bce_discriminator, reverse_kl_generator, BCE_D, _RKL_G),
    "Huszár's alternative generator update E_Q log((1-D)/D); minimises KL(Q||P) at the optimal D. "
    "Same implementation as poole_rkl.",
)
register_fixed(
    "poole_standard", "density-ratio", "poole2016improved",
    LossParts(bce_discriminator, poole_standard_generator, BCE_D, r"\mathbb{E}_Q[\mathrm{softplus}(-v)]"),
    "GAN-standard: f_G(u) = log(1 + 1/u); the non-saturating generator.",
)
register_fixed(
    "poole_rkl", "density-ratio", "poole2016improved",
    LossParts(bce_discriminator, reverse_kl_generator, BCE_D, _RKL_G),
    "GAN-RKL: f_G(u) = -log u, i.e. KL(Q||P) (mode seeking). Same implementation as huszar_kl.",
)

_CLAMP = Option(
    False,
    boolean,
    "True or False",
    "clamp raw outputs to the safe logit range first (finite everywhere; zero gradient outside)",
)


def _poole_kl_factory(clamp: bool) -> LossParts:
    safe = poole_kl_safe_range()
    generator = poole_kl_generator
    if clamp:

        def generator(d_fake: Tensor, **reduce: Any) -> Tensor:
            return poole_kl_generator(clamp_to_range(d_fake, safe), **reduce)

    return LossParts(bce_discriminator, generator, BCE_D, r"\mathbb{E}_Q[v e^{v}]", safe)


register(
    LossSpec(
        name="poole_kl",
        family="density-ratio",
        citation="poole2016improved",
        options={"clamp": _CLAMP},
        factory=_poole_kl_factory,
        summary="GAN-KL: f_G(u) = u log u, i.e. KL(P||Q) (mode covering). Safe for v <= 65.7.",
    )
)


def _poole_alpha_factory(alpha: float, clamp: bool) -> LossParts:
    safe = poole_alpha_safe_range(alpha)

    def generator(d_fake: Tensor, **reduce: Any) -> Tensor:
        return poole_alpha_generator(clamp_to_range(d_fake, safe) if clamp else d_fake, alpha, **reduce)

    generator.__doc__ = f"poole_alpha_generator with alpha={alpha!r}, clamp={clamp!r}."
    a = f"{alpha:g}"
    formula_g = rf"\mathbb{{E}}_Q[(e^{{{a} v}} - 1 - {a}(e^{{v}} - 1)) / ({a}\cdot({a} - 1))]"
    return LossParts(bce_discriminator, generator, BCE_D, formula_g, safe)


register(
    LossSpec(
        name="poole_alpha",
        family="density-ratio",
        citation="poole2016improved",
        options={
            "alpha": Option(
                0.5,
                alpha_number,
                "a finite real number other than 0 and 1",
                "order of the alpha-divergence the generator minimises (1: KL(P||Q), 0: KL(Q||P))",
            ),
            "clamp": _CLAMP,
        },
        factory=_poole_alpha_factory,
        summary="GAN-alpha: the alpha-divergence family between the two KLs.",
    )
)


def _optional_alpha(value: object) -> float | None:
    return None if value is None else alpha_number(value)


def _poole_envelope_factory(divergence: str, alpha: float | None) -> LossParts:
    if divergence == "alpha" and alpha is None:
        raise ValueError("poole_envelope with divergence='alpha' needs alpha=<finite number other than 0 and 1>")
    if divergence != "alpha" and alpha is not None:
        raise ValueError(f"poole_envelope with divergence={divergence!r} takes no alpha (got alpha={alpha!r})")
    gd = generator_divergence(divergence, alpha)

    def generator(d_fake: Tensor, *, reduction: str = "mean", weights: Weights = None) -> Tensor:
        return reduce_terms(gd.envelope_objective(d_fake), reduction, weights)

    generator.__doc__ = f"Envelope generator objective of {gd.label}."
    formula_g = r"\mathbb{E}_Q[" + gd.envelope_tex.replace("V", "v") + "]"
    return LossParts(bce_discriminator, generator, BCE_D, formula_g)


register(
    LossSpec(
        name="poole_envelope",
        family="density-ratio",
        citation="poole2016improved",
        options={
            "divergence": Option(
                "standard",
                one_of(*POOLE_NAMES),
                "one of " + ", ".join(repr(n) for n in POOLE_NAMES),
                "which of Poole et al.'s generator divergences f_G",
            ),
            "alpha": Option(
                None,
                _optional_alpha,
                "None, or (with divergence='alpha') a finite real number other than 0 and 1",
                "order of GAN-alpha",
            ),
        },
        factory=_poole_envelope_factory,
        summary="BCE discriminator; the generator minimises f_G(u) - u f_G'(u) at u = e^v, whose gradient "
        "with the ratio held fixed is that of D_{f_G} itself (chapter 4).",
    )
)
