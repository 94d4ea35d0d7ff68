r"""Generator objectives as data: Poole, Alemi, Sohl-Dickstein & Angelova (2016, ``poole2016improved``).

A discriminator trained with the usual binary cross-entropy has logit ``V \approx \log(p/q)``
(``P`` data, ``Q`` model), so the generator can minimise ``E_Q[f_G(e^V)]``, an estimate of
``D_{f_G}(P\|Q) = \int q f_G(p/q)``. :class:`GeneratorDivergence` holds one member of their family
(GAN-standard, GAN-RKL, GAN-KL, GAN-alpha) with three functions of the density ratio ``u = p/q``:

* ``f``: Poole's ``f_G``; its per-sample generator objective is ``f_G(e^V)`` (:meth:`objective`),
  the loss registered in :mod:`gan_lib.losses` under ``loss_name``.
* the *envelope* objective ``f_G(u) - u f_G'(u) = -f_G^*(f_G'(u))`` (:meth:`envelope_objective`):
  with the ratio held fixed, its gradient is the gradient of ``D_{f_G}`` itself (Danskin's theorem
  applied to the variational form of ``D_{f_G}``, as in the f-GAN minimax generator). The loss
  with this generator objective is registered as ``poole_envelope``.
* ``equivalent``: the function ``\tilde f`` with ``\tilde f''(u) = -f_G'(u)/u``. With the ratio held
  fixed at its true value, the gradient of Poole's objective ``E_Q[f_G(e^V)]`` with respect to the
  generator equals the gradient of ``D_{\tilde f}(P\|Q)``, so that (not ``D_{f_G}``) is what an
  ideal-discriminator GAN with this objective descends. Only for GAN-RKL are the two the same.

Each function of ``u`` is a :class:`LogFunction`: its values from ``l = \log u`` and the
perspective ``q f(p/q)`` from log-densities, written so that neither underflow nor overflow of
``p/q`` spoils them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lib.validation import alpha_number

from .fdiv import FDivergence, alpha_f_of_log, get_divergence, log_softplus
from .quadrature import divergence_perspective

__all__ = [
    "LogFunction",
    "GeneratorDivergence",
    "POOLE_NAMES",
    "generator_divergence",
    "poole_family",
]

POOLE_NAMES: tuple[str, ...] = ("standard", "rkl", "kl", "alpha")
"""Names of Poole et al.'s generator divergences (``alpha`` takes ``alpha=``)."""

_LOG_CLAMP = 60.0  # envelope objectives clamp |alpha V| to this (values and gradients below e^60)


# ------------------------------------------------------------------------------------------------
# Functions of the density ratio, in log space
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFunction:
    r"""A function ``f(u)`` of the density ratio ``u = p/q``, given in log space.

    ``at_log(l) = f(e^l)`` (elementwise, torch); ``perspective(lp, lq) = q f(p/q)`` from the
    log-densities ``lp = log p`` and ``lq = log q``, stable when either density underflows.
    ``tex`` is ``f(u)`` in LaTeX.
    """

    tex: str
    at_log: Callable[[Tensor], Tensor]
    perspective: Callable[[Tensor, Tensor], Tensor]

    def __call__(self, u: Tensor) -> Tensor:
        """``f(u)`` for ``u > 0``."""
        return self.at_log(torch.log(u))


def _from_divergence(div: FDivergence, at_log: Callable[[Tensor], Tensor] | None = None) -> LogFunction:
    """``f`` of an :class:`FDivergence` as a :class:`LogFunction`: the perspective is
    :func:`divergence_perspective` (the FDivergence's ``f`` where ``u <= 1`` is representable, exact
    log-space forms beyond); ``f(e^l)`` is ``at_log`` if given, else that perspective at ``q = 1``."""

    def persp(lp: Tensor, lq: Tensor) -> Tensor:
        return divergence_perspective(div, lp, lq)

    if at_log is None:
        at_log = lambda l: persp(l, torch.zeros_like(l))  # noqa: E731
    return LogFunction(tex=div.f_tex, at_log=at_log, perspective=persp)


def _f_standard() -> LogFunction:
    return LogFunction(
        tex=r"\log\left(1+\frac{1}{u}\right)",
        at_log=lambda l: F.softplus(-l),
        perspective=lambda lp, lq: torch.exp(lq) * F.softplus(lq - lp),
    )


def _f_rkl() -> LogFunction:
    return _from_divergence(get_divergence("reverse_kl"))  # -log u


def _f_kl() -> LogFunction:
    return _from_divergence(get_divergence("kl"))  # u log u


def _f_alpha(a: float) -> LogFunction:
    # (u^a - 1 - a (u - 1)) / (a (a - 1)); f(e^l) from the FDivergence's own log-space form
    return _from_divergence(get_divergence("alpha", alpha=a), at_log=lambda l: alpha_f_of_log(l, a))


def _equiv_standard() -> LogFunction:
    # f~(u) = (1 + u) log(1 + 1/u) = -log u - [u log u - (u+1) log(u+1)]:  D = KL(Q||P) - 2 JS + log 4;
    # q f~(p/q) = (p + q) softplus(log q - log p), formed in log space so that neither factor
    # overflows (u log(1 + 1/u) -> 1 as u -> inf)
    def persp(lp: Tensor, lq: Tensor) -> Tensor:
        return torch.exp(torch.logaddexp(lp, lq) + log_softplus(lq - lp))

    return LogFunction(
        tex=r"(1+u)\log\left(1+\frac{1}{u}\right)",
        at_log=lambda l: persp(l, torch.zeros_like(l)),
        perspective=persp,
    )


def _equiv_kl() -> LogFunction:
    # f~(u) = -u (log u)^2 / 2
    return LogFunction(
        tex=r"-\tfrac12\,u\,(\log u)^2",
        at_log=lambda l: -0.5 * torch.exp(l) * l * l,
        perspective=lambda lp, lq: torch.where(
            torch.isneginf(lp), torch.zeros_like(lp), -0.5 * torch.exp(lp) * (lp - lq) ** 2
        ),
    )


def _equiv_alpha(a: float) -> LogFunction:
    # f~(u) = [(u log u - u + 1) - f_a(u)] / (a - 1):  D = [KL(P||Q) - D_a(P||Q)] / (a - 1)
    kl, fa = _f_kl(), _f_alpha(a)
    return LogFunction(
        tex=r"\frac{(u\log u-u+1)-f_\alpha(u)}{\alpha-1}",
        at_log=lambda l: (kl.at_log(l) - torch.expm1(l) - fa.at_log(l)) / (a - 1.0),
        perspective=lambda lp, lq: (
            kl.perspective(lp, lq) - torch.exp(lp) + torch.exp(lq) - fa.perspective(lp, lq)
        ) / (a - 1.0),
    )


# ------------------------------------------------------------------------------------------------
# Poole et al.'s family
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorDivergence:
    r"""One of Poole et al.'s generator divergences ``f_G``, with what a GAN does with it.

    Attributes:
        name: ``"standard"``, ``"rkl"``, ``"kl"`` or ``"alpha"``.
        label: e.g. ``"GAN-α (α=2)"`` (Poole et al.'s names).
        alpha: the order for ``"alpha"``, else ``None``.
        f: ``f_G`` as a :class:`LogFunction`.
        objective_tex: Poole's per-sample generator objective ``f_G(e^V)`` in terms of the logit.
        envelope_tex: the envelope objective ``f_G(u) - u f_G'(u)`` at ``u = e^V``.
        equivalent: ``\tilde f`` with ``\tilde f'' = -f_G'(u)/u``; ``equivalent_tex`` says what
            ``D_{\tilde f}`` is in familiar terms.
        loss_name, loss_options: the registry entry of :mod:`gan_lib.losses` that implements
            Poole's objective (BCE discriminator).
        mode_seeking_at_zero, covering_at_infinity: ``f_G(0^+)`` and ``\lim_{u\to\infty} f_G(u)/u``,
            the cost per unit of model mass where there is no data, and per unit of data mass
            where there is no model (``inf`` where infinite).
    """

    name: str
    label: str
    alpha: float | None
    f: LogFunction
    objective_tex: str
    envelope_tex: str
    equivalent: LogFunction
    equivalent_tex: str
    loss_name: str
    loss_options: Mapping[str, Any] = field(default_factory=dict)
    mode_seeking_at_zero: float = math.inf
    covering_at_infinity: float = math.inf

    def objective(self, v: Tensor) -> Tensor:
        """Poole's per-sample generator objective ``f_G(e^v)`` on raw logits ``v`` (not reduced)."""
        return self.f.at_log(v)

    def envelope_objective(self, v: Tensor) -> Tensor:
        r"""Per-sample ``f_G(u) - u f_G'(u)`` at ``u = e^v`` (not reduced); logits are clamped so
        that ``|v|`` and ``|alpha v|`` stay below 60.

        GAN-standard: ``softplus(-v) + sigmoid(-v)``; GAN-RKL: ``1 - v``; GAN-KL: ``-e^v``;
        GAN-alpha: ``-(e^{alpha v} - 1)/alpha``.
        """
        if self.name == "standard":
            return F.softplus(-v) + torch.sigmoid(-v)
        if self.name == "rkl":
            return 1.0 - v
        if self.name == "kl":
            return -torch.exp(v.clamp(max=_LOG_CLAMP))
        a = float(self.alpha)  # type: ignore[arg-type]
        bound = _LOG_CLAMP / max(abs(a), 1.0)
        return -torch.expm1(a * v.clamp(-bound, bound)) / a

    def loss(self) -> Any:
        """Poole's objective from :mod:`gan_lib.losses` (BCE discriminator)."""
        from gan_lib import losses

        return losses.get(self.loss_name, **dict(self.loss_options))

    def envelope_loss(self) -> Any:
        """The registered loss ``poole_envelope`` for this divergence: BCE discriminator, envelope
        generator objective."""
        from gan_lib import losses

        options: dict[str, Any] = {"divergence": self.name}
        if self.alpha is not None:
            options["alpha"] = self.alpha
        return losses.get("poole_envelope", **options)


def generator_divergence(name: str, alpha: float | None = None) -> GeneratorDivergence:
    """Poole et al.'s generator divergence ``name`` (one of :data:`POOLE_NAMES`).

    ``alpha`` is required for ``"alpha"`` (finite, not 0 or 1) and refused for the others.
    """
    if name not in POOLE_NAMES:
        raise ValueError(f"unknown generator divergence {name!r}; allowed: {', '.join(POOLE_NAMES)}")
    if name != "alpha":
        if alpha is not None:
            raise ValueError(f"generator divergence {name!r} takes no alpha (got alpha={alpha!r})")
        return _FIXED[name]
    if alpha is None:
        raise ValueError("generator divergence 'alpha' needs alpha=<float>, any finite value except 0 and 1")
    try:
        a = alpha_number(alpha)
    except ValueError as err:
        raise ValueError(f"alpha={alpha!r} not allowed: {err}") from None
    return GeneratorDivergence(
        name="alpha",
        label=f"GAN-α (α={a:g})",
        alpha=a,
        f=_f_alpha(a),
        objective_tex=r"\frac{e^{\alpha V}-1-\alpha(e^{V}-1)}{\alpha(\alpha-1)}",
        envelope_tex=r"-\frac{e^{\alpha V}-1}{\alpha}",
        equivalent=_equiv_alpha(a),
        equivalent_tex=r"\frac{\mathrm{KL}(P\|Q)-D_\alpha(P\|Q)}{\alpha-1}",
        loss_name="poole_alpha",
        loss_options={"alpha": a, "clamp": True},
        mode_seeking_at_zero=(1.0 / a) if a > 0 else math.inf,
        covering_at_infinity=(1.0 / (1.0 - a)) if a < 1 else math.inf,
    )


#: The members without an order, by name (GAN-alpha is built per ``alpha`` in :func:`generator_divergence`).
_FIXED: dict[str, GeneratorDivergence] = {
    g.name: g
    for g in (
        GeneratorDivergence(
            name="standard",
            label="GAN-standard",
            alpha=None,
            f=_f_standard(),
            objective_tex=r"\log(1+e^{-V})",
            envelope_tex=r"\log(1+e^{-V})+\sigma(-V)",
            equivalent=_equiv_standard(),
            equivalent_tex=r"\mathrm{KL}(Q\|P)-2\,\mathrm{JS}(P,Q)+\log 4",
            loss_name="poole_standard",
            mode_seeking_at_zero=math.inf,
            covering_at_infinity=0.0,
        ),
        GeneratorDivergence(
            name="rkl",
            label="GAN-RKL",
            alpha=None,
            f=_f_rkl(),
            objective_tex=r"-V",
            envelope_tex=r"1-V",
            equivalent=_f_rkl(),
            equivalent_tex=r"\mathrm{KL}(Q\|P)",
            loss_name="poole_rkl",
            mode_seeking_at_zero=math.inf,
            covering_at_infinity=0.0,
        ),
        GeneratorDivergence(
            name="kl",
            label="GAN-KL",
            alpha=None,
            f=_f_kl(),
            objective_tex=r"V e^{V}",
            envelope_tex=r"-e^{V}",
            equivalent=_equiv_kl(),
            equivalent_tex=r"-\tfrac12\,\mathbb{E}_P\big[(\log\tfrac{p}{q})^2\big]",
            loss_name="poole_kl",
            loss_options={"clamp": True},
            mode_seeking_at_zero=0.0,
            covering_at_infinity=math.inf,
        ),
    )
}


def poole_family(alphas: Sequence[float] = (-1.0, 0.5, 2.0)) -> list[GeneratorDivergence]:
    """GAN-standard, GAN-RKL, GAN-KL and GAN-alpha for each of ``alphas``, in that order."""
    return [generator_divergence(n) for n in ("standard", "rkl", "kl")] + [
        generator_divergence("alpha", alpha=a) for a in alphas
    ]
