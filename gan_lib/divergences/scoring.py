r"""Proper scoring rules for density-ratio estimation by binary classification.

Train a classifier :math:`D(x) = \sigma(v(x))` to tell samples of P (data, label 1) from
samples of Q (model, label 0). With a *strictly proper* scoring rule the population minimiser is
:math:`D^* = r/(1+r)`, i.e. the logit recovers the log density ratio, :math:`v^* = \log r`,
:math:`r = p/q` (Mohamed & Lakshminarayanan 2016, ``mohamed2016implicit``; Gneiting & Raftery
2007, ``gneiting2007scoring``). Improper or merely proper rules (hinge, 0-1) only recover the side
of :math:`r = 1`.

Conventions used throughout (every rule is written as a *loss*, i.e. minimised):

* a rule is two pointwise losses of the raw logit ``v``: :math:`\ell_1(v)` charged on P-samples
  and :math:`\ell_0(v)` charged on Q-samples; the population loss is
  :math:`\mathcal{L}(v) = \mathbb{E}_P[\ell_1(v)] + \mathbb{E}_Q[\ell_0(v)]`;
* the score in Rosca's table (``score_tex``) is the negative of that loss and is maximised;
* the rule's **implied f** is :math:`f(u) = -\min_v\,[u\,\ell_1(v) + \ell_0(v)]`, a convex function
  (a supremum of affine functions of ``u``). Minimising pointwise in ``x`` (with ``u = p/q``) gives

  .. math:: -\mathcal{L}(v) \;\le\; \int q(x)\, f\!\left(\tfrac{p(x)}{q(x)}\right) dx,

  with equality at the population minimiser: maximising the score is estimating a lower bound on
  an f-divergence (Reid & Williamson 2011, ``reid2011information``; Nguyen, Wainwright & Jordan
  2009, ``nguyen2009surrogate``). ``f`` here is *not* normalised to ``f(1) = 0``; adding an affine
  term :math:`a(u-1)` or the constant :math:`-f(1)` gives the textbook divergence, recorded in each
  rule's ``divergence_tex``. Equivalently, :math:`f(u) = -(1+u)\,H\!\left(\tfrac{u}{1+u}\right)`
  where :math:`H(\eta) = \min_D[\eta\,\ell_1 + (1-\eta)\,\ell_0]` is the rule's conditional Bayes
  risk (its generalised entropy).

Derived links (proofs: minimise :math:`u\ell_1 + \ell_0` over ``v``; checked numerically in
``tests/test_scoring.py``):

==================  =============================  ==========================================
rule                :math:`f(u)`                   :math:`\int q f(p/q)`
==================  =============================  ==========================================
bernoulli           u log u - (u+1) log(u+1)       2 JS(P,Q) - log 4
brier               -u / (1+u)                     Delta(P,Q)/4 - 1/2  (triangular discr.)
exponential         -2 sqrt(u)                     H^2(P,Q) - 2        (H^2 = int (sqrt p - sqrt q)^2)
misclassification   -min(u, 1)                     TV(P,Q) - 1         (TV = 1/2 int |p - q|)
hinge               -2 min(u, 1)                   2 TV(P,Q) - 2
spherical           sqrt(1 + u^2)                  int sqrt(p^2 + q^2)
==================  =============================  ==========================================

All losses are computed from the logit in log-space (``softplus``/``logsigmoid``); no
``log(sigmoid(.))`` anywhere. Logits must be floating-point tensors; half-precision logits
(``float16``, ``bfloat16``) are computed in ``float32`` and the losses are returned in ``float32``, as
``torch.autocast`` does for losses (in ``float16`` the exponential loss's clamp would be negative and
the loss a constant). :meth:`ScoringRule.loss` refuses an empty batch, naming it. Gradients differ in kind: log loss and hinge grow linearly in a
confidently wrong logit (gradient stays 1 in magnitude); Brier and spherical losses are bounded, so
their gradient vanishes there (finite, but ~0 at ``|v| = 1e4``); the exponential loss grows like
:math:`e^{|v|/2}` and is clamped (see :func:`exp_logit_clamp`); the 0-1 loss has zero gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar

from gan_lib.validation import is_real

from .fdiv import get_divergence

__all__ = [
    "ScoringRule",
    "SCORING_RULES",
    "RULES",
    "get_rule",
    "ratio_from_logit",
    "log_ratio_from_logit",
    "exp_logit_clamp",
    "PointwiseFit",
    "fit_ratio_pointwise",
    "bernoulli",
    "brier",
    "exponential",
    "misclassification",
    "hinge",
    "spherical",
]

Pointwise = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ScoringRule:
    r"""A binary scoring rule written as a loss of the discriminator logit ``v`` (``D = sigmoid(v)``).

    Attributes:
        name: registry key (``get_rule(name)``).
        label: human-readable name for tables and plot legends.
        loss_real: elementwise :math:`\ell_1(v)`, the loss on a P (data, label 1) sample.
        loss_fake: elementwise :math:`\ell_0(v)`, the loss on a Q (model, label 0) sample.
        score_tex: the maximised objective as in Rosca's / Mohamed & Lakshminarayanan's table
            (:math:`p^*` = data, :math:`p` = model), LaTeX.
        loss_tex: the minimised loss in terms of the logit ``v``, LaTeX.
        proper: the true posterior ``r/(1+r)`` is *a* population minimiser.
        strictly_proper: it is the *unique* minimiser, so ``D/(1-D)`` recovers ``r``.
        citation: bibtex keys, comma-separated (``\cite{...}``-ready).
        implied_f: :math:`f(u) = -\min_v[u\,\ell_1(v) + \ell_0(v)]`, closed form, ``u >= 0``.
        f_tex: that ``f`` in LaTeX.
        divergence: name of the f-divergence the rule bounds.
        divergence_tex: :math:`\int q f(p/q)` written with the textbook divergence.
        optimal_logit: population minimiser :math:`v^*(r)` where it is a point (else ``None``).
        minimiser_note: one sentence on the minimiser (uniqueness, ties).
    """

    name: str
    label: str
    loss_real: Pointwise
    loss_fake: Pointwise
    score_tex: str
    loss_tex: str
    proper: bool
    strictly_proper: bool
    citation: str
    implied_f: Pointwise
    f_tex: str
    divergence: str
    divergence_tex: str
    optimal_logit: Pointwise | None
    minimiser_note: str

    def loss(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
        r"""Mean-reduced discriminator loss :math:`\overline{\ell_1(v_{real})} + \overline{\ell_0(v_{fake})}`.

        Each argument is a non-empty floating-point tensor of raw logits of any shape (the two
        batches may differ in size); each half is averaged over its own elements. Half-precision
        logits give a ``float32`` loss.
        """
        real = _logits("logits_real", logits_real, nonempty=True)
        fake = _logits("logits_fake", logits_fake, nonempty=True)
        return self.loss_real(real).mean() + self.loss_fake(fake).mean()

    def pointwise_risk(self, logit: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        r"""Pointwise expected loss :math:`p\,\ell_1(v) + q\,\ell_0(v)` (elementwise, broadcasting)."""
        return p * self.loss_real(logit) + q * self.loss_fake(logit)

    def optimal_D(self, ratio: torch.Tensor) -> torch.Tensor:
        r"""Population-optimal :math:`D^*(r) = \sigma(v^*(r))` as a function of :math:`r = p/q`.

        Strictly proper rules give ``r / (1 + r)``. Raises ``ValueError`` when the minimiser is not a
        point (misclassification: any ``D`` on the correct side of 1/2).
        """
        if self.optimal_logit is None:
            raise ValueError(f"scoring rule {self.name!r} has no unique optimal D: {self.minimiser_note}")
        return torch.sigmoid(self.optimal_logit(torch.as_tensor(ratio)))


# ---------------------------------------------------------------------------------------------
# Pointwise losses (all functions of the logit v; D = sigmoid(v), 1 - D = sigmoid(-v)).
# ---------------------------------------------------------------------------------------------

#: Logits of these dtypes are computed in float32 (their own range and precision are too small).
_HALF_DTYPES = (torch.float16, torch.bfloat16)


def _logits(name: str, v: Any, nonempty: bool = False) -> torch.Tensor:
    """``v`` checked (a floating-point tensor, non-empty if asked) and, if half precision, in float32."""
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of raw logits; got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype; got {v.dtype}")
    if nonempty and v.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(v.shape)}); a mean over no samples is undefined")
    return v.float() if v.dtype in _HALF_DTYPES else v


def _pointwise(fn: Pointwise, name: str) -> Pointwise:
    """``fn`` applied to checked logits (see :func:`_logits`), keeping its docstring."""

    def checked(v: torch.Tensor) -> torch.Tensor:
        return fn(_logits(name, v))

    checked.__name__, checked.__doc__ = fn.__name__, fn.__doc__
    return checked


def _bernoulli_real(v: torch.Tensor) -> torch.Tensor:
    """-log D = softplus(-v)."""
    return F.softplus(-v)


def _bernoulli_fake(v: torch.Tensor) -> torch.Tensor:
    """-log(1 - D) = softplus(v)."""
    return F.softplus(v)


def _brier_real(v: torch.Tensor) -> torch.Tensor:
    """(1 - D)^2 = exp(2 logsigmoid(-v))."""
    return torch.exp(2.0 * F.logsigmoid(-v))


def _brier_fake(v: torch.Tensor) -> torch.Tensor:
    """D^2 = exp(2 logsigmoid(v))."""
    return torch.exp(2.0 * F.logsigmoid(v))


def exp_logit_clamp(dtype: torch.dtype) -> float:
    r"""Largest ``|v|`` the exponential loss evaluates before saturating, for logits of a floating ``dtype``.

    :math:`e^{|v|/2}` stays below ``finfo.max / 1e6`` of the dtype the loss is computed in (so a
    mean over up to :math:`10^6` such terms is still finite): :math:`2(\log(\text{max}) - \log 10^6)`,
    about 149.8 in float32 and 1392 in float64. Half-precision logits are computed in float32, so
    theirs is float32's.
    """
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype; got {dtype!r}")
    compute = torch.float32 if dtype in _HALF_DTYPES else dtype
    return 2.0 * (math.log(torch.finfo(compute).max) - math.log(1e6))


def _exp_half(v: torch.Tensor) -> torch.Tensor:
    """exp(v/2) with v clamped to +-exp_logit_clamp(dtype) (zero gradient beyond the clamp)."""
    c = exp_logit_clamp(v.dtype)
    return torch.exp(0.5 * v.clamp(-c, c))


def _exponential_real(v: torch.Tensor) -> torch.Tensor:
    """sqrt((1 - D)/D) = exp(-v/2)."""
    return _exp_half(-v)


def _exponential_fake(v: torch.Tensor) -> torch.Tensor:
    """sqrt(D/(1 - D)) = exp(v/2)."""
    return _exp_half(v)


def _zero_grad_link(v: torch.Tensor) -> torch.Tensor:
    """A zero that keeps ``v`` in the autograd graph (finite even for infinite ``v``)."""
    return 0.0 * v.clamp(-1.0, 1.0)


def _misclassification_real(v: torch.Tensor) -> torch.Tensor:
    """1[D <= 1/2] = 1[v <= 0]; gradient identically zero."""
    return (v <= 0).to(v.dtype) + _zero_grad_link(v)


def _misclassification_fake(v: torch.Tensor) -> torch.Tensor:
    """1[D > 1/2] = 1[v > 0]; gradient identically zero."""
    return (v > 0).to(v.dtype) + _zero_grad_link(v)


def _hinge_real(v: torch.Tensor) -> torch.Tensor:
    """max(0, 1 - v), with v = log(D/(1 - D))."""
    return F.relu(1.0 - v)


def _hinge_fake(v: torch.Tensor) -> torch.Tensor:
    """max(0, 1 + v)."""
    return F.relu(1.0 + v)


def _spherical_real(v: torch.Tensor) -> torch.Tensor:
    r"""-D / sqrt(D^2 + (1-D)^2) = -(1 + e^{-2v})^{-1/2} = -exp(-softplus(-2v)/2)."""
    return -torch.exp(-0.5 * F.softplus(-2.0 * v))


def _spherical_fake(v: torch.Tensor) -> torch.Tensor:
    r"""-(1-D) / sqrt(D^2 + (1-D)^2) = -(1 + e^{2v})^{-1/2} = -exp(-softplus(2v)/2)."""
    return -torch.exp(-0.5 * F.softplus(2.0 * v))


# ---------------------------------------------------------------------------------------------
# Implied f (closed forms derived in the module docstring) and optimal logits.
# ---------------------------------------------------------------------------------------------


def _f_bernoulli(u: torch.Tensor) -> torch.Tensor:
    # the GAN f of gan_lib.divergences, which avoids the cancellation of u log u - (u+1) log(u+1)
    # for large u (written naively it is off by 0.24 at u = 1e14)
    return get_divergence("gan").f(torch.as_tensor(u))


def _f_brier(u: torch.Tensor) -> torch.Tensor:
    u = torch.as_tensor(u)
    return -u / (1.0 + u)


def _f_exponential(u: torch.Tensor) -> torch.Tensor:
    return -2.0 * torch.sqrt(torch.as_tensor(u))


def _f_misclassification(u: torch.Tensor) -> torch.Tensor:
    return -torch.clamp(torch.as_tensor(u), max=1.0)


def _f_hinge(u: torch.Tensor) -> torch.Tensor:
    return -2.0 * torch.clamp(torch.as_tensor(u), max=1.0)


def _f_spherical(u: torch.Tensor) -> torch.Tensor:
    u = torch.as_tensor(u)
    return torch.hypot(u, torch.ones_like(u))


def _logit_log_ratio(ratio: torch.Tensor) -> torch.Tensor:
    """v* = log r (strictly proper rules)."""
    return torch.log(torch.as_tensor(ratio))


def _logit_hinge(ratio: torch.Tensor) -> torch.Tensor:
    """v* = sign(r - 1) in {-1, 0, +1} (0 stands for the tie r = 1, where any v in [-1, 1] is optimal)."""
    return torch.sign(torch.as_tensor(ratio) - 1.0)


_SCORE_CITE = "mohamed2016implicit"

#: What every strictly proper rule shares: the population minimiser is the log ratio.
_STRICTLY_PROPER: dict[str, Any] = dict(proper=True, strictly_proper=True, optimal_logit=_logit_log_ratio)


def _rule(loss_real: Pointwise, loss_fake: Pointwise, **fields: Any) -> ScoringRule:
    """A :class:`ScoringRule` whose two pointwise losses check their logits (:func:`_pointwise`)."""
    return ScoringRule(loss_real=_pointwise(loss_real, "v"), loss_fake=_pointwise(loss_fake, "v"), **fields)


bernoulli = _rule(
    _bernoulli_real,
    _bernoulli_fake,
    name="bernoulli",
    label="Bernoulli (log) loss",
    score_tex=r"\mathbb{E}_{p^*}[\log \mathcal{D}] + \mathbb{E}_{p}[\log(1-\mathcal{D})]",
    loss_tex=r"\mathbb{E}_{P}[\operatorname{softplus}(-v)] + \mathbb{E}_{Q}[\operatorname{softplus}(v)]",
    citation=f"{_SCORE_CITE},good1952rational,gneiting2007scoring",
    implied_f=_f_bernoulli,
    f_tex=r"u\log u - (u+1)\log(u+1)",
    divergence="Jensen-Shannon",
    divergence_tex=r"\int q\,f(p/q) = 2\,\mathrm{JS}(P\,\|\,Q) - \log 4",
    **_STRICTLY_PROPER,
    minimiser_note="unique: v* = log r, D* = r/(1+r).",
)

brier = _rule(
    _brier_real,
    _brier_fake,
    name="brier",
    label="Brier score",
    score_tex=r"\mathbb{E}_{p^*}[-(1-\mathcal{D})^2] + \mathbb{E}_{p}[-\mathcal{D}^2]",
    loss_tex=r"\mathbb{E}_{P}[\sigma(-v)^2] + \mathbb{E}_{Q}[\sigma(v)^2]",
    citation=f"{_SCORE_CITE},brier1950verification,gneiting2007scoring",
    implied_f=_f_brier,
    f_tex=r"-\frac{u}{1+u}",
    divergence="triangular discrimination (Vincze-Le Cam)",
    divergence_tex=(
        r"\int q\,f(p/q) = \tfrac14\,\Delta(P,Q) - \tfrac12,\quad "
        r"\Delta(P,Q) = \int \frac{(p-q)^2}{p+q}"
    ),
    **_STRICTLY_PROPER,
    minimiser_note="unique: v* = log r, D* = r/(1+r).",
)

exponential = _rule(
    _exponential_real,
    _exponential_fake,
    name="exponential",
    label="Exponential (boosting) loss",
    # Rosca's slide writes (-(1-D)/D)^{1/2}, the square root of a negative number; the intended
    # maximised score puts the minus sign outside the root, as below.
    score_tex=(
        r"\mathbb{E}_{p^*}\left[-\left(\frac{1-\mathcal{D}}{\mathcal{D}}\right)^{1/2}\right]"
        r" + \mathbb{E}_{p}\left[-\left(\frac{\mathcal{D}}{1-\mathcal{D}}\right)^{1/2}\right]"
    ),
    loss_tex=r"\mathbb{E}_{P}[e^{-v/2}] + \mathbb{E}_{Q}[e^{v/2}]",
    citation=f"{_SCORE_CITE},buja2005loss,friedman2000additive",
    implied_f=_f_exponential,
    f_tex=r"-2\sqrt{u}",
    divergence="squared Hellinger",
    divergence_tex=(
        r"\int q\,f(p/q) = H^2(P,Q) - 2,\quad H^2(P,Q) = \int (\sqrt{p} - \sqrt{q})^2"
    ),
    **_STRICTLY_PROPER,
    minimiser_note=(
        "unique: v* = log r, D* = r/(1+r). The loss is unbounded in v; the implementation clamps v "
        "to |v| ≤ 150 in float32 (1392 in float64), beyond which the gradient is zero."
    ),
)

# The 0-1 rule: ``loss`` returns the exact empirical 0-1 risk (ties D = 1/2 count as errors on P).
# Its gradient is identically zero (the logits stay in the autograd graph so ``backward()`` runs),
# so gradient descent cannot train a network with it -- no surrogate is substituted here.
misclassification = _rule(
    _misclassification_real,
    _misclassification_fake,
    name="misclassification",
    label="Misclassification (0-1) loss",
    score_tex=(
        r"\mathbb{E}_{p^*}[-\mathbb{I}[\mathcal{D} \le 0.5]] + \mathbb{E}_{p}[-\mathbb{I}[\mathcal{D} > 0.5]]"
    ),
    loss_tex=r"\mathbb{E}_{P}[\mathbb{I}[v \le 0]] + \mathbb{E}_{Q}[\mathbb{I}[v > 0]]",
    proper=True,
    strictly_proper=False,
    citation=f"{_SCORE_CITE},nguyen2009surrogate,reid2011information",
    implied_f=_f_misclassification,
    f_tex=r"-\min(u, 1)",
    divergence="total variation",
    divergence_tex=r"\int q\,f(p/q) = \mathrm{TV}(P,Q) - 1,\quad \mathrm{TV} = \tfrac12\int|p-q|",
    optimal_logit=None,
    minimiser_note=(
        "not unique: any v > 0 where r > 1, any v ≤ 0 where r < 1, anything where r = 1; "
        "the 0-1 risk has zero gradient almost everywhere, so it cannot train a network."
    ),
)

hinge = _rule(
    _hinge_real,
    _hinge_fake,
    name="hinge",
    label="Hinge loss (on the logit)",
    score_tex=(
        r"\mathbb{E}_{p^*}\left[-\max\left(0, 1 - \log\frac{\mathcal{D}}{1-\mathcal{D}}\right)\right]"
        r" + \mathbb{E}_{p}\left[-\max\left(0, 1 + \log\frac{\mathcal{D}}{1-\mathcal{D}}\right)\right]"
    ),
    loss_tex=r"\mathbb{E}_{P}[\max(0, 1-v)] + \mathbb{E}_{Q}[\max(0, 1+v)]",
    proper=False,
    strictly_proper=False,
    citation=f"{_SCORE_CITE},nguyen2009surrogate,reid2011information",
    implied_f=_f_hinge,
    f_tex=r"-2\min(u, 1)",
    divergence="total variation",
    divergence_tex=r"\int q\,f(p/q) = 2\,\mathrm{TV}(P,Q) - 2,\quad \mathrm{TV} = \tfrac12\int|p-q|",
    optimal_logit=_logit_hinge,
    minimiser_note=(
        "v* = +1 where r > 1, v* = -1 where r < 1 (any v in [-1, 1] at r = 1): the logit is "
        "clipped, so D/(1 − D) = e^{±1} does not recover r. Not a proper scoring rule."
    ),
)

spherical = _rule(
    _spherical_real,
    _spherical_fake,
    name="spherical",
    label="Spherical score",
    score_tex=(
        r"\mathbb{E}_{p^*}[\alpha\mathcal{D}] + \mathbb{E}_{p}[\alpha(1-\mathcal{D})];\quad "
        r"\alpha = (1 - 2\mathcal{D} + 2\mathcal{D}^2)^{-1/2}"
    ),
    loss_tex=r"-\mathbb{E}_{P}[(1+e^{-2v})^{-1/2}] - \mathbb{E}_{Q}[(1+e^{2v})^{-1/2}]",
    citation=f"{_SCORE_CITE},gneiting2007scoring",
    implied_f=_f_spherical,
    f_tex=r"\sqrt{1+u^2}",
    divergence="spherical-score divergence (no standard name)",
    divergence_tex=(
        r"\int q\,f(p/q) = \int \sqrt{p^2+q^2};\quad "
        r"\tilde f(u) = \sqrt{1+u^2} - \frac{1+u}{\sqrt 2} \ge 0,\ \tilde f(1) = 0"
    ),
    **_STRICTLY_PROPER,
    minimiser_note="unique: v* = log r, D* = r/(1+r) (Cauchy-Schwarz: (D, 1-D) parallel to (r, 1)).",
)

RULES: dict[str, ScoringRule] = {
    r.name: r for r in (bernoulli, brier, exponential, misclassification, hinge, spherical)
}
SCORING_RULES: tuple[str, ...] = tuple(RULES)


def get_rule(name: str) -> ScoringRule:
    """Return the :class:`ScoringRule` called ``name`` (one of :data:`SCORING_RULES`)."""
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown scoring rule {name!r}; allowed names: {', '.join(SCORING_RULES)}"
        ) from None


def ratio_from_logit(v: torch.Tensor) -> torch.Tensor:
    r"""Density-ratio estimate :math:`\hat r = D/(1-D) = e^{v}`.

    Overflows to ``inf`` for ``v`` above ~88.7 in float32; prefer :func:`log_ratio_from_logit`.
    """
    return torch.exp(v)


def log_ratio_from_logit(v: torch.Tensor) -> torch.Tensor:
    r"""Log density-ratio estimate :math:`\log \hat r = \log\frac{D}{1-D} = v` (the logit itself)."""
    return v


class PointwiseFit(NamedTuple):
    """Result of :func:`fit_ratio_pointwise`: the minimising logit and the minimal risk per point."""

    logit: np.ndarray
    risk: np.ndarray


def fit_ratio_pointwise(
    rule: ScoringRule | str,
    p: ArrayLike,
    q: ArrayLike,
    *,
    bound: float = 30.0,
    xatol: float = 1e-9,
) -> PointwiseFit:
    r"""Minimise the pointwise risk :math:`p\,\ell_1(v) + q\,\ell_0(v)` over ``v`` at each point.

    An optimiser-based route to the population minimiser, independent of ``optimal_logit``:
    ``p`` and ``q`` are density values (e.g. on a grid), and for each pair
    :func:`scipy.optimize.minimize_scalar` (bounded Brent) searches ``v`` in ``[-bound, bound]``
    in float64. For strictly proper rules the result is ``log(p/q)`` (clipped to the bound where
    ``p`` or ``q`` is 0); for hinge it is ``+-1``; for the 0-1 loss the risk is piecewise constant
    and the returned ``v`` is an arbitrary point of the minimising half-line. ``-risk/q`` is the
    implied ``f(p/q)``.
    """
    r = get_rule(rule) if isinstance(rule, str) else rule
    pa = np.asarray(p, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    if pa.shape != qa.shape:
        raise ValueError(f"p has shape {pa.shape} but q has shape {qa.shape}; they must match")
    if not (np.isfinite(pa).all() and np.isfinite(qa).all()):
        raise ValueError("p and q must be finite")
    if (pa < 0).any() or (qa < 0).any():
        raise ValueError("p and q must be >= 0 (density values)")
    if not (is_real(bound) and math.isfinite(bound) and bound > 0):
        raise ValueError(f"bound={bound!r} must be a finite real number > 0")
    if not (is_real(xatol) and math.isfinite(xatol) and xatol > 0):
        raise ValueError(f"xatol={xatol!r} must be a finite real number > 0")
    logit = np.empty(pa.shape)
    risk = np.empty(pa.shape)
    for idx in np.ndindex(pa.shape):
        pi = torch.tensor(pa[idx], dtype=torch.float64)
        qi = torch.tensor(qa[idx], dtype=torch.float64)

        def objective(v: float) -> float:
            return float(r.pointwise_risk(torch.tensor(v, dtype=torch.float64), pi, qi))

        res = minimize_scalar(objective, bounds=(-bound, bound), method="bounded", options={"xatol": xatol})
        logit[idx] = res.x
        risk[idx] = res.fun
    return PointwiseFit(logit=logit, risk=risk)
