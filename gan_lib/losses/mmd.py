r"""The maximum mean discrepancy as a GAN loss (MMD-GAN, Li et al. 2017).

With a kernel ``k`` and its reproducing-kernel Hilbert space ``\mathcal H``, the maximum mean
discrepancy is the integral probability metric over the unit ball of ``\mathcal H``
(Gretton et al. 2012):

``\mathrm{MMD}(P, Q) = \sup_{\|f\|_{\mathcal H} \le 1} \mathbb{E}_P[f] - \mathbb{E}_Q[f]``,
``\mathrm{MMD}^2 = \mathbb{E}\,k(x, x') + \mathbb{E}\,k(y, y') - 2\,\mathbb{E}\,k(x, y)``,

``x, x' \sim P`` and ``y, y' \sim Q`` independent. The supremum has a closed form, so a fixed
kernel needs no adversary: the generator descends ``\mathrm{MMD}^2`` of its samples against the
data (generative moment matching). MMD-GAN *learns* the kernel: ``k_\phi(x, y) = k(\phi(x),
\phi(y))`` with ``\phi`` the features of a critic network, which maximises ``\mathrm{MMD}^2`` of the
features while the generator minimises it.

Conventions: the "discriminator outputs" of these losses are *features*, ``(n, k)`` per sample
(``(n,)`` is read as ``k = 1``), or a stack ``(K, n, k)`` of ``K`` independent members; the
kernel is a sum of Gaussians ``k(a, b) = \sum_h \exp(-\|a - b\|^2 / (2 h^2))`` over
``bandwidths`` (the convention of :func:`gan_lib.metrics.mmd`). The statistic couples the whole
batch, so these are plain functions and a small loss object (:class:`MMDLoss`, with the
``discriminator`` / ``generator`` halves :func:`gan_lib.train.train_gan` calls), not entries of the
per-sample loss registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from gan_lib.validation import boolean, is_real, real_number

__all__ = ["check_bandwidths", "gaussian_kernel", "mmd2", "mmd_discriminator", "mmd_generator", "MMDLoss"]


def check_bandwidths(bandwidths: Any) -> tuple[float, ...]:
    """``bandwidths`` (a number > 0 or a non-empty sequence of them) as a tuple of floats; anything
    else is refused with a ValueError naming the value."""
    allowed = f"bandwidths={bandwidths!r} not allowed; give a finite real number > 0 or a non-empty sequence of them"
    if isinstance(bandwidths, Tensor) or (isinstance(bandwidths, (list, tuple))
                                          and any(isinstance(h, Tensor) for h in bandwidths)):
        # numbers are taken as fixed constants: a tensor's gradient (a learned bandwidth) would be lost
        raise ValueError(allowed + " as Python or NumPy numbers (e.g. tensor.tolist()); the bandwidths are "
                         "fixed constants, so a learned bandwidth would get no gradient")
    values = [bandwidths] if is_real(bandwidths) else bandwidths
    try:
        out = tuple(real_number(h) for h in values)
    except (TypeError, ValueError):
        raise ValueError(allowed) from None
    if not out or min(out) <= 0:
        raise ValueError(allowed)
    return out


def _features(name: str, f: Tensor) -> Tensor:
    if not isinstance(f, Tensor) or not f.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor")
    if f.ndim == 1:
        f = f[:, None]
    if f.ndim not in (2, 3) or f.shape[-2] == 0:
        raise ValueError(f"{name} must have shape (n,), (n, k) or (K, n, k) with n >= 1; got {tuple(f.shape)}")
    return f


def gaussian_kernel(a: Tensor, b: Tensor, bandwidths: float | Sequence[float] = 1.0, *,
                    same_from: int | None = None) -> Tensor:
    r"""``\sum_h \exp(-\|a_i - b_j\|^2 / (2 h^2))`` for every pair: ``(n, k), (m, k) -> (n, m)``,
    or batched ``(K, n, k), (K, m, k) -> (K, n, m)``. Differentiable in both arguments.

    ``same_from=s``: row ``i`` of ``a`` is row ``s + i`` of ``b`` (``a`` a block of rows of ``b``),
    so those pairs are at distance exactly 0 and their kernel is exactly ``len(bandwidths)`` at any
    bandwidth, not the rounding of ``|a|^2 + |b|^2 - 2 a.b`` that a small bandwidth would magnify.
    ``b`` given as ``a`` itself means ``same_from=0``."""
    hs = check_bandwidths(bandwidths)
    if same_from is None and a is b:
        same_from = 0
    a, b = _features("a", a), _features("b", b)
    if a.shape[-1] != b.shape[-1] or a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} must agree in every dimension but the samples")
    # squared distances |a|^2 + |b|^2 - 2 a.b, clamped at 0 (rounding); the gradient of a Gaussian at
    # distance 0 is 0, so the clamp loses nothing
    d2 = (a.square().sum(-1)[..., :, None] + b.square().sum(-1)[..., None, :] - 2.0 * a @ b.transpose(-1, -2)).clamp_min(0.0)
    if same_from is not None:  # the pairs of a point with itself: a distance of exactly 0
        rows = torch.arange(d2.shape[-2], device=d2.device)
        d2 = d2.masked_fill(rows[:, None] + same_from == torch.arange(d2.shape[-1], device=d2.device), 0.0)
    # below sqrt(tiny) of the dtype, 2 h^2 underflows (0/0 at distance 0): then in float64, h by h
    tiny = math.sqrt(torch.finfo(d2.dtype).tiny)
    return sum(torch.exp(-d2 / (2.0 * h * h)) if h > tiny else torch.exp(-(d2.double() / h / h) * 0.5).to(d2.dtype)
               for h in hs)


def mmd2(x: Tensor, y: Tensor, bandwidths: float | Sequence[float] = 1.0, unbiased: bool = True) -> Tensor:
    r"""Squared MMD between samples ``x ~ P`` and ``y ~ Q`` with :func:`gaussian_kernel` (differentiable).

    ``unbiased=True`` (default): the U-statistic, leaving out the ``i = i'`` and ``j = j'`` terms
    of the two within-sample means (needs two points per sample; may be negative);
    ``unbiased=False``: the V-statistic, all pairs (``>= 0``). Shapes ``(n, k)`` and ``(m, k)``
    give a scalar; stacks ``(K, n, k)``, ``(K, m, k)`` give ``(K,)``, one value per member.
    """
    unb = boolean(unbiased)
    x, y = _features("x", x), _features("y", y)
    n, m = x.shape[-2], y.shape[-2]
    if unb and min(n, m) < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 points in each sample; got {n} and {m}")
    k_xx, k_yy, k_xy = gaussian_kernel(x, x, bandwidths), gaussian_kernel(y, y, bandwidths), gaussian_kernel(x, y, bandwidths)
    if unb:
        s_xx = (k_xx.sum((-2, -1)) - torch.diagonal(k_xx, dim1=-2, dim2=-1).sum(-1)) / (n * (n - 1))
        s_yy = (k_yy.sum((-2, -1)) - torch.diagonal(k_yy, dim1=-2, dim2=-1).sum(-1)) / (m * (m - 1))
    else:
        s_xx, s_yy = k_xx.mean((-2, -1)), k_yy.mean((-2, -1))
    return s_xx + s_yy - 2.0 * k_xy.mean((-2, -1))


def mmd_discriminator(
    f_real: Tensor, f_fake: Tensor, bandwidths: float | Sequence[float] = 1.0, unbiased: bool = True
) -> Tensor:
    r"""MMD-GAN critic loss ``-\mathrm{MMD}^2(\phi(x_r), \phi(x_f))`` (Li et al. 2017): the critic maximises
    the discrepancy of its features. A stack of members gives the mean over members."""
    return -mmd2(f_real, f_fake, bandwidths, unbiased).mean()


def mmd_generator(
    f_fake: Tensor, f_real: Tensor, bandwidths: float | Sequence[float] = 1.0, unbiased: bool = True
) -> Tensor:
    r"""MMD-GAN generator loss ``\mathrm{MMD}^2(\phi(x_r), \phi(x_f))`` (Li et al. 2017; with
    ``\phi`` the identity, generative moment matching). A stack of members gives the mean over members."""
    return mmd2(f_real, f_fake, bandwidths, unbiased).mean()


@dataclass(frozen=True)
class MMDLoss:
    """The two halves of MMD-GAN with a fixed list of ``bandwidths``, in the shape
    :func:`gan_lib.train.train_gan` expects: ``discriminator(f_real, f_fake)`` and
    ``generator(f_fake, f_real)``; the generator half needs the real features
    (``requires_real_in_generator``), and the statistic couples the batch (``batch_statistics``)."""

    bandwidths: tuple[float, ...] = (1.0,)
    unbiased: bool = True
    requires_real_in_generator: bool = True
    batch_statistics: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "bandwidths", check_bandwidths(self.bandwidths))
        object.__setattr__(self, "unbiased", boolean(self.unbiased))

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return mmd_discriminator(d_real, d_fake, self.bandwidths, self.unbiased)

    def generator(self, d_fake: Tensor, d_real: Tensor | None = None) -> Tensor:
        if d_real is None:
            raise ValueError("the MMD generator loss needs the real features: call generator(d_fake, d_real)")
        return mmd_generator(d_fake, d_real, self.bandwidths, self.unbiased)
