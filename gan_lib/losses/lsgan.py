r"""Least-squares GAN (Mao et al. 2017).

The discriminator regresses its raw output ``v`` onto a code: ``b`` for real, ``a`` for fake; the
generator pulls the fakes' outputs towards ``c``:

``D: \tfrac12\mathbb{E}_P[(v - b)^2] + \tfrac12\mathbb{E}_Q[(v - a)^2]``,
``G: \tfrac12\mathbb{E}_Q[(v - c)^2]``.

The optimal discriminator is ``D^*(x) = (b\,p(x) + a\,q(x)) / (p(x) + q(x))``. With
``b - c = 1`` and ``b - a = 2`` (``preset="pearson"``: ``a=-1, b=1, c=0``) the generator, given
``D^*`` and with the ``G``-independent term ``\tfrac12\mathbb{E}_P[(D^* - c)^2]`` added back,
minimises ``\tfrac12\int (q - p)^2/(p + q)`` (Mao et al. 2017, Thm. 1; see Hsieh's notes), which
they write ``\tfrac12\chi^2_{\mathrm{Pearson}}(P + Q \| 2Q)``; in this library's convention
``D_f(A\|B) = \int b\, f(a/b)`` (denominator from the second argument) it is
``\tfrac12\chi^2_{\mathrm{Pearson}}(2Q \| P + Q)``. The default ``a=0, b=1, c=1`` is the 0-1 coding
the paper uses in its experiments.

Registered name: ``lsgan`` (options ``a``, ``b``, ``c``, ``preset``).
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor
from gan_lib.validation import one_of, real_number

from .registry import LossParts, LossSpec, Option, register

__all__ = ["lsgan_discriminator", "lsgan_generator", "LSGAN_PRESETS"]

LSGAN_PRESETS: dict[str, dict[str, float]] = {
    "pearson": {"a": -1.0, "b": 1.0, "c": 0.0},
}
"""Named codings: ``pearson`` satisfies ``b - c = 1, b - a = 2`` (Pearson chi^2 of Mao et al.)."""

_DEFAULTS = {"a": 0.0, "b": 1.0, "c": 1.0}


def lsgan_discriminator(d_real: Tensor, d_fake: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    r"""LSGAN discriminator loss (Mao et al. 2017).

    ``\tfrac12\mathbb{E}_P[(v - b)^2] + \tfrac12\mathbb{E}_Q[(v - a)^2]``; minimised by
    ``D^* = (b\,p + a\,q)/(p + q)``.
    """
    return 0.5 * (d_real - b).square().mean() + 0.5 * (d_fake - a).square().mean()


def lsgan_generator(d_fake: Tensor, c: float = 1.0) -> Tensor:
    r"""LSGAN generator loss ``\tfrac12\mathbb{E}_Q[(v - c)^2]`` (Mao et al. 2017)."""
    return 0.5 * (d_fake - c).square().mean()


def _lsgan_factory(a: float, b: float, c: float, preset: Optional[str]) -> LossParts:
    if preset is not None:
        coding = LSGAN_PRESETS[preset]
        given = {k: v for k, v in (("a", a), ("b", b), ("c", c)) if v != _DEFAULTS[k] and v != coding[k]}
        if given:
            raise ValueError(
                f"lsgan: preset={preset!r} sets a, b, c = {coding['a']}, {coding['b']}, {coding['c']}; "
                f"do not also pass {', '.join(f'{k}={v}' for k, v in given.items())}"
            )
        a, b, c = coding["a"], coding["b"], coding["c"]
    if a == b:
        raise ValueError(f"lsgan: the real code b={b} must differ from the fake code a={a}")

    def discriminator(d_real: Tensor, d_fake: Tensor) -> Tensor:
        return lsgan_discriminator(d_real, d_fake, a=a, b=b)

    def generator(d_fake: Tensor) -> Tensor:
        return lsgan_generator(d_fake, c=c)

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
                "named coding; overrides a, b, c",
            ),
        },
        factory=_lsgan_factory,
        summary="Least squares on raw outputs; a=-1, b=1, c=0 minimises a Pearson chi^2 divergence.",
    )
)
