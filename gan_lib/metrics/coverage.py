r"""Sample metrics for mixtures: which modes a sample covers, and the masses a 1-D generator puts in bins."""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from scipy.special import ndtr
from torch import Tensor

from gan_lib.validation import is_real

__all__ = ["Coverage", "mode_coverage", "pushforward_masses_1d"]


# ------------------------------------------------------------------------------------------------
# Mode coverage
# ------------------------------------------------------------------------------------------------


def check_coverage_options(k: Any, min_fraction: Any) -> None:
    """Refuse, naming it, a ``k`` that is not a finite number > 0 or a ``min_fraction`` outside ``(0, 1]``."""
    for label, value, ok in (("k", k, lambda v: v > 0), ("min_fraction", min_fraction, lambda v: 0 < v <= 1)):
        if not (is_real(value) and math.isfinite(float(value)) and ok(float(value))):
            raise ValueError(f"{label}={value!r} not allowed; need k > 0 and 0 < min_fraction <= 1 (finite real numbers)")


def _real(name: str, x: Any) -> Tensor:
    """``x`` (a tensor of any real dtype, an array or nested lists) as a float64 tensor on the CPU,
    detached; complex, boolean and non-numeric inputs are refused, naming ``name``."""
    if isinstance(x, Tensor):
        t = x.detach().cpu()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a tensor or array of real numbers; got {type(x).__name__} ({err})") from None
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers; got dtype {t.dtype}")
    return t.to(torch.float64)


def _array(name: str, value: Any) -> np.ndarray:
    """``value`` (a tensor of any real dtype, an array or nested lists) as a float64 array."""
    return _real(name, value).numpy()


class Coverage(NamedTuple):
    """What :func:`mode_coverage` returns."""

    fractions: np.ndarray  #: fraction of the samples within ``k`` stds of each mode
    covered: int  #: number of modes holding at least ``min_fraction`` of the samples
    low_quality: float  #: fraction of the samples farther than ``k`` stds from every mode


def mode_coverage(
    samples: Any,
    means: Any,
    stds: Any,
    *,
    k: float = 3.0,
    min_fraction: float = 0.01,
) -> Coverage:
    """Which modes of a mixture a sample covers, and the fraction of low-quality samples.

    ``samples``: ``(n,)`` or ``(n, d)``; ``means``: ``(K,)`` or ``(K, d)``; ``stds``: ``(K,)``
    (isotropic). A sample belongs to mode ``j`` when it lies within ``k`` standard deviations of
    its mean (Euclidean distance ``<= k stds[j]``); mode ``j`` is covered when at least
    ``min_fraction`` of all samples belong to it; a sample that belongs to no mode is of low
    quality.
    """
    x = _array("samples", samples)
    m = _array("means", means)
    s = _array("stds", stds).reshape(-1)
    if x.ndim == 1:
        x = x[:, None]
    if m.ndim == 1:
        m = m[:, None]
    if x.ndim != 2 or m.ndim != 2 or x.shape[1] != m.shape[1] or s.shape[0] != m.shape[0]:
        raise ValueError(f"shapes do not match: samples {x.shape}, means {m.shape}, stds {s.shape}")
    if x.shape[0] == 0:
        raise ValueError("no samples")
    if not np.isfinite(m).all():
        raise ValueError(f"means must be finite; {int((~np.isfinite(m)).sum())} of their {m.size} values are nan or inf")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"stds must be finite and > 0; got {s.tolist()}")
    check_coverage_options(k, min_fraction)
    dist = np.linalg.norm(x[:, None, :] - m[None, :, :], axis=-1)  # (n, K)
    inside = dist <= k * s[None, :]
    fractions = inside.mean(axis=0)
    return Coverage(fractions, int((fractions >= min_fraction).sum()), float((~inside.any(axis=1)).mean()))


# ------------------------------------------------------------------------------------------------
# The density of a 1-D generator
# ------------------------------------------------------------------------------------------------


def pushforward_masses_1d(
    generator: Callable[[Tensor], Tensor],
    edges: Any,
    *,
    n_z: int = 400_000,
    z_max: float = 8.0,
) -> np.ndarray:
    r"""Masses that ``Q = G_\#N(0, 1)`` puts in the bins ``[edges[i], edges[i+1])``, by quadrature in ``z``.

    ``generator`` maps a float32 ``(n, 1)`` tensor of noise to ``(n, 1)`` samples. The noise range
    ``[-z_max, z_max]`` is cut into ``n_z`` cells of equal width; the mass ``\Phi(b) - \Phi(a)``
    of each cell is put in the bin of ``G`` at its midpoint (a midpoint rule for the pushforward,
    deterministic, exact as ``n_z`` grows for a continuous ``G``). Mass mapped outside the edges
    and the ``2(1 - \Phi(z_max))`` beyond the noise range are not counted, so the masses sum to
    at most 1.
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
        raise ValueError("edges must be an increasing 1-D array of at least 2 values")
    if n_z < 2 or not z_max > 0:
        raise ValueError(f"need n_z >= 2 and z_max > 0; got n_z={n_z}, z_max={z_max}")
    z_edges = np.linspace(-z_max, z_max, n_z + 1)
    cell_mass = np.diff(ndtr(z_edges))
    z_mid = torch.from_numpy(((z_edges[:-1] + z_edges[1:]) / 2.0).astype(np.float32)).reshape(-1, 1)
    with torch.no_grad():
        x = generator(z_mid).reshape(-1).double().numpy()
    masses, _ = np.histogram(x, bins=e, weights=cell_mass)
    return masses
