"""The chapters' display helpers: glue, Markdown tables with math cells, and the check callout."""

import math

import IPython.display
import numpy as np
import pandas as pd
import pytest

from gan_lib.pipeline import display

markdown_it = pytest.importorskip("markdown_it")


def table_cells(markdown: str) -> list[list[str]]:
    """The cells of a pipe table as the Markdown parser (markdown-it, MyST's parser) reads them."""
    md = markdown_it.MarkdownIt("commonmark").enable("table")
    rows, row = [], None
    for token in md.parse(markdown):
        if token.type == "tr_open":
            row = []
        elif token.type == "inline" and row is not None:
            row.append(token.content)
        elif token.type == "tr_close":
            rows.append(row)
            row = None
    return rows


@pytest.fixture
def shown(monkeypatch) -> list[str]:
    """The Markdown texts display.check displays."""
    out: list[str] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: out.append(obj.data))
    return out


@pytest.fixture
def glued(monkeypatch) -> dict:
    import myst_nb

    out: dict = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: out.__setitem__(name, (value, display)))
    return out


# ------------------------------------------------------------------------------------------------
# tex and markdown_table
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (r"\mathrm{KL}(P\|Q)", r"$\mathrm{KL}(P\Vert Q)$"),
        (r"|t| \le 1", r"$\vert t\vert  \le 1$"),
        (r"\tfrac12 |u - 1|", r"$\tfrac12 \vert u - 1\vert $"),
        (r"\|x\| + |y|", r"$\Vert x\Vert  + \vert y\vert $"),
        (r"u \log u", r"$u \log u$"),
        ("", ""),
    ],
)
def test_tex_writes_bars_as_single_backslash_commands(source: str, expected: str) -> None:
    assert display.tex(source) == expected


def test_tex_never_writes_a_tex_line_break() -> None:
    # chapter 4's old copy turned \| into \\vert: a line break followed by the word "vert"
    for source in (r"D(P\|Q)", r"\left\|x\right\|", r"|a|\,\|b\|"):
        out = display.tex(source)
        assert "\\\\" not in out and "|" not in out, out


def test_markdown_table_cells_survive_the_markdown_parser() -> None:
    df = pd.DataFrame({
        "name": ["KL(P||Q)", "reverse KL"],
        "$f(u)$": [display.tex(r"u\log u"), display.tex(r"-\log u")],
        "divergence": [display.tex(r"\mathrm{KL}(P\|Q)"), display.tex(r"\mathrm{KL}(Q\|P)")],
        "f'(1)": [1.0, -1.0],
    })
    cells = table_cells(display.markdown_table(df))
    assert cells == [
        ["name", "$f(u)$", "divergence", "f'(1)"],
        ["KL(P||Q)", r"$u\log u$", r"$\mathrm{KL}(P\Vert Q)$", "1.0"],
        ["reverse KL", r"$-\log u$", r"$\mathrm{KL}(Q\Vert P)$", "-1.0"],
    ]


def test_markdown_table_keeps_a_hand_written_bar_inside_math() -> None:
    df = pd.DataFrame({"a": [r"$|x|$"], "b": ["two\nlines"]})
    assert table_cells(display.markdown_table(df)) == [["a", "b"], [r"$|x|$", "two lines"]]


# ------------------------------------------------------------------------------------------------
# glue
# ------------------------------------------------------------------------------------------------


def test_glue_passes_python_numbers_for_numpy_scalars(glued: dict) -> None:
    display.glue("a", np.float64(1.25))
    display.glue("b", np.int64(3), display=True)
    display.glue("c", np.array(0.5))
    display.glue("d", "text")
    assert glued == {"a": (1.25, False), "b": (3, True), "c": (0.5, False), "d": ("text", False)}
    assert type(glued["a"][0]) is float and type(glued["b"][0]) is int and type(glued["c"][0]) is float


def test_glue_text_formats_and_marks_missing_values(glued: dict) -> None:
    display.glue_text("x", 0.123456)
    display.glue_text("n", np.int64(7), "d")
    display.glue_text("nan", float("nan"))
    display.glue_text("none", None, ".2f")
    display.glue_text("np_nan", np.float64("nan"), missing="n/a")
    assert {k: v for k, (v, _) in glued.items()} == {"x": "0.123", "n": "7", "nan": "—", "none": "—", "np_nan": "n/a"}


# ------------------------------------------------------------------------------------------------
# check
# ------------------------------------------------------------------------------------------------


def test_check_shows_both_numbers_and_the_gap(shown: list[str]) -> None:
    display.check("D* attains 2·JSD − log 4", -1.01034, -1.00873, 0.02, source="quadrature")
    assert shown == ["✓ D* attains 2·JSD − log 4: −1.01034 vs −1.00873 (quadrature), |Δ| = 1.6e−3 ≤ 0.02"]


def test_check_at_the_tolerance_passes_and_beyond_it_fails_with_the_numbers(shown: list[str]) -> None:
    display.check("equal", 1.5, 1.0, 0.5)            # |Δ| = 0.5 exactly, in binary
    with pytest.raises(AssertionError, match=r"equal: 1\.5 vs 0\.75.*\|Δ\| = 0\.75 > tol = 0\.5"):
        display.check("equal", 1.5, 0.75, 0.5)
    assert len(shown) == 1


def test_check_fails_on_nan(shown: list[str]) -> None:
    with pytest.raises(AssertionError, match="nan"):
        display.check("finite", math.nan, 0.0, 1.0)
    with pytest.raises(AssertionError, match="nan"):
        display.check("finite", math.nan, below=1.0)
    assert shown == []


def test_one_sided_and_bracketing_checks(shown: list[str]) -> None:
    display.check("shortfall is small", np.float64(0.0123), below=0.02)
    display.check("above the floor", 3, above=2, source="bound")
    display.check("inside", 0.5, above=0.0, below=1.0)
    assert shown == ["✓ shortfall is small: 0.0123 ≤ 0.02", "✓ above the floor: 3 ≥ 2 (bound)", "✓ inside: 0 ≤ 0.5 ≤ 1"]
    with pytest.raises(AssertionError, match=r"no D beats D\*: -0\.5 is not <= -0\.6"):
        display.check("no D beats D*", -0.5, below=-0.6)
    with pytest.raises(AssertionError, match=r"is not >= 0\.0 and <= 1\.0"):
        display.check("inside", 1.5, above=0.0, below=1.0)


def test_report_only_shows_failures_with_a_readers_parameters_and_asserts_without(shown: list[str],
                                                                                   monkeypatch) -> None:
    monkeypatch.setattr(display, "_REPORTED", ())
    display.report_only(["lr_g", "start"])
    display.check("settles", 1.6686, below=0.05, fmt=".3f")
    display.check("slope", 0.9513, 1.002, 0.05, fmt=".3f")
    display.check("inside", 1.5, above=0.0, below=1.0)
    display.check("fine", 0.01, below=0.05)
    why = " (fails in this run, whose parameters you changed: lr_g, start; not asserted)"
    assert shown == ["✗ settles: 1.669 is not ≤ 0.050" + why, "✗ slope: 0.951 vs 1.002, |Δ| = 5.1e−2 > 0.05" + why,
                     "✗ inside: 1.5 is not ≥ 0 and ≤ 1" + why, "✓ fine: 0.01 ≤ 0.05"]
    display.report_only([])   # the book's own build: asserted again
    with pytest.raises(AssertionError, match=r"settles: 1\.6686 is not <= 0\.05"):
        display.check("settles", 1.6686, below=0.05)
    for bad in ("lr_g", [""], [3], None):
        with pytest.raises(ValueError, match="must be a list of parameter names"):
            display.report_only(bad)


def test_count_agrees_with_its_number() -> None:
    assert [display.count(n, "step") for n in (0, 1, 2)] == ["0 steps", "1 step", "2 steps"]
    assert display.count(1, "critic step per generator step", "critic steps per generator step") == \
        "1 critic step per generator step"
    assert display.count(5, "critic step per generator step", "critic steps per generator step") == \
        "5 critic steps per generator step"


def test_not_checked_says_what_and_why(shown: list[str]) -> None:
    display.not_checked("the generator lands", "the run ends at step 120, the crossing is predicted at 277")
    assert shown == ["○ not checked in this run: the generator lands (the run ends at step 120, the crossing is "
                     "predicted at 277)"]
    for claim, reason in (("", "why"), ("what", "  "), ("what", None)):
        with pytest.raises(ValueError, match="must be a non-empty string"):
            display.not_checked(claim, reason)
    assert len(shown) == 1


@pytest.mark.parametrize(
    "kwargs",
    [dict(reference=1.0), dict(tol=1.0), dict(reference=1.0, tol=0.1, below=2.0), dict(), dict(reference=0.0, tol=-1.0)],
)
def test_check_refuses_an_ill_formed_call(kwargs: dict, shown: list[str]) -> None:
    with pytest.raises(ValueError, match="check: "):
        display.check("claim", 0.0, **kwargs)


def test_check_refuses_a_value_that_is_not_a_number(shown: list[str]) -> None:
    with pytest.raises(TypeError, match=r"value=\[1\.0, 2\.0\]"):
        display.check("claim", [1.0, 2.0], 1.0, 0.1)


def test_mean_se_against_hand_values() -> None:
    from gan_lib.pipeline.display import mean_se

    # mean 2, sample sd sqrt(((1-2)^2 + 0 + (3-2)^2) / 2) = 1, se = 1/sqrt(3) = 0.577
    assert mean_se([1.0, 2.0, 3.0], ".3f") == "2.000\u00a0±\u00a00.577"
    with pytest.raises(ValueError, match="at least 2 values"):
        mean_se([1.0])


def test_pm_by_se_rounds_at_the_standard_errors_second_digit() -> None:
    from gan_lib.pipeline.display import pm_by_se

    nb = "\u00a0"
    assert pm_by_se(-41.04, 28.78) == f"-41{nb}±{nb}29"
    assert pm_by_se(-893.45, 796.80) == f"-890{nb}±{nb}800"  # second digit of 797: the tens
    assert pm_by_se(1234.5, 152.0, sign=True) == f"+1230{nb}±{nb}150"
    assert pm_by_se(-316.0, 106.0) == f"-320{nb}±{nb}110"
    assert pm_by_se(-13.51, 3.82) == f"-13.5{nb}±{nb}3.8"
    assert pm_by_se(-4.617, 0.052) == f"-4.62{nb}±{nb}0.05"
    assert pm_by_se(1.0, 0.1) == f"1.00{nb}±{nb}0.10"  # 0.1: its second digit is the hundredths
    assert pm_by_se(-3.9912, 0.0031) == f"-3.99{nb}±{nb}0.00"  # capped at max_decimals
    assert pm_by_se(-3.9912, 0.0031, max_decimals=4) == f"-3.9912{nb}±{nb}0.0031"
    assert pm_by_se(2.5, 0.0) == f"2.50{nb}±{nb}0.00"
    assert pm_by_se(9.99, 20.75, sign=True) == f"+10{nb}±{nb}21"
    assert pm_by_se(-1.32, 1.13, sign=True) == f"-1.3{nb}±{nb}1.1"
    assert pm_by_se(2.5, float("nan")) == f"2.50{nb}±{nb}nan"
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_decimals"):
            pm_by_se(1.0, 0.1, max_decimals=bad)


def test_pm_writes_value_and_error_on_one_line() -> None:
    from gan_lib.pipeline.display import pm

    nb = "\u00a0"
    assert pm(0.1357, 0.0028, ".4f") == f"0.1357{nb}±{nb}0.0028"
    assert pm(2.5, 0.25, ".1f", sign=True) == f"+2.5{nb}±{nb}0.2"  # round half to even, as format() does
    assert pm(-2.5, 0.25, ".2f", sign=True) == f"-2.50{nb}±{nb}0.25"
