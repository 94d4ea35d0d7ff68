"""The one set of value validators the library uses: loss options, divergence options, notebook parameters.

Each validator takes a value and returns it normalised (a ``float`` for a real number, ...) or raises
``ValueError`` with a message saying what is allowed (the caller prefixes the name of the value).
``numbers.Real`` covers Python and NumPy numbers alike (``np.float32(0.5)`` is accepted as ``0.5``);
``bool`` (and ``np.bool_``) and strings are refused where a number is expected.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np

__all__ = [
    "ALPHA_ONE_GAP",
    "is_real",
    "is_integer",
    "real_number",
    "alpha_number",
    "integer_number",
    "SEED_MAX",
    "seed_number",
    "boolean",
    "one_of",
    "named",
]

#: Orders ``alpha`` with ``|alpha - 1| < ALPHA_ONE_GAP`` (or ``|alpha| < ALPHA_ONE_GAP``) are refused
#: by :func:`alpha_number`; closer to the KL limits, use ``kl`` / ``reverse_kl`` themselves. The
#: losses (``poole_alpha``, ``fgan_alpha``) and the alpha :class:`~gan_lib.divergences.FDivergence`
#: are written so that nothing cancels as alpha -> 1 or alpha -> 0 (float32 relative error ~1e-7 at
#: the gap, tested in tests/test_loss_defects.py). The gap stays for float64 code that still divides
#: a cancelling difference by ``alpha (alpha - 1)`` (Gaussian closed forms from the Chernoff
#: coefficient, the quadrature integrand, the generator divergences' equivalent f, whose error grows
#: like ``1e-16 / (alpha - 1)^2``: about 1e-8 at 1e-4). A value at the gap itself may round inside
#: it (``1 + 1e-4 - 1 < 1e-4`` in binary floating point).
ALPHA_ONE_GAP: float = 1e-4


def is_real(value: Any) -> bool:
    """``value`` is a real number (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value: Any) -> bool:
    """``value`` is an integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def real_number(value: Any) -> float:
    """Accept a finite real number; return it as ``float``."""
    if not is_real(value) or not math.isfinite(float(value)):
        raise ValueError("must be a finite real number")
    return float(value)


def alpha_number(value: Any) -> float:
    """Accept a finite real ``alpha`` at least :data:`ALPHA_ONE_GAP` away from 0 and 1."""
    allowed = f"must be a finite real number with |alpha| >= {ALPHA_ONE_GAP:g} and |alpha - 1| >= {ALPHA_ONE_GAP:g}"
    try:
        out = real_number(value)
    except (ValueError, OverflowError):
        raise ValueError(allowed) from None
    if abs(out) < ALPHA_ONE_GAP or abs(out - 1.0) < ALPHA_ONE_GAP:
        raise ValueError(allowed + " (the limits alpha -> 1 and alpha -> 0 are KL(P||Q) and KL(Q||P): use those)")
    return out


def integer_number(value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """Accept an integer in ``[lo, hi]`` (either bound may be ``None``); return it as ``int``."""
    ok = is_integer(value) and (lo is None or value >= lo) and (hi is None or value <= hi)
    if not ok:
        raise ValueError(f"must be an integer in [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]")
    return int(value)


#: The largest seed ``torch.Generator.manual_seed`` takes (seeds are unsigned 64-bit integers).
SEED_MAX: int = 2**64 - 1


def seed_number(value: Any) -> int:
    """Accept an integer seed in ``[0, SEED_MAX]``; return it as ``int``."""
    return integer_number(value, 0, SEED_MAX)


def boolean(value: Any) -> bool:
    """Accept ``True`` or ``False`` only."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError("must be True or False")
    return bool(value)


def one_of(*choices: Any) -> Callable[[Any], Any]:
    """A validator accepting exactly one of ``choices`` (same type and value)."""

    def check(value: Any) -> Any:
        for choice in choices:
            if value is choice or (type(value) is type(choice) and value == choice):
                return choice
        raise ValueError("must be one of " + ", ".join(repr(c) for c in choices))

    check.__doc__ = "one of " + ", ".join(repr(c) for c in choices)
    return check


def named(name: str, value: Any, validator: Callable[[Any], Any]) -> Any:
    """``validator(value)``, its ``ValueError`` prefixed with ``name=value`` (``"seed=-1 not allowed:
    must be an integer in [0, ...]"``): how callers name the value a validator refuses."""
    try:
        return validator(value)
    except ValueError as err:
        raise ValueError(f"{name}={value!r} not allowed: {err}") from None
