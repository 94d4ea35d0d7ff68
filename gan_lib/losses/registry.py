"""Machinery of the loss registry: option specs, loss specs, the :class:`GANLoss` object, ``get``,
and the reductions every loss shares.

A loss family module (``minimax.py``, ``fgan.py``, ...) defines pure functions of raw
discriminator outputs and calls :func:`register` once per name with a :class:`LossSpec`. The
spec knows the loss's options (defaults, what is allowed) and a ``factory`` that turns validated
options into the two halves of the game. :func:`get` validates a user's options and returns a
:class:`GANLoss`, the object trainers and notebooks use.

Conventions, shared by every registered loss:

* Inputs are raw discriminator outputs ``v`` (logits or critic values, before any activation),
  any shape, non-empty, floating point.
* ``P`` is the data distribution (``d_real = v(x), x ~ P``), ``Q`` the model
  (``d_fake = v(G(z))``).
* Both halves are *minimised*: ``discriminator(d_real, d_fake)`` by the discriminator,
  ``generator(d_fake, d_real)`` by the generator.
* Nothing is detached: the caller decides which parameters a loss is differentiated against.

Reduction and per-sample weights (the ``torch.nn.functional`` / TF-GAN convention)::

    loss.discriminator(d_real, d_fake, *, reduction="mean", weights_real=None, weights_fake=None)
    loss.generator(d_fake, d_real=None, *, reduction="mean", weights=None)

Most discriminator losses are a sum of two per-sample terms, ``c_P E_P[l_P(v)] + c_Q E_Q[l_Q(v)]``
(e.g. ``softplus(-v)`` on the reals and ``softplus(v)`` on the fakes); most generator losses are one
per-sample term on the fakes. Writing ``l`` for a term and ``w`` for its weights:

* ``reduction="mean"`` (the default, and the only behaviour before weights existed):
  ``sum(w * l) / n`` per term, ``n`` the number of per-sample terms (elements of the batch). This
  is the convention of ``torch.nn.functional.binary_cross_entropy(weight=...)`` and of TF-GAN's
  default ``SUM_BY_NONZERO_WEIGHTS`` whenever no weight is zero (TF-GAN would divide by the
  number of non-zero weights; here a zero weight still counts in ``n``). It is the unbiased
  importance-weighted estimate of ``E[w l]``, linear in the weights, and equal to the plain mean
  when every weight is 1. It is *not* the self-normalised ``sum(w l) / sum(w)``: to average over
  a subset of samples, pass ``reduction="sum"`` and divide by the count yourself.
* ``reduction="sum"``: ``sum(w * l)`` per term, the terms added (with their coefficients).
* ``reduction="none"``: the weighted per-sample terms ``w * l``, unreduced. A discriminator with a
  real and a fake term returns :class:`LossTerms` ``(real, fake)`` shaped like ``d_real`` and
  ``d_fake`` (coefficients included, so ``terms.real.mean() + terms.fake.mean()`` is the mean
  loss); every generator, and the discriminator of a paired loss (``rgan``), returns one tensor
  shaped like ``d_fake``.
* ``weights_real`` / ``weights_fake`` weight the discriminator's real / fake terms, ``weights`` the
  generator's per-fake-sample terms. Each is ``None``, a real number, or a tensor broadcastable to
  the shape of the term it weights *without enlarging it* (shape ``()``, ``(1,)``, or the batch's
  own shape; a ``(n, 1)`` weight for a ``(n,)`` batch is refused). Weights are cast to the loss's
  dtype; their values are not checked (importance weights are usually >= 0).
* Paired losses (``rgan``: element ``i`` of ``d_real`` is compared with element ``i`` of
  ``d_fake``) have one term per pair: the discriminator weights pair ``i`` by
  ``weights_real[i] * weights_fake[i]`` (importance weights of independent draws multiply), the
  generator by ``weights[i]``.
* Losses with batch statistics (``ragan``: each sample against the other batch's mean;
  ``kl_hinge``: the fakes reweighted by the in-batch softmax ``n softmax(v)``;
  ``GANLoss.batch_statistics``) couple the samples of a batch, so their per-sample terms are not
  per-sample losses: they accept ``reduction="mean"`` and ``"sum"`` only, and no weights; the
  others raise ``ValueError`` saying so. For many independent batches at once (an ensemble of
  models, one batch each) the library's batch-statistic losses also have a row-wise form,
  ``GANLoss.discriminator_rows`` / ``generator_rows`` (``(K, n)`` in, ``K`` mean-reduced values
  out, each batch's statistics kept within its row; ``GANLoss.has_rows``).

An invalid ``reduction``, a weight of the wrong shape or type, or an empty batch raises an error
naming the value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor

from gan_lib.validation import is_real


__all__ = [
    "Option",
    "LossSpec",
    "LossParts",
    "LossTerms",
    "Weights",
    "GANLoss",
    "REGISTRY",
    "REDUCTIONS",
    "register",
    "register_fixed",
    "get",
    "names",
    "table",
    "check_logits",
    "check_same_shape",
    "check_reduction",
    "check_batch_statistics_call",
    "apply_weights",
    "reduce_terms",
    "reduce_real_fake",
    "clamp_to_range",
]

DiscriminatorFn = Callable[..., Any]
GeneratorFn = Callable[..., Any]
SafeRange = Optional[tuple[float, float]]
Weights = Union[None, float, Tensor]

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
"""Allowed values of ``reduction`` (``torch.nn.functional`` names); batch-statistic losses allow the first two."""


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
    # the mean-reduced halves for K independent batches at once, inputs (K, n) -> (K,) values:
    # optional, for batch-statistic losses (see GANLoss.discriminator_rows)
    discriminator_rows: Optional[Callable[..., Tensor]] = None
    generator_rows: Optional[Callable[..., Tensor]] = None


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
        batch_statistics: the per-sample terms are coupled through statistics of the whole batch
            (``ragan``, ``kl_hinge``): only ``reduction="mean"`` and ``"sum"``, no weights.
        summary: one sentence for tables.
        check_given: optional ``check_given(explicit)`` called with the validated options the
            caller passed explicitly (defaults left out); raises ``ValueError`` for combinations
            that conflict (e.g. a preset together with a value the preset sets differently).

    ``spec.formula`` (property) is the one-line ``D: ...;  G: ...`` formula at the defaults.
    """

    name: str
    family: str
    citation: str
    options: Mapping[str, Option]
    factory: Callable[..., LossParts]
    requires_real_in_generator: bool = False
    paired: bool = False
    batch_statistics: bool = False
    summary: str = ""
    check_given: Optional[Callable[[Mapping[str, Any]], None]] = None

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
        if self.check_given is not None:
            self.check_given({k: resolved[k] for k in options})
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
            batch_statistics=self.batch_statistics,
            safe_logit_range=parts.safe_logit_range,
            discriminator_fn=parts.discriminator,
            generator_fn=parts.generator,
            discriminator_rows_fn=parts.discriminator_rows,
            generator_rows_fn=parts.generator_rows,
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
        _refuse_empty(name, value)
    return value


def _refuse_empty(name: str, value: Tensor) -> None:
    raise ValueError(
        f"{name} is empty (shape {tuple(value.shape)}); every loss needs at least one sample "
        f"(a mean over no samples is undefined)"
    )


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


# --------------------------------------------------------------------------------------------
# Reductions and per-sample weights, shared by the family modules.
# --------------------------------------------------------------------------------------------


class LossTerms(NamedTuple):
    """Per-sample terms of a two-term discriminator loss (``reduction="none"``).

    ``real`` has the shape of ``d_real``, ``fake`` that of ``d_fake``; each is already multiplied
    by its weights and its coefficient in the loss, so ``real.mean() + fake.mean()`` is the
    mean-reduced loss and ``real.sum() + fake.sum()`` the summed one.
    """

    real: Tensor
    fake: Tensor


def check_reduction(reduction: Any, allowed: Sequence[str] = REDUCTIONS, why: str = "") -> str:
    """Return ``reduction`` if it is one of ``allowed``, else raise ``ValueError`` naming it."""
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(
            f"reduction={reduction!r} is not allowed{why}; allowed: {', '.join(repr(r) for r in allowed)}"
        )
    return reduction


def check_batch_statistics_call(loss: str, coupling: str, reduction: Any, **weights: Weights) -> str:
    """Validate the call of a loss whose per-sample terms share batch statistics.

    Such a loss (``ragan``, ``kl_hinge``) allows ``reduction="mean"`` or ``"sum"`` and no weights:
    ``coupling`` says what couples the samples (it goes into the error message).
    """
    why = f" for loss {loss!r}: its per-sample terms are coupled through {coupling}, so they are not per-sample losses"
    for name, value in weights.items():
        if value is not None:
            raise ValueError(
                f"{name} is not allowed{why} and cannot be weighted one by one; allowed: {name}=None "
                f"(got a {type(value).__name__})"
            )
    return check_reduction(reduction, REDUCTIONS[:2], why)


def apply_weights(terms: Tensor, weights: Weights, name: str = "weights", of: str = "d_fake") -> Tensor:
    """``terms * weights`` after checking ``weights`` (``None`` returns ``terms`` itself).

    ``weights`` is a real number or a real-valued tensor broadcastable to ``terms.shape`` without
    enlarging it; it is cast to ``terms.dtype``. ``name`` (the argument) and ``of`` (the input
    whose shape the terms have) go into the error messages.
    """
    if weights is None:
        return terms
    shape = tuple(terms.shape)
    allowed = (
        f"allowed: None, a real number, or a tensor broadcastable to {shape} (the shape of {of}) "
        f"without enlarging it"
    )
    if isinstance(weights, Tensor):
        if weights.is_complex():
            raise TypeError(f"{name} must be real-valued; got dtype {weights.dtype}; {allowed}")
        try:
            fits = torch.broadcast_shapes(weights.shape, terms.shape) == terms.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"{name} has shape {tuple(weights.shape)}, which does not fit the per-sample loss of "
                f"shape {shape}; {allowed}"
            )
        return terms * (weights if weights.dtype == terms.dtype else weights.to(terms.dtype))
    if is_real(weights):
        return terms * float(weights)
    raise TypeError(f"{name} must be None, a real number or a torch.Tensor; got {type(weights).__name__}; {allowed}")


def _reduce(terms: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return terms.mean()
    if reduction == "sum":
        return terms.sum()
    return terms


def reduce_terms(
    terms: Tensor,
    reduction: str = "mean",
    weights: Weights = None,
    *,
    scale: float = 1.0,
    name: str = "weights",
    of: str = "d_fake",
) -> Tensor:
    """Reduce one per-sample term: ``scale * sum(w l) / n`` (mean), ``scale * sum(w l)`` (sum), or
    ``scale * w l`` (none).

    ``terms`` is the unweighted per-sample loss ``l``; ``scale`` a constant coefficient (applied to
    the reduced scalar, so a sign costs no pass over the batch). Raises ``ValueError`` for an
    empty batch (naming ``of``), an unknown reduction or misshapen weights.
    """
    if terms.numel() == 0:
        _refuse_empty(of, terms)
    if reduction == "mean" and weights is None:  # the common case, first and cheapest
        out = terms.mean()
    else:
        out = _reduce(apply_weights(terms, weights, name, of), check_reduction(reduction))
    return _scaled(scale, out)


def _scaled(scale: float, x: Tensor) -> Tensor:
    # a sign is a negation (about a third of the cost of multiplying by a Python number)
    return x if scale == 1.0 else (x.neg() if scale == -1.0 else scale * x)


def reduce_real_fake(
    real: Tensor,
    fake: Tensor,
    reduction: str = "mean",
    weights_real: Weights = None,
    weights_fake: Weights = None,
    *,
    scale_real: float = 1.0,
    scale_fake: float = 1.0,
) -> Union[Tensor, LossTerms]:
    """Reduce a two-term loss ``scale_real E_P[l_P] + scale_fake E_Q[l_Q]``.

    ``real`` and ``fake`` are the unweighted per-sample terms on the real and the fake batch. Mean
    and sum reduce each term and add them; ``"none"`` returns :class:`LossTerms` of the weighted,
    scaled terms. Raises ``ValueError`` for an empty batch, an unknown reduction or misshapen
    weights.
    """
    if real.numel() == 0:
        _refuse_empty("d_real", real)
    if fake.numel() == 0:
        _refuse_empty("d_fake", fake)
    if reduction == "mean" and weights_real is None and weights_fake is None:
        r, f = real.mean(), fake.mean()
    else:
        check_reduction(reduction)
        real = apply_weights(real, weights_real, "weights_real", "d_real")
        fake = apply_weights(fake, weights_fake, "weights_fake", "d_fake")
        if reduction == "none":
            return LossTerms(_scaled(scale_real, real), _scaled(scale_fake, fake))
        r, f = _reduce(real, reduction), _reduce(fake, reduction)
    if scale_fake == 1.0 and scale_real in (1.0, -1.0):
        return r + f if scale_real == 1.0 else f - r
    if scale_real == scale_fake:
        return scale_real * (r + f)
    return _scaled(scale_real, r) + _scaled(scale_fake, f)


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
        batch_statistics: the per-sample terms share batch statistics (``ragan``, ``kl_hinge``):
            ``reduction`` ``"mean"`` or ``"sum"`` only, no weights (see the module docstring).
        safe_logit_range: ``None`` when the loss is finite for every logit with ``|v| <= 1e4`` in
            float32 and bfloat16 (squares such as LSGAN's still overflow near ``|v| ~ 1e19``), else ``(lo, hi)``: logits inside it give finite values and gradients
            (the loss grows like ``exp(v)`` outside).
        discriminator_fn, generator_fn: the underlying pure functions (options bound), called as
            ``discriminator_fn(d_real, d_fake, *, reduction, weights_real, weights_fake)`` and
            ``generator_fn(d_fake[, d_real], *, reduction, weights)``.
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
    batch_statistics: bool = False
    safe_logit_range: SafeRange = None
    discriminator_fn: DiscriminatorFn = field(default=None, repr=False)  # type: ignore[assignment]
    generator_fn: GeneratorFn = field(default=None, repr=False)  # type: ignore[assignment]
    discriminator_rows_fn: Optional[Callable[..., Tensor]] = field(default=None, repr=False)
    generator_rows_fn: Optional[Callable[..., Tensor]] = field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GANLoss):
            return NotImplemented
        return self.name == other.name and self.options == other.options

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.options.items()))))

    @property
    def reductions(self) -> tuple[str, ...]:
        """The ``reduction`` values this loss accepts."""
        return REDUCTIONS[:2] if self.batch_statistics else REDUCTIONS

    def discriminator(
        self,
        d_real: Tensor,
        d_fake: Tensor,
        *,
        reduction: str = "mean",
        weights_real: Weights = None,
        weights_fake: Weights = None,
    ) -> Union[Tensor, LossTerms]:
        """Loss minimised by the discriminator, from raw outputs on real and fake samples.

        A scalar for ``reduction="mean"`` (default) or ``"sum"``; for ``"none"`` the weighted
        per-sample terms, :class:`LossTerms` ``(real, fake)`` (one tensor for a paired loss).
        ``weights_real`` / ``weights_fake`` weight the real / fake terms (module docstring).
        """
        check_logits("d_real", d_real)
        check_logits("d_fake", d_fake)
        if self.paired:
            check_same_shape(f"loss {self.name!r}", d_real, d_fake)
        if reduction == "mean" and weights_real is None and weights_fake is None:
            return self.discriminator_fn(d_real, d_fake)
        return self.discriminator_fn(
            d_real, d_fake, reduction=reduction, weights_real=weights_real, weights_fake=weights_fake
        )

    @property
    def has_rows(self) -> bool:
        """Whether :meth:`discriminator_rows` and :meth:`generator_rows` are available."""
        return self.discriminator_rows_fn is not None and self.generator_rows_fn is not None

    def _check_rows(self, name: str, value: Any, like: Tensor | None = None) -> Tensor:
        if not self.has_rows:
            raise TypeError(
                f"loss {self.name!r} has no row-wise form (GANLoss.has_rows is False); apply it to each "
                f"batch (e.g. with torch.func.vmap)"
            )
        check_logits(name, value)
        if value.dim() != 2 or value.shape[1] == 0:
            raise ValueError(f"{name} has shape {tuple(value.shape)}; the row-wise form takes (K, n) with n >= 1")
        if like is not None and value.shape[0] != like.shape[0]:
            raise ValueError(f"d_real and d_fake must have the same number of rows K; got shapes "
                             f"{tuple(like.shape)} and {tuple(value.shape)}")
        return value

    def discriminator_rows(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        """``(K,)`` mean-reduced discriminator losses of ``K`` independent batches: row ``k`` of the
        ``(K, n)`` inputs is one batch, and value ``k`` equals ``discriminator(d_real[k], d_fake[k])``.

        For batch-statistic losses (``ragan``, ``kl_hinge``, ``chi2_hinge``), whose statistics must
        stay within a batch, this is one vectorised call instead of ``K`` (or a ``vmap``);
        :attr:`has_rows` says whether a loss has it (``TypeError`` otherwise).
        """
        self._check_rows("d_real", d_real)
        self._check_rows("d_fake", d_fake, like=d_real)
        if self.paired:
            check_same_shape(f"loss {self.name!r}", d_real, d_fake)
        return self.discriminator_rows_fn(d_real, d_fake)  # type: ignore[misc]

    def generator_rows(self, d_fake: Tensor, d_real: Tensor | None = None) -> Tensor:
        """``(K,)`` mean-reduced generator losses of ``K`` independent batches (rows); value ``k``
        equals ``generator(d_fake[k], d_real[k])`` (see :meth:`discriminator_rows`)."""
        self._check_rows("d_fake", d_fake)
        if not self.requires_real_in_generator:
            return self.generator_rows_fn(d_fake)  # type: ignore[misc]
        if d_real is None:
            raise ValueError(f"loss {self.name!r} is relativistic: generator_rows() needs d_real as well as d_fake")
        self._check_rows("d_real", d_real, like=d_fake)
        if self.paired:
            check_same_shape(f"loss {self.name!r}", d_real, d_fake)
        return self.generator_rows_fn(d_fake, d_real)  # type: ignore[misc]

    def generator(
        self, d_fake: Tensor, d_real: Tensor | None = None, *, reduction: str = "mean", weights: Weights = None
    ) -> Tensor:
        """Loss minimised by the generator: a scalar (``"mean"``, ``"sum"``), or per-sample (``"none"``).

        ``d_real`` is required by relativistic losses (``requires_real_in_generator``) and
        ignored by the others. ``weights`` weight the per-sample terms of the fakes (of the pairs,
        for ``rgan``).
        """
        check_logits("d_fake", d_fake)
        if not self.requires_real_in_generator:
            if reduction == "mean" and weights is None:
                return self.generator_fn(d_fake)
            return self.generator_fn(d_fake, reduction=reduction, weights=weights)
        if d_real is None:
            raise ValueError(
                f"loss {self.name!r} is relativistic: generator() needs d_real, the discriminator's "
                f"outputs on a real batch, as well as d_fake"
            )
        check_logits("d_real", d_real)
        if self.paired:
            check_same_shape(f"loss {self.name!r}", d_real, d_fake)
        if reduction == "mean" and weights is None:
            return self.generator_fn(d_fake, d_real)
        return self.generator_fn(d_fake, d_real, reduction=reduction, weights=weights)


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


def register_fixed(
    name: str, family: str, citation: str, parts: LossParts, summary: str, **flags: bool
) -> LossSpec:
    """Register a loss that takes no options: ``parts`` are its two halves and their formulas.

    ``flags`` are :class:`LossSpec`'s ``requires_real_in_generator``, ``paired`` and ``batch_statistics``.
    """
    return register(LossSpec(name, family, citation, {}, lambda: parts, summary=summary, **flags))


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
