r"""Least-squares GAN (Mao et al. 2017).

The discriminator regresses its raw output ``v`` onto a code: ``b`` for real, ``a`` for fake; the
generator pulls the fakes' outputs towards ``c``:

``D: \tfrac12\mathbb{E}_P[(v - b)^2] + \tfrac12\mathbb{E}_Q[(v - a)^2]``,
``G: \tfrac12\mathbb{E}_Q[(v - c)^2]``.

The optimal discriminator is ``D^*(x) = (b\,p(x) + a\,q(x)) / (p(x) + q(x))``. With
``b - c = 1`` and ``b - a = 2`` (``preset="pearson"``: ``a=-1, b=1, c=0``) the value at ``D^*``,
the generator's loss plus the term ``\tfrac12\mathbb{E}_P[(D^* - c)^2]`` (which the generator's own
loss leaves out, though it depends on ``Q`` through ``D^*``), is
``\tfrac12\int (q - p)^2/(p + q)`` (Mao et al. 2017, Thm. 1; see Hsieh's notes), which
they write ``\tfrac12\chi^2_{\mathrm{Pearson}}(P + Q \| 2Q)``; in this library's convention
``D_f(A\|B) = \int b\, f(a/b)`` (denominator from the second argument) it is
``\tfrac12\chi^2_{\mathrm{Pearson}}(2Q \| P + Q)``. The default ``a=0, b=1, c=1`` is the 0-1 coding
the paper uses in its experiments.

Registered name: ``lsgan`` (options ``a``, ``b``, ``c``, ``preset``).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from torch import Tensor
from gan_lib.validation import one_of, real_number

from .registry import LossParts, LossSpec, LossTerms, Option, Weights, reduce_real_fake, reduce_terms, register

__all__ = ["lsgan_discriminator", "lsgan_generator", "LSGAN_PRESETS"]

LSGAN_PRESETS: dict[str, dict[str, float]] = {
    "pearson": {"a": -1.0, "b": 1.0, "c": 0.0},
}
"""Named codings: ``pearson`` satisfies ``b - c = 1, b - a = 2`` (Pearson chi^2 of Mao et al.)."""


def lsgan_discriminator(
    d_real: Tensor,
    d_fake: Tensor,
    a: float = 0.0,
    b: float = 1.0,
    *,
    reduction: str = "mean",
    weights_real: Weights = None,
    weights_fake: Weights = None,
) -> Tensor | LossTerms:
    r"""LSGAN discriminator loss (Mao et al. 2017).

    ``\tfrac12\mathbb{E}_P[(v - b)^2] + \tfrac12\mathbb{E}_Q[(v - a)^2]``; minimised by
    ``D^* = (b\,p + a\,q)/(p + q)``.
    """
    return reduce_real_fake(
        (d_real - b).square(),
        (d_fake - a).square(),
        reduction,
        weights_real,
        weights_fake,
        scale_real=0.5,
        scale_fake=0.5,
    )


def lsgan_generator(d_fake: Tensor, c: float = 1.0, *, reduction: str = "mean", weights: Weights = None) -> Tensor:
    r"""LSGAN generator loss ``\tfrac12\mathbb{E}_Q[(v - c)^2]`` (Mao et al. 2017)."""
    return reduce_terms((d_fake - c).square(), reduction, weights, scale=0.5)


def _check_preset_conflicts(given: Mapping[str, Any]) -> None:
    """A preset sets ``a, b, c``: refuse an explicit code that differs from the preset's."""
    preset = given.get("preset")
    if preset is None:
        return
    coding = LSGAN_PRESETS[preset]
    clash = {k: v for k, v in given.items() if k in coding and v != coding[k]}
    if clash:
        raise ValueError(
            f"lsgan: preset={preset!r} sets a={coding['a']:g}, b={coding['b']:g}, c={coding['c']:g}, but "
            f"{', '.join(f'{k}={v!r}' for k, v in clash.items())} was passed as well; allowed: the preset "
            f"alone, the codes alone, or both with equal values"
        )


def _lsgan_factory(a: float, b: float, c: float, preset: Optional[str]) -> LossParts:
    if preset is not None:  # explicit codes that differ were refused by _check_preset_conflicts
        a, b, c = (LSGAN_PRESETS[preset][k] for k in ("a", "b", "c"))
    if a == b:
        raise ValueError(f"lsgan: the real code b={b} must differ from the fake code a={a}")

    def discriminator(d_real: Tensor, d_fake: Tensor, **reduce: Any) -> Tensor | LossTerms:
        return lsgan_discriminator(d_real, d_fake, a=a, b=b, **reduce)

    def generator(d_fake: Tensor, **reduce: Any) -> Tensor:
        return lsgan_generator(d_fake, c=c, **reduce)

    return LossParts(
        discriminator,
        generator,
        rf"\tfrac12\mathbb{{E}}_P[{_square(b)}] + \tfrac12\mathbb{{E}}_Q[{_square(a)}]",
        rf"\tfrac12\mathbb{{E}}_Q[{_square(c)}]",
        options={"a": a, "b": b, "c": c, "preset": preset},
    )


def _square(code: float) -> str:
    if code == 0:
        return "v^2"
    return f"(v - {code:g})^2" if code > 0 else f"(v + {-code:g})^2"


register(
    LossSpec(
        name="lsgan",
        family="least-squares",
        citation="mao2017lsgan",
        options={
            "a": Option(0.0, real_number, "a finite real number", "code the discriminator assigns to fakes"),
            "b": Option(1.0, real_number, "a finite real number != a", "code the discriminator assigns to reals"),
            "c": Option(1.0, real_number, "a finite real number", "value the generator wants fakes to get"),
            "preset": Option(
                None,
                one_of(None, "pearson"),
                "None or 'pearson' (a=-1, b=1, c=0: Pearson chi^2 between 2Q and P+Q)",
                "named coding; sets a, b, c (an explicit a, b or c must then equal the preset's)",
            ),
        },
        factory=_lsgan_factory,
        check_given=_check_preset_conflicts,
        summary="Least squares on raw outputs; a=-1, b=1, c=0 minimises a Pearson chi^2 divergence.",
    )
)
