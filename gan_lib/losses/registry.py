"""Machinery of the loss registry: option specs, loss specs, the :class:`GANLoss` object, ``get``.

A loss family module (``minimax.py``, ``fgan.py``, ...) defines pure functions of raw
discriminator outputs and calls :func:`register` once per name with a :class:`LossSpec`. The
spec knows the loss's options (defaults, what is allowed) and a ``factory`` that turns validated
options into the two halves of the game. :func:`get` validates a user's options and returns a
:class:`GANLoss`, the object trainers and notebooks use.

Conventions, shared by every registered loss:

* Inputs are raw discriminator outputs ``v`` (logits or critic values, before any activation),
  any shape; every loss is mean-reduced over all elements to a scalar.
* ``P`` is the data distribution (``d_real = v(x), x ~ P``), ``Q`` the model
  (``d_fake = v(G(z))``).
* Both halves are *minimised*: ``discriminator(d_real, d_fake)`` by the discriminator,
  ``generator(d_fake, d_real)`` by the generator.
* Nothing is detached: the caller decides which parameters a loss is differentiated against.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

from torch import Tensor


__all__ = [
    "Option",
    "LossSpec",
    "LossParts",
    "GANLoss",
    "REGISTRY",
    "register",
    "get",
    "names",
    "table",
    "check_logits",
    "check_same_shape",
    "clamp_to_range",
]

DiscriminatorFn = Callable[[Tensor, Tensor], Tensor]
GeneratorFn = Callable[..., Tensor]
SafeRange = Optional[tuple[float, float]]


@dataclass(frozen=True)
class Option:
    """One option of a registered loss.

    Attributes:
        default: value used when the caller does not pass the option.
        validate: callable returning the normalised value or raising ``ValueError``.
        allowed: human-readable description of the allowed values (used in error messages).
        doc: one line saying what the option does.
    """

    default: Any
    validate: Callable[[Any], Any]
    allowed: str
    doc: str = ""


class LossParts(NamedTuple):
    """What a spec's factory returns for one choice of options."""

    discriminator: DiscriminatorFn
    generator: GeneratorFn
    formula_d: str
    formula_g: str
    safe_logit_range: SafeRange = None
    options: Optional[Mapping[str, Any]] = None  # resolved options, when the factory changes them (presets)
    where: str = ""  # definitions appended to the one-line formula (e.g. g_f and f^* of an f-GAN)


def _describe_options(options: Mapping[str, Option]) -> str:
    if not options:
        return "(none: this loss takes no options)"
    return "; ".join(f"{k} (default {o.default!r}; {o.allowed})" for k, o in options.items())


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: its name, one-line formula, citation, options and factory.

    Attributes:
        name: registry key.
        family: the module / family the loss belongs to (``"standard"``, ``"f-gan"``, ...).
        citation: bibtex key of the paper the loss comes from.
        options: option name -> :class:`Option` (defaults and allowed values).
        factory: ``factory(**validated_options) -> LossParts``.
        requires_real_in_generator: the generator half needs ``d_real`` (relativistic losses).
        paired: ``d_real`` and ``d_fake`` must have the same shape (element ``i`` of one is
            compared with element ``i`` of the other, or batch statistics are shared).
        summary: one sentence for tables.

    ``spec.formula`` (property) is the one-line ``D: ...;  G: ...`` formula at the defaults.
    """

    name: str
    family: str
    citation: str
    options: Mapping[str, Option]
    factory: Callable[..., LossParts]
    requires_real_in_generator: bool = False
    paired: bool = False
    summary: str = ""

    @property
    def defaults(self) -> dict[str, Any]:
        """Option name -> default value."""
        return {k: o.default for k, o in self.options.items()}

    @property
    def formula(self) -> str:
        """One line ``D: ...;  G: ...`` at the default options (both halves minimised)."""
        return self.make().formula

    def make(self, **options: Any) -> "GANLoss":
        """Validate ``options`` against this spec and build the :class:`GANLoss`."""
        unknown = [k for k in options if k not in self.options]
        if unknown:
            raise ValueError(
                f"loss {self.name!r} has no option {unknown[0]!r}; allowed options: "
                f"{_describe_options(self.options)}"
            )
        resolved: dict[str, Any] = {}
        for key, opt in self.options.items():
            value = options.get(key, opt.default)
            try:
                resolved[key] = opt.validate(value)
            except ValueError as err:
                raise ValueError(
                    f"option {key}={value!r} of loss {self.name!r} is invalid: {err}; allowed options: "
                    f"{_describe_options(self.options)}"
                ) from None
        parts = self.factory(**resolved)
        return GANLoss(
            name=self.name,
            formula=f"D: {parts.formula_d};  G: {parts.formula_g}" + (f";  {parts.where}" if parts.where else ""),
            citation=self.citation,
            options=dict(resolved if parts.options is None else parts.options),
            family=self.family,
            formula_d=parts.formula_d,
            formula_g=parts.formula_g,
            requires_real_in_generator=self.requires_real_in_generator,
            paired=self.paired,
            safe_logit_range=parts.safe_logit_range,
            discriminator_fn=parts.discriminator,
            generator_fn=parts.generator,
        )


# --------------------------------------------------------------------------------------------
# Input checks shared by the family modules and GANLoss.
# --------------------------------------------------------------------------------------------


def check_logits(name: str, value: Any) -> Tensor:
    """Raise a clear error unless ``value`` is a non-empty floating-point tensor."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of raw discriminator outputs; got {type(value).__name__}")
    if not (value.is_floating_point()):
        raise TypeError(f"{name} must have a floating-point dtype; got {value.dtype}")
    if value.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(value.shape)}); a mean over no samples is undefined")
    return value


def clamp_to_range(v: Tensor, safe_range: SafeRange) -> Tensor:
    """``v`` clamped to ``safe_range`` (``None`` or ``(lo, hi)``, infinite ends allowed)."""
    if safe_range is None:
        return v
    lo, hi = safe_range
    return v.clamp(min=lo if math.isfinite(lo) else None, max=hi if math.isfinite(hi) else None)


def check_same_shape(loss: str, d_real: Tensor, d_fake: Tensor) -> None:
    """Raise ``ValueError`` naming both shapes unless ``d_real`` and ``d_fake`` have the same shape."""
    if d_real.shape != d_fake.shape:
        raise ValueError(
            f"{loss} pairs real and fake outputs, so d_real and d_fake must have the same shape; "
            f"got d_real {tuple(d_real.shape)} and d_fake {tuple(d_fake.shape)}"
        )


@dataclass(frozen=True, eq=False)
class GANLoss:
    """A loss from the registry with its options bound. Obtain one with :func:`gan_lib.losses.get`.

    Attributes:
        name: registry name.
        formula: one line ``D: ...;  G: ...``; both halves are minimised.
        citation: bibtex key.
        options: the validated options, defaults filled in.
        family: loss family.
        formula_d, formula_g: the two halves of ``formula``.
        requires_real_in_generator: ``generator()`` needs ``d_real``.
        paired: ``d_real`` and ``d_fake`` must have the same shape.
        safe_logit_range: ``None`` when the loss is finite for every logit with ``|v| <= 1e4`` in
            float32 and bfloat16 (squares such as LSGAN's still overflow near ``|v| ~ 1e19``), else ``(lo, hi)``: logits inside it give finite values and gradients
            (the loss grows like ``exp(v)`` outside).
        discriminator_fn, generator_fn: the underlying pure functions (options bound).
    """

    name: str
    formula: str
    citation: str
    options: dict[str, Any]
    family: str = ""
    formula_d: str = ""
    formula_g: str = ""
    requires_real_in_generator: bool = False
    paired: bool = False
    safe_logit_range: SafeRange = None
    discriminator_fn: DiscriminatorFn = field(default=None, repr=False)  # type: ignore[assignment]
    generator_fn: GeneratorFn = field(default=None, repr=False)  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GANLoss):
            return NotImplemented
        return self.name == other.name and self.options == other.options

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.options.items()))))

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        """Scalar loss minimised by the discriminator, from raw outputs on real and fake samples."""
        check_logits("d_real", d_real)
        check_logits("d_fake", d_fake)
        if self.paired:
            check_same_shape(f"loss {self.name!r}", d_real, d_fake)
        return self.discriminator_fn(d_real, d_fake)

    def generator(self, d_fake: Tensor, d_real: Tensor | None = None) -> Tensor:
        """Scalar loss minimised by the generator.

        ``d_real`` is required by relativistic losses (``requires_real_in_generator``) and
        ignored by the others.
        """
        check_logits("d_fake", d_fake)
        if not self.requires_real_in_generator:
            return self.generator_fn(d_fake)
        if d_real is None:
            raise ValueError(
                f"loss {self.name!r} is relativistic: generator() needs d_real, the discriminator's "
                f"outputs on a real batch, as well as d_fake"
            )
        check_logits("d_real", d_real)
        if self.paired:
            check_same_shape(f"loss {self.name!r}", d_real, d_fake)
        return self.generator_fn(d_fake, d_real)


# --------------------------------------------------------------------------------------------
# The registry.
# --------------------------------------------------------------------------------------------

_SPECS: dict[str, LossSpec] = {}
REGISTRY: Mapping[str, LossSpec] = MappingProxyType(_SPECS)


def register(spec: LossSpec) -> LossSpec:
    """Add ``spec`` to the registry (names are unique)."""
    if spec.name in _SPECS:
        raise ValueError(f"a loss named {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


def names() -> list[str]:
    """Registered loss names, grouped by family in registration order."""
    return list(_SPECS)


def get(name: str, **options: Any) -> GANLoss:
    """The registered loss ``name`` with ``options`` bound.

    Raises ``ValueError`` for an unknown name (listing every registered name) and for an unknown
    option or an invalid option value (naming it and listing the loss's allowed options).
    """
    if not isinstance(name, str) or name not in _SPECS:
        close = difflib.get_close_matches(str(name), list(_SPECS), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ValueError(f"unknown loss {name!r}{hint}; registered losses: {', '.join(names())}")
    return _SPECS[name].make(**options)


def table(selected: Sequence[str] | None = None) -> list[dict[str, str]]:
    """One row per loss (name, family, D half, G half, citation, options), for the book's tables."""
    rows = []
    for name in names() if selected is None else selected:
        loss = get(name)  # default options; an unknown name raises the helpful error
        rows.append(
            {
                "name": name,
                "family": loss.family,
                "discriminator": loss.formula_d,
                "generator": loss.formula_g,
                "citation": loss.citation,
                "options": ", ".join(f"{k}={v!r}" for k, v in loss.options.items()),
            }
        )
    return rows
