r"""Closed forms of f-divergences between two Gaussians, any dimension."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .fdiv import resolve

__all__ = ["GAUSSIAN_CLOSED_FORMS", "gaussian_divergence"]


#: Divergences with a closed form between two Gaussians (``"alpha"`` for any alpha).
GAUSSIAN_CLOSED_FORMS: tuple[str, ...] = (
    "kl",
    "reverse_kl",
    "jeffrey",
    "squared_hellinger",
    "pearson",
    "neyman",
    "alpha",
)


def _as_gaussian(mean: Any, cov: Any, which: str) -> tuple[Tensor, Tensor]:
    mu = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
    d = mu.numel()
    S = torch.as_tensor(cov, dtype=torch.float64)
    if S.ndim == 0:
        S = S * torch.eye(d, dtype=torch.float64)
    elif S.ndim == 1:
        if S.numel() != d:
            raise ValueError(f"cov_{which} has {S.numel()} entries but mean_{which} has {d}")
        S = torch.diag(S)
    if S.shape != (d, d):
        raise ValueError(f"cov_{which} has shape {tuple(S.shape)}; expected ({d}, {d}) or a scalar variance")
    if not (torch.isfinite(mu).all() and torch.isfinite(S).all()):
        raise ValueError(f"mean_{which}/cov_{which} contain non-finite values")
    if not torch.allclose(S, S.T):
        raise ValueError(f"cov_{which} must be symmetric")
    if torch.linalg.eigvalsh(S).min() <= 0:
        raise ValueError(f"cov_{which} must be positive definite (a 1-D scalar is a variance, std^2)")
    return mu, S


def _gauss_kl(mp: Tensor, Sp: Tensor, mq: Tensor, Sq: Tensor) -> float:
    d = mp.numel()
    Lq = torch.linalg.cholesky(Sq)
    delta = (mq - mp).reshape(-1, 1)
    trace = torch.cholesky_solve(Sp, Lq).diagonal().sum()
    maha = (delta * torch.cholesky_solve(delta, Lq)).sum()
    logdet = torch.linalg.slogdet(Sq)[1] - torch.linalg.slogdet(Sp)[1]
    return float(0.5 * (trace + maha - d + logdet))


def _gauss_log_chernoff(a: float, mp: Tensor, Sp: Tensor, mq: Tensor, Sq: Tensor) -> float:
    r"""``log \int p^a q^{1-a}`` for Gaussians; ``+inf`` when ``a Sq + (1-a) Sp`` is not positive definite."""
    Sa = a * Sq + (1.0 - a) * Sp
    Sa = 0.5 * (Sa + Sa.T)
    if torch.linalg.eigvalsh(Sa).min() <= 0:
        return math.inf
    La = torch.linalg.cholesky(Sa)
    delta = (mp - mq).reshape(-1, 1)
    maha = (delta * torch.cholesky_solve(delta, La)).sum()
    val = (
        0.5 * a * (a - 1.0) * maha
        - 0.5 * torch.linalg.slogdet(Sa)[1]
        + 0.5 * (1.0 - a) * torch.linalg.slogdet(Sp)[1]
        + 0.5 * a * torch.linalg.slogdet(Sq)[1]
    )
    return float(val)


def _alpha_from_chernoff(a: float, mp: Tensor, Sp: Tensor, mq: Tensor, Sq: Tensor) -> float:
    """alpha-divergence ``(\\int p^a q^{1-a} - 1) / (a (a - 1))``."""
    lc = _gauss_log_chernoff(a, mp, Sp, mq, Sq)
    if math.isinf(lc):
        return math.inf
    try:
        return math.expm1(lc) / (a * (a - 1.0))
    except OverflowError:
        return math.inf


def gaussian_divergence(
    name_or_div: str | FDivergence,
    mean_p: Any,
    cov_p: Any,
    mean_q: Any,
    cov_q: Any,
    **options: Any,
) -> float:
    r"""``D_f(N(mean_p, cov_p) || N(mean_q, cov_q))`` in closed form, any dimension.

    ``cov`` may be a scalar variance (std^2, times the identity in d > 1), a vector (diagonal) or a
    matrix. Formulas: KL the usual one; reverse KL = KL(Q||P); Jeffrey = their sum; the others from
    the Chernoff coefficient ``C_a = \int p^a q^{1-a}``, with
    ``log C_a = a(a-1)/2 Δ^T Σ_a^{-1} Δ - ½ log|Σ_a| + (1-a)/2 log|Σ_p| + a/2 log|Σ_q|``,
    ``Σ_a = a Σ_q + (1-a) Σ_p`` (finite only where ``Σ_a`` is positive definite): squared Hellinger
    ``2 - 2 C_{1/2}`` (Bhattacharyya), Pearson ``C_2 - 1`` (needs ``2Σ_q - Σ_p > 0``), Neyman
    ``C_{-1} - 1`` (needs ``2Σ_p - Σ_q > 0``), alpha ``(C_a - 1)/(a(a-1))``. Returns ``math.inf``
    where the divergence is infinite. ``options`` (``alpha=``) go to :func:`get_divergence`.
    """
    d = resolve(name_or_div, **options)
    if d.name not in GAUSSIAN_CLOSED_FORMS:
        raise ValueError(
            f"no Gaussian closed form for {d.name!r}; closed forms exist for: "
            f"{', '.join(GAUSSIAN_CLOSED_FORMS)} (use quad_divergence or mc_divergence instead)"
        )
    mp, Sp = _as_gaussian(mean_p, cov_p, "p")
    mq, Sq = _as_gaussian(mean_q, cov_q, "q")
    if mp.numel() != mq.numel():
        raise ValueError(f"P has dimension {mp.numel()} but Q has {mq.numel()}")
    if d.name == "kl":
        return _gauss_kl(mp, Sp, mq, Sq)
    if d.name == "reverse_kl":
        return _gauss_kl(mq, Sq, mp, Sp)
    if d.name == "jeffrey":
        return _gauss_kl(mp, Sp, mq, Sq) + _gauss_kl(mq, Sq, mp, Sp)
    if d.name == "squared_hellinger":
        return -2.0 * math.expm1(_gauss_log_chernoff(0.5, mp, Sp, mq, Sq))
    if d.name == "pearson":
        return 2.0 * _alpha_from_chernoff(2.0, mp, Sp, mq, Sq)
    if d.name == "neyman":
        return 2.0 * _alpha_from_chernoff(-1.0, mp, Sp, mq, Sq)
    assert d.alpha is not None
    return _alpha_from_chernoff(d.alpha, mp, Sp, mq, Sq)
