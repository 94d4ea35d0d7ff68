"""The pipeline: parameters are read, checked before running, and failures leave nothing behind."""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
import pytest

from gan_lib.pipeline import book, cli

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""

GOOD = HEADER + textwrap.dedent('''
    # A tiny chapter

    ```{code-cell} ipython3
    :tags: [parameters]

    profile = "cpu"   # smoke | cpu | gpu
    steps = 3         # an integer >= 1
    ```

    ```{code-cell} ipython3
    :tags: [validate]

    from gan_lib.pipeline.params import validate, one_of, integer, PROFILES
    validate(globals(), profile=one_of(*PROFILES), steps=integer(1, 100))
    ```

    ```{code-cell} ipython3
    print("squares", [i * i for i in range(steps)])
    ```
''')

def profile_only_chapter(title: str, body: str) -> str:
    """A chapter whose only parameter is ``profile``, with the given third code cell."""
    return HEADER + textwrap.dedent('''
        # {title}

        ```{{code-cell}} ipython3
        :tags: [parameters]

        profile = "cpu"
        ```

        ```{{code-cell}} ipython3
        :tags: [validate]

        assert profile in ("smoke", "cpu", "gpu")
        ```

        ```{{code-cell}} ipython3
        {body}
        ```
    ''').format(title=title, body=body)


BAD = profile_only_chapter("A chapter that fails", 'raise RuntimeError("deliberate failure in the third cell")')


@pytest.fixture()
def tiny_book(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks" / "01_good.md").write_text(GOOD)
    (tmp_path / "notebooks" / "02_bad.md").write_text(BAD)
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "_config.yml").write_text("title: tiny\nexecute:\n  execute_notebooks: 'off'\n")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01_good\n  - file: notebooks/02_bad\n"
    )
    return tmp_path


def test_parameters_are_read_with_defaults_and_comments(tiny_book: Path) -> None:
    params = book.chapter_parameters(book.read_chapter(tiny_book / "notebooks" / "01_good.md"))
    assert params == {"profile": ("cpu", "smoke | cpu | gpu"), "steps": (3, "an integer >= 1")}


def test_toc_lists_the_chapters_in_order(tiny_book: Path) -> None:
    assert [p.name for p in book.toc_chapters(tiny_book)] == ["01_good.md", "02_bad.md"]


@pytest.mark.parametrize(
    ("text", "value"), [("500", 500), ("2e-4", 2e-4), ("None", None), ("True", True), ("cpu", "cpu"), ("[1, 2]", [1, 2])]
)
def test_command_line_values_are_read_as_literals(text: str, value: object) -> None:
    assert book.parse_value(text) == value


def test_run_refuses_unknown_names_before_running(tiny_book: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) stpes; this chapter takes: profile, steps"):
        book.run_chapter(tiny_book / "notebooks" / "01_good.md", {"stpes": 5}, runs=runs)
    assert not runs.exists()


def test_run_refuses_bad_values_with_the_chapters_message(tiny_book: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with pytest.raises(ValueError, match=r"^ParameterError: parameter steps=-2 is not allowed: expected an integer in \[1, 100\]$"):
        book.run_chapter(tiny_book / "notebooks" / "01_good.md", {"steps": -2}, runs=runs)
    assert not runs.exists()


def test_run_writes_notebook_and_html_into_a_named_folder(tiny_book: Path, tmp_path: Path) -> None:
    folder = book.run_chapter(tiny_book / "notebooks" / "01_good.md", {"steps": 4}, runs=tmp_path / "runs", progress=False)
    assert folder == tmp_path / "runs" / "01_good" / "steps=4"
    nb = nbformat.read(folder / "01_good.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "squares [0, 1, 4, 9]" in outputs
    assert "squares [0, 1, 4, 9]" in (folder / "01_good.html").read_text()
    assert nb.metadata["ganbook"]["parameters"] == {"steps": 4}
    assert sorted(p.name for p in folder.iterdir()) == ["01_good.html", "01_good.ipynb"]


def test_cli_exit_code_and_message_for_a_refused_value(tiny_book: Path, tmp_path: Path, capsys) -> None:
    code = cli.main(["run", str(tiny_book / "notebooks" / "01_good.md"), "-p", "steps", "0", "--runs", str(tmp_path / "r")])
    assert code == 2
    assert "steps=0 is not allowed" in capsys.readouterr().err


def test_failed_chapter_names_chapter_and_cell_and_leaves_no_page(tiny_book: Path) -> None:
    with pytest.raises(book.BuildError) as info:
        book.build_book(tiny_book, profile="smoke", render=False)
    message = str(info.value)
    assert "02_bad.md failed in cell" in message and "deliberate failure in the third cell" in message
    staged = tiny_book / "_build" / "src" / "notebooks"
    assert sorted(p.name for p in staged.iterdir()) == ["01_good.ipynb"]  # no half-written page, no temp file
    assert not (tiny_book / "_build" / "src" / "book" / "status.md").exists()


def test_build_executes_with_the_profile_and_writes_a_status_page(tiny_book: Path) -> None:
    (tiny_book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01_good\n")
    results = book.build_book(tiny_book, profile="smoke", render=False)
    assert [(r.chapter, r.profile, r.ok) for r in results] == [("/notebooks/01_good", "smoke", True)]
    nb = nbformat.read(tiny_book / "_build" / "src" / "notebooks" / "01_good.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'profile = "smoke"' in injected[0].source
    status = (tiny_book / "_build" / "src" / "book" / "status.md").read_text()
    assert "A tiny chapter" in status and "`smoke`" in status and "| pass |" in status


def test_prepare_injects_the_profile_without_executing(tiny_book: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep" / "01_good.ipynb"
    book.prepare_chapter(tiny_book / "notebooks" / "01_good.md", out, {"profile": "smoke"})
    nb = nbformat.read(out, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert any('profile = "smoke"' in c.source for c in nb.cells)


def test_only_builds_a_pruned_table_of_contents(tiny_book: Path) -> None:
    book.build_book(tiny_book, profile="smoke", only=["01"], render=False)
    import yaml

    toc = yaml.safe_load((tiny_book / "_build" / "src" / "_toc.yml").read_text())
    assert toc["chapters"] == [{"file": "notebooks/01_good"}]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({}, "defaults"),
        ({"steps": 500, "lr": 2e-4}, "lr=0.0002__steps=500"),
        ({"alpha": -1}, "alpha=-1"),
        ({"alpha": -0.5}, "alpha=-0.5"),
        ({"profile": "smoke"}, "profile=smoke"),
        ({"divs": ["kl", "gan"]}, "divs=kl_gan"),
    ],
)
def test_run_folder_names_keep_signs_and_are_distinct(params: dict, name: str) -> None:
    assert book.run_folder_name(params) == name


PLOT = profile_only_chapter("A chapter with a figure", "import matplotlib.pyplot as plt; plt.plot([0, 1], [1, 0]); plt.show()")


def test_figures_reach_the_page_even_with_a_non_inline_backend_in_the_shell(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as a CI script might export
    src = tmp_path / "plot.md"
    src.write_text(PLOT)
    out = tmp_path / "plot.ipynb"
    book.execute_chapter(src, out, {"profile": "smoke"})
    nb = nbformat.read(out, as_version=4)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1
    import os

    assert os.environ["MPLBACKEND"] == "Agg"  # restored afterwards
