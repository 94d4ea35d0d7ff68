"""Validation of a chapter's papermill parameters.

Every chapter's first code cell (tagged ``parameters``) holds the knobs a reader may change; the
cell after it (tagged ``validate``) calls :func:`validate`, which stops with a message that names
the bad value and says what is allowed. ``ganbook run`` executes those two cells alone before
anything heavy runs, so a bad value is refused up front.

Example::

    P = validate(globals(), profile=one_of("smoke", "cpu", "gpu"), steps=optional(integer(1, 10**6)))
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from gan_lib.validation import ALPHA_ONE_GAP, alpha_number, is_integer, is_real

__all__ = [
    "ParameterError",
    "Check",
    "one_of",
    "integer",
    "real",
    "alpha",
    "boolean",
    "optional",
    "list_of",
    "validate",
    "with_profile",
    "given",
    "GIVEN_NAME",
    "PROFILES",
]

#: The profiles every chapter knows: ``smoke`` (seconds, for tests), ``cpu`` (the default book
#: build, minutes on 2 cores), ``gpu`` (larger runs on a CUDA machine).
PROFILES = ("smoke", "cpu", "gpu")

#: The environment variable the book pipeline sets for a chapter's kernel: a JSON list of the
#: parameters set to other values than the chapter's defaults, ``profile`` left out
#: (``ganbook run ... -p lr 1e-3`` gives ``["lr"]``; the book's build ``[]``).
GIVEN_NAME = "GANBOOK_GIVEN"


class ParameterError(ValueError):
    """A notebook parameter has a value outside what is allowed."""


@dataclass(frozen=True)
class Check:
    """A named predicate with a human description of what is allowed."""

    allowed: str
    accept: Callable[[Any], bool]
    hint: Callable[[Any], str] | None = None  #: more advice for some refused values ("" for none)

    def __call__(self, name: str, value: Any) -> Any:
        try:
            ok = self.accept(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            extra = self.hint(value) if self.hint is not None else ""
            raise ParameterError(f"parameter {name}={value!r} is not allowed: expected {self.allowed}{extra}")
        return value


def one_of(*choices: Any) -> Check:
    """The value must be one of ``choices``."""
    return Check("one of " + ", ".join(repr(c) for c in choices), lambda v: v in choices)


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    """An integer in ``[lo, hi]`` (either bound may be None)."""
    lo_s = "-inf" if lo is None else str(lo)
    hi_s = "inf" if hi is None else str(hi)
    return Check(
        f"an integer in [{lo_s}, {hi_s}]",
        lambda v: is_integer(v) and (lo is None or v >= lo) and (hi is None or v <= hi),
    )


def real(
    lo: float | None = None,
    hi: float | None = None,
    *,
    open_lo: bool = False,
    open_hi: bool = False,
    exclude: tuple[float, ...] = (),
) -> Check:
    """A finite real number between ``lo`` and ``hi`` (open or closed ends), not in ``exclude``."""
    left = "(" if open_lo or lo is None else "["
    right = ")" if open_hi or hi is None else "]"
    text = f"a finite number in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
    if exclude:
        text += " other than " + ", ".join(repr(e) for e in exclude)

    def accept(v: Any) -> bool:
        if not is_real(v):
            return False
        v = float(v)
        if not math.isfinite(v):
            return False
        if lo is not None and (v < lo or (open_lo and v == lo)):
            return False
        if hi is not None and (v > hi or (open_hi and v == hi)):
            return False
        return v not in exclude

    return Check(text, accept)


def alpha() -> Check:
    """An order of the alpha-divergence family, as :func:`gan_lib.validation.alpha_number` allows."""
    return Check(
        f"a finite number with |alpha| >= {ALPHA_ONE_GAP:g} and |alpha - 1| >= {ALPHA_ONE_GAP:g}",
        lambda v: alpha_number(v) is not None,
    )


def boolean() -> Check:
    """``True`` or ``False``."""
    return Check("True or False", lambda v: isinstance(v, (bool, np.bool_)))


def optional(check: Check) -> Check:
    """``None`` (meaning: take the profile's value) or a value passing ``check``."""
    return Check(f"None (use the profile's value) or {check.allowed}", lambda v: v is None or check.accept(v), check.hint)


def list_of(check: Check, *, min_len: int = 1) -> Check:
    """A non-empty list (or tuple) whose items all pass ``check``."""
    return Check(
        f"a list of at least {min_len} item(s), each {check.allowed}",
        lambda v: isinstance(v, (list, tuple)) and len(v) >= min_len and all(check.accept(x) for x in v),
        _list_hint,
    )


def _list_hint(value: Any) -> str:
    """For a string where a list was expected (e.g. ``[mog,banana]`` typed without quotes)."""
    if not isinstance(value, str):
        return ""
    return ("; on the command line a list is written as a Python list in shell quotes, with quoted "
            """names, e.g. -p datasets '["mog", "banana"]' or -p clip_values '[0.01, 0.1]'""")


def validate(namespace: Mapping[str, Any], **checks: Check) -> Mapping[str, Any]:
    """Check every named parameter in ``namespace`` and return them as a read-only mapping.

    Raises :class:`ParameterError` naming the first bad value and what is allowed, or naming a
    parameter that is missing from ``namespace``.
    """
    out: dict[str, Any] = {}
    for name, check in checks.items():
        if name not in namespace:
            raise ParameterError(f"parameter {name!r} is missing from the parameters cell")
        out[name] = check(name, namespace[name])
    return MappingProxyType(out)


def with_profile(params: Mapping[str, Any], table: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Fill every parameter that is ``None`` with the value the chosen profile gives it.

    ``table`` maps a profile name to its sizes, e.g. ``{"smoke": {"steps": 20}, "cpu": {...}}``.
    """
    profile = params.get("profile", "cpu")
    if profile not in table:
        raise ParameterError(f"parameter profile={profile!r} is not allowed: expected one of {sorted(table)}")
    sizes = table[profile]
    out = dict(params)
    for name, value in params.items():
        if value is None:
            if name not in sizes:
                raise ParameterError(f"parameter {name} is None but profile {profile!r} gives no value for it")
            out[name] = sizes[name]
    return out


def given() -> tuple[str, ...]:
    """The parameters the reader changed for this run, besides the profile: ``()`` for a run on a
    profile's own settings (the book's build), or for a notebook not run by the pipeline.

    Read from the environment variable :data:`GIVEN_NAME`, which the pipeline sets for the
    chapter's kernel; anything else there than a JSON list of names is refused.
    """
    text = os.environ.get(GIVEN_NAME, "[]")
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ParameterError(f"{GIVEN_NAME}={text!r} must be a JSON list of parameter names")
    return tuple(names)
