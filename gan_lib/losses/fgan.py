r"""f-GAN losses (Nowozin, Cseke & Tomioka 2016), one per divergence of :mod:`gan_lib.divergences`.

With ``P`` the data, ``Q`` the model, raw critic output ``v`` and output activation ``g_f``, the
variational lower bound on ``D_f(P\|Q) = \int q f(p/q)`` is

``V(v) = \mathbb{E}_P[g_f(v)] - \mathbb{E}_Q[f^*(g_f(v))] \le D_f(P\|Q)``,

with equality at ``g_f(v^*) = f'(p/q)``. The discriminator minimises ``-V``. The generator either
minimises the bound itself, ``-\mathbb{E}_Q[f^*(g_f(v))]`` (``generator="minimax"``, the default),
or ``-\mathbb{E}_Q[g_f(v)]`` (``generator="nonsaturating"``, the heuristic of Nowozin et al. §3.2,
which for the GAN divergence is the usual ``-\log D``).

Nothing here restates ``f`` or ``f^*``: the losses call ``div.activation`` and
``div.conjugate_of_activation`` (``f^*(g_f(v))`` computed stably from the raw ``v``) of the
:class:`~gan_lib.divergences.FDivergence` objects, so the book's table, the divergences and the
losses cannot disagree.

Registered names: ``fgan_<name>`` for every name in :data:`gan_lib.divergences.DIVERGENCES`
(``kl``, ``reverse_kl``, ``pearson``, ``neyman``, ``squared_hellinger``, ``jeffrey``,
``jensen_shannon``, ``gan``, ``total_variation``, ``alpha``). Options: ``generator``; ``alpha``
(``fgan_alpha`` only, any finite value except 0 and 1); ``clamp`` where the divergence can grow
exponentially.

Safe logit ranges: ``GANLoss.safe_logit_range`` is the divergence's ``safe_logit_range``, inside
which ``g_f``, ``f^*(g_f)`` and their derivatives stay below ``e^{70}`` in float32/bfloat16:
``kl`` ``v \le 71``; ``reverse_kl`` and ``neyman`` ``v \ge -70``; ``squared_hellinger``
``|v| \le 70``; ``jeffrey`` ``v \le 70``; ``alpha`` for ``0 < \alpha < 1`` ``v`` below roughly
``70(1-\alpha)/\alpha`` (68.6 at ``\alpha = 0.5``) and for large ``\alpha > 1`` a polynomial bound
(exact values: ``get_divergence("alpha", alpha=...).safe_logit_range``); ``None`` (finite for all
``|v| \le 10^4``) for ``pearson``, ``jensen_shannon``, ``gan``, ``total_variation`` and
``alpha < 0``. Outside the range values overflow to ``inf`` unless ``clamp=True``, which clamps
the raw outputs to the range first (finite everywhere; zero gradient outside the range).
"""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from gan_lib.divergences import DIVERGENCES, FDivergence, get_divergence
from gan_lib.validation import alpha_number, boolean, one_of

from .registry import (
    LossParts,
    LossSpec,
    LossTerms,
    Option,
    Weights,
    clamp_to_range,
    reduce_real_fake,
    reduce_terms,
    register,
)

__all__ = ["fgan_discriminator", "fgan_generator_minimax", "fgan_generator_nonsaturating", "FGAN_NAMES"]


def fgan_discriminator(
    div: FDivergence,
    d_real: Tensor,
    d_fake: Tensor,
    *,
    reduction: str = "mean",
    weights_real: Weights = None,
    weights_fake: Weights = None,
) -> Tensor | LossTerms:
    r"""f-GAN discriminator loss ``-\mathbb{E}_P[g_f(v)] + \mathbb{E}_Q[f^*(g_f(v))]`` (Nowozin et al. 2016, Eq. 6).

    Its negation is the variational lower bound on ``D_f(P\|Q)``, tight at ``g_f(v) = f'(p/q)``:
    mean-reduced and unweighted, the loss is minus :func:`gan_lib.divergences.variational_bound`
    (both are built from the divergence's ``activation`` and ``conjugate_of_activation``). The
    per-sample terms are ``-g_f(v)`` on the reals and ``f^*(g_f(v))`` on the fakes.
    """
    return reduce_real_fake(
        div.activation(d_real),
        div.conjugate_of_activation(d_fake),
        reduction,
        weights_real,
        weights_fake,
        scale_real=-1.0,
    )


def fgan_generator_minimax(
    div: FDivergence, d_fake: Tensor, *, reduction: str = "mean", weights: Weights = None
) -> Tensor:
    r"""f-GAN generator loss minimising the bound: ``-\mathbb{E}_Q[f^*(g_f(v))]`` (Nowozin et al. 2016, Eq. 6)."""
    return reduce_terms(div.conjugate_of_activation(d_fake), reduction, weights, scale=-1.0)


def fgan_generator_nonsaturating(
    div: FDivergence, d_fake: Tensor, *, reduction: str = "mean", weights: Weights = None
) -> Tensor:
    r"""f-GAN non-saturating generator loss ``-\mathbb{E}_Q[g_f(v)]`` (Nowozin et al. 2016, §3.2)."""
    return reduce_terms(div.activation(d_fake), reduction, weights, scale=-1.0)


_GENERATORS: dict[str, tuple[Callable[..., Tensor], str]] = {
    "minimax": (fgan_generator_minimax, r"-\mathbb{E}_Q[f^*(g_f(v))]"),
    "nonsaturating": (fgan_generator_nonsaturating, r"-\mathbb{E}_Q[g_f(v)]"),
}

_D_FORMULA = r"-\mathbb{E}_P[g_f(v)] + \mathbb{E}_Q[f^*(g_f(v))]"


def _factory_for(name: str) -> Callable[..., LossParts]:
    def factory(generator: str, clamp: bool = False, **div_options: Any) -> LossParts:
        div = get_divergence(name, **div_options)
        safe = div.safe_logit_range
        g_fn, g_formula = _GENERATORS[generator]

        if clamp and safe is not None:

            def discriminator(d_real: Tensor, d_fake: Tensor, **reduce: Any) -> Tensor | LossTerms:
                return fgan_discriminator(div, clamp_to_range(d_real, safe), clamp_to_range(d_fake, safe), **reduce)

            def gen(d_fake: Tensor, **reduce: Any) -> Tensor:
                return g_fn(div, clamp_to_range(d_fake, safe), **reduce)

        else:

            def discriminator(d_real: Tensor, d_fake: Tensor, **reduce: Any) -> Tensor | LossTerms:
                return fgan_discriminator(div, d_real, d_fake, **reduce)

            def gen(d_fake: Tensor, **reduce: Any) -> Tensor:
                return g_fn(div, d_fake, **reduce)

        discriminator.__doc__ = f"fgan_discriminator for the {div.label} divergence."
        gen.__doc__ = f"fgan_generator_{generator} for the {div.label} divergence."
        where = rf"f: {div.label},\ g_f(v) = {div.activation_tex},\ f^*(t) = {div.f_star_tex}"
        return LossParts(discriminator, gen, _D_FORMULA, g_formula, safe, where=where)

    return factory


_GENERATOR_OPTION = Option(
    "minimax",
    one_of("minimax", "nonsaturating"),
    "'minimax' (minimise the bound, -E_Q f*(g_f(v))) or 'nonsaturating' (-E_Q g_f(v))",
    "which generator objective (Nowozin et al. 2016, §3.2)",
)
_ALPHA_OPTION = Option(
    0.5,
    alpha_number,
    "a finite real number other than 0 and 1",
    "order of the alpha-divergence",
)
_CLAMP_OPTION = Option(
    False,
    boolean,
    "True or False",
    "clamp raw outputs to the divergence's safe logit range first (finite everywhere; zero gradient outside)",
)

FGAN_NAMES: tuple[str, ...] = tuple(f"fgan_{name}" for name in DIVERGENCES)
"""Registry names of the f-GAN losses, in the order of :data:`gan_lib.divergences.DIVERGENCES`."""

for _name in DIVERGENCES:
    _options: dict[str, Option] = {"generator": _GENERATOR_OPTION}
    if _name == "alpha":
        _options["alpha"] = _ALPHA_OPTION
        _options["clamp"] = _CLAMP_OPTION
        _label = "the alpha-divergence family"
    else:
        _div = get_divergence(_name)
        if _div.safe_logit_range is not None:
            _options["clamp"] = _CLAMP_OPTION
        _label = f"the {_div.label} divergence"
    register(
        LossSpec(
            name=f"fgan_{_name}",
            family="f-gan",
            citation="nowozin2016fgan",
            options=_options,
            factory=_factory_for(_name),
            summary=f"f-GAN variational bound for {_label}.",
        )
    )
