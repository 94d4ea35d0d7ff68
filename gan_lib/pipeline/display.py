"""What the chapters show besides figures: glued numbers, Markdown tables, math in table cells, and
the one-line callout of a numeric check.

- :func:`glue` / :func:`glue_text` -- ``myst_nb.glue`` for numbers the prose cites: NumPy scalars
  become Python numbers (``{glue:text}`` formats need those), or the number is glued as formatted
  text with a dash where it is missing.
- :func:`markdown_table` / :func:`tex` -- a table rendered from library objects, with math cells
  whose ``|`` cannot end the cell.
- :func:`check` -- assert a claim's number against a reference (or a bound) and show the reader a
  one-line callout with both numbers, from the same call.

This module belongs to the book pipeline (it needs IPython, and ``myst_nb`` for gluing); nothing
outside :mod:`gan_lib.pipeline` imports it.
"""

from __future__ import annotations

import math
from typing import Any

import IPython.display as ipd

__all__ = ["glue", "glue_text", "count", "markdown_table", "tex", "check", "not_checked", "report_only", "mean_se"]

#: What :func:`glue_text` glues for a missing value (``None`` or NaN).
MISSING = "—"


def _plain(value: Any) -> Any:
    """A NumPy (or torch) scalar as the Python number it holds; anything else unchanged."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


def glue(name: str, value: Any, display: bool = False) -> None:
    """``myst_nb.glue(name, value, display)``, with a NumPy scalar or 0-d array turned into a
    Python number first (its text form is then ``1.25``, not ``np.float64(1.25)``, which
    ``{glue:text}`name:.2f``` could not format). Not displayed unless ``display`` is true."""
    import myst_nb

    myst_nb.glue(name, _plain(value), display=display)


def glue_text(name: str, value: Any, fmt: str = ".3f", *, missing: str = MISSING) -> None:
    """Glue ``format(value, fmt)`` as text; ``None`` or NaN (a quantity this run did not compute,
    e.g. for an objective the reader left out) is glued as ``missing``, a dash by default."""
    value = _plain(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        text = missing
    else:
        text = format(value, fmt)
    glue(name, text)


def count(n: int, word: str, plural: str | None = None) -> str:
    """``n`` and ``word`` in agreement: ``count(1, "step")`` is ``"1 step"``, ``count(3, "step")``
    ``"3 steps"``; ``plural`` where adding an s is wrong (``count(2, "critic step per generator step",
    "critic steps per generator step")``)."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def pm(value: float, error: float, fmt: str = ".3f", *, sign: bool = False) -> str:
    """``"value ± error"``, both in ``fmt`` (``sign=True``: a ``+`` before a positive value), with
    non-breaking spaces around ``±`` so that a table cell never splits between the two numbers."""
    return f"{value:{'+' if sign else ''}{fmt}}\u00a0±\u00a0{error:{fmt}}"


def mean_se(values: Any, fmt: str = ".3f") -> str:
    """``"mean ± standard error"`` of a sample (standard deviation with ``ddof=1`` over ``sqrt(n)``),
    both in ``fmt`` (:func:`pm`); needs at least two values."""
    import numpy as np

    x = np.asarray(values, dtype=float).ravel()
    if x.size < 2:
        raise ValueError(f"mean_se needs at least 2 values for a standard error; got {x.size}")
    return pm(x.mean(), x.std(ddof=1) / math.sqrt(x.size), fmt)


def pm_by_se(mean: float, se: float, max_decimals: int = 2, *, sign: bool = False) -> str:
    """``"mean ± se"`` rounded at the standard error's second significant digit, for a table cell.

    ``-893.4, 796.8`` gives ``"-890 ± 800"``, ``-41.04, 28.78`` gives ``"-41 ± 29"``, ``-13.51, 3.82``
    gives ``"-13.5 ± 3.8"`` and ``-4.617, 0.052`` gives ``"-4.62 ± 0.05"``: no more decimals than ``max_decimals``, and ``max_decimals`` when the
    standard error is zero or not finite. ``sign=True`` writes a ``+`` before a positive mean (for
    differences). Written by :func:`pm`.
    """
    if not isinstance(max_decimals, int) or isinstance(max_decimals, bool) or max_decimals < 0:
        raise ValueError(f"max_decimals={max_decimals!r} must be an integer >= 0")
    mean, se = float(mean), float(se)
    if se > 0 and math.isfinite(se):
        decimals = min(1 - math.floor(math.log10(se)), max_decimals)
    else:
        decimals = max_decimals
    if decimals < 0:  # a standard error of 100 or more: round to tens, hundreds, ... and print integers
        mean = round(mean, decimals) if math.isfinite(mean) else mean
        se = round(se, decimals)
        decimals = 0
    return pm(mean, se, f".{decimals}f", sign=sign)


def markdown_table(df: Any) -> str:
    """A pandas DataFrame as a Markdown (pipe) table: a header row of the column names, then one row
    per record, each cell ``str(value)``.

    Every ``|`` in a cell is escaped as ``\\|`` (Markdown's way to put a pipe in a cell; the parser
    removes the backslash) and line breaks become spaces, so no cell can end early or split its
    row. Math cells made by :func:`tex` hold no ``|`` at all.
    """

    def cell(value: Any) -> str:
        return " ".join(str(value).splitlines()).replace("|", r"\|")

    rows = [[cell(c) for c in df.columns], ["---"] * df.shape[1]]
    rows += [[cell(v) for v in record] for record in df.itertuples(index=False, name=None)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def tex(s: str) -> str:
    r"""Inline math ``$s$`` for a Markdown table cell.

    A ``|`` would end the cell, so the norm bars ``\|`` become ``\Vert`` and single bars ``|``
    become ``\vert`` (one backslash each: ``\\`` would be a TeX line break). An empty ``s`` gives
    an empty cell (``$$`` would open display math).
    """
    if not s.strip():
        return ""
    return "$" + s.replace(r"\|", r"\Vert ").replace("|", r"\vert ") + "$"


def _num(x: float, fmt: str) -> str:
    """A number for the callout, with a typographic minus."""
    return format(x, fmt).replace("-", "−")


def _small(x: float) -> str:
    """A difference in short scientific notation: 1.6e-3, not 1.6e-03."""
    if not math.isfinite(x):
        return str(x).replace("-", "−")
    mantissa, _, exponent = f"{x:.1e}".partition("e")
    return f"{mantissa}e{int(exponent)}".replace("-", "−")


def _float(name: str, value: Any) -> float:
    try:
        return float(_plain(value))
    except (TypeError, ValueError):
        raise TypeError(f"check: {name}={value!r} is not a number") from None


def check(
    claim: str,
    value: Any,
    reference: Any = None,
    tol: Any = None,
    *,
    below: Any = None,
    above: Any = None,
    source: str | None = None,
    fmt: str = ".6g",
) -> None:
    """Assert a numeric claim and show it to the reader as a one-line callout.

    Two forms:

    - ``check(claim, value, reference, tol)``: ``|value - reference| <= tol``; the callout reads
      "✓ claim: value vs reference (source), |Δ| = 1.6e-3 ≤ tol".
    - ``check(claim, value, below=b)``, ``check(claim, value, above=a)`` or both: ``value <= b``,
      ``value >= a``; the callout puts the value first: "✓ claim: value ≤ b (source)", "✓ claim:
      value ≥ a", and "a ≤ value ≤ b" for both bounds.

    ``source`` says where the reference or bound comes from ("quadrature", "closed form"). A NaN
    value fails. On failure raises ``AssertionError`` with the claim and the numbers; on success
    displays the callout as Markdown and returns ``None`` (so a cell ending with a check shows it
    once). After :func:`report_only` with a reader's parameters, a failure is shown instead, as
    "✗ claim: ... (fails in this run, whose parameters you changed: lr; not asserted)", and the
    run goes on.
    """
    v = _float("value", value)
    where = f" ({source})" if source else ""
    if reference is not None or tol is not None:
        if reference is None or tol is None or below is not None or above is not None:
            raise ValueError(
                f"check: give reference and tol, or below/above, not a mix "
                f"(reference={reference!r}, tol={tol!r}, below={below!r}, above={above!r})"
            )
        r, t = _float("reference", reference), _float("tol", tol)
        if not t >= 0 or math.isinf(t):
            raise ValueError(f"check: tol={tol!r} must be a finite number >= 0")
        gap = abs(v - r)
        if not gap <= t:
            _failed(f"✗ {claim}: {v!r} vs {r!r}{where}, |Δ| = {gap!r} > tol = {t!r}",
                    f"✗ {claim}: {_num(v, fmt)} vs {_num(r, fmt)}{where}, |Δ| = {_small(gap)} > {_num(t, 'g')}")
            return
        text = f"✓ {claim}: {_num(v, fmt)} vs {_num(r, fmt)}{where}, |Δ| = {_small(gap)} ≤ {_num(t, 'g')}"
    else:
        if below is None and above is None:
            raise ValueError("check: give reference and tol, or a bound (below= and/or above=)")
        hi = None if below is None else _float("below", below)
        lo = None if above is None else _float("above", above)
        if not ((hi is None or v <= hi) and (lo is None or v >= lo)):
            bounds = " and ".join(s for s in (lo is not None and f">= {lo!r}", hi is not None and f"<= {hi!r}") if s)
            shown = " and ".join(s for s in (lo is not None and f"≥ {_num(lo, fmt)}", hi is not None
                                             and f"≤ {_num(hi, fmt)}") if s)
            _failed(f"✗ {claim}: {v!r} is not {bounds}{where}", f"✗ {claim}: {_num(v, fmt)} is not {shown}{where}")
            return
        # the value first, as the reader looks for it: "v ≤ b", "v ≥ a"; a bracket reads "a ≤ v ≤ b"
        if hi is None:
            text = f"✓ {claim}: {_num(v, fmt)} ≥ {_num(lo, fmt)}{where}"
        else:
            text = f"✓ {claim}: " + ("" if lo is None else f"{_num(lo, fmt)} ≤ ") + f"{_num(v, fmt)} ≤ {_num(hi, fmt)}{where}"
    ipd.display(ipd.Markdown(text))


# the parameters a reader chose for this run (report_only): a failing check is shown, not raised
_REPORTED: tuple[str, ...] = ()


def report_only(names: Any) -> None:
    """Make a failing :func:`check` show its callout, marked ✗, instead of raising, when ``names``
    (the parameters the reader chose for this run: :func:`gan_lib.pipeline.params.given`) is not
    empty; with none, as in the book's own build, checks assert again.

    A chapter's claims are asserted on its profiles' settings; with a reader's own values some of
    what they observe of training (a generator that settles, a critic that reaches its optimum)
    need not hold, and the reader then sees which claims failed rather than a chapter stopped at
    the first one.
    """
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"report_only: names={names!r} must be a list of parameter names")
    global _REPORTED
    _REPORTED = tuple(names)


def _failed(message: str, shown: str) -> None:
    """A check failed: raise ``message``, or after :func:`report_only` show ``shown`` and say why."""
    if not _REPORTED:
        raise AssertionError(message)
    which = ", ".join(_REPORTED)
    ipd.display(ipd.Markdown(f"{shown} (fails in this run, whose parameters you changed: {which}; not asserted)"))


def not_checked(claim: str, reason: str) -> None:
    """Show, in place of a :func:`check`, that ``claim`` is not asserted in this run and why.

    For a claim that holds only where the run allows it (a crossing the run is too short to
    reach): the reader who changed a parameter sees the check's place kept, with the reason,
    instead of a callout that silently went away. The callout reads "○ not checked in this run:
    claim (reason)".
    """
    for name, text in (("claim", claim), ("reason", reason)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"not_checked: {name}={text!r} must be a non-empty string")
    ipd.display(ipd.Markdown(f"○ not checked in this run: {claim} ({reason})"))
