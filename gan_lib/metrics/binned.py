"""Divergences between two histograms: distributions known only through their masses in the same bins.

Chapter 4 compares a 1-D generator's bin masses (:func:`gan_lib.metrics.pushforward_masses_1d`)
with the data's exact bin masses. Between the bin masses the Jensen--Shannon divergence is a lower
bound on the continuous one (binning is a data-processing step) that converges as the bins shrink.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

__all__ = ["binned_js"]


def _masses(name: str, values: Any) -> np.ndarray:
    m = np.asarray(values, dtype=float)
    if m.ndim != 1 or m.size == 0:
        raise ValueError(f"{name} has shape {m.shape}; expected a non-empty vector of bin masses")
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError(f"{name} must hold finite masses >= 0; got min {float(m.min())!r}, max {float(m.max())!r}")
    if not m.sum() > 0:
        raise ValueError(f"{name} sums to {float(m.sum())!r}; expected a positive total mass")
    return m


def binned_js(p_masses: Any, q_masses: Any) -> float:
    r"""Jensen--Shannon divergence, in nats, between two histograms on the same bins.

    ``JS(p, q) = KL(p || m)/2 + KL(q || m)/2`` with ``m = (p + q)/2``, after normalising each mass
    vector to sum to one; it lies in ``[0, log 2]``. Computed by
    :func:`scipy.spatial.distance.jensenshannon`, which returns the Jensen--Shannon *distance*, the
    square root of the divergence, in the base given (here ``e``, for nats).
    """
    p, q = _masses("p_masses", p_masses), _masses("q_masses", q_masses)
    if p.shape != q.shape:
        raise ValueError(f"p_masses has {p.size} bins and q_masses {q.size}; they must be the same bins")
    return float(jensenshannon(p, q, base=math.e) ** 2)
