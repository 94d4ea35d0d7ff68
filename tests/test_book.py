"""The pipeline: parameters are read, checked before running, and failures leave nothing behind."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
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


def write_book(folder: Path, chapters: dict[str, str], *, status_page: bool = False) -> Path:
    """A throwaway book in ``folder``: ``chapters`` maps a file stem (``01_good``) to its source."""
    (folder / "notebooks").mkdir(parents=True)
    (folder / "book").mkdir()
    for stem, text in chapters.items():
        (folder / "notebooks" / f"{stem}.md").write_text(text)
    (folder / "book" / "intro.md").write_text("# Intro\n")
    (folder / "_config.yml").write_text("title: tiny\nexecute:\n  execute_notebooks: 'off'\n")
    entries = "".join(f"  - file: notebooks/{stem}\n" for stem in chapters)
    if status_page:  # the real book lists the status page that `ganbook build` writes
        entries += "  - file: book/status\n"
    (folder / "_toc.yml").write_text(f"format: jb-book\nroot: book/intro\nchapters:\n{entries}")
    return folder


@pytest.fixture()
def tiny_book(tmp_path: Path) -> Path:
    return write_book(tmp_path, {"01_good": GOOD, "02_bad": BAD})


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
    assert sorted(p.name for p in folder.iterdir()) == ["01_good.html", "01_good.ipynb", "parameters.json"]


def test_a_run_knows_which_parameters_the_reader_chose(tmp_path: Path) -> None:
    # params.given: the names set to other values than the defaults, besides the profile, so that a
    # chapter asserts its checks on its profiles' own settings and only reports them with a reader's values
    src = GOOD.replace('print("squares", [i * i for i in range(steps)])',
                       'from gan_lib.pipeline.params import given\nprint("given", given())')
    chapter = write_book(tmp_path / "b", {"01_given": src}) / "notebooks" / "01_given.md"

    def printed(folder: Path) -> str:
        nb = nbformat.read(next(folder.glob("*.ipynb")), as_version=4)
        return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))

    runs = tmp_path / "runs"
    assert "given ('steps',)" in printed(book.run_chapter(chapter, {"steps": 4, "profile": "smoke"}, runs=runs,
                                                          progress=False))
    assert "given ()" in printed(book.run_chapter(chapter, {"profile": "smoke"}, runs=runs, progress=False))
    assert "given ()" in printed(book.run_chapter(chapter, {"steps": 3}, runs=runs, progress=False))   # its default
    page = (book.run_chapter(chapter, {"steps": 5}, runs=runs, progress=False) / "01_given.html").read_text()
    assert "GANBOOK_GIVEN" not in page   # nothing of the plumbing on the reader's page


def test_with_a_readers_parameters_failed_checks_are_shown_and_listed(tmp_path: Path) -> None:
    src = GOOD.replace('print("squares", [i * i for i in range(steps)])', textwrap.dedent('''\
        from gan_lib.pipeline.display import check, report_only
        from gan_lib.pipeline.params import given
        report_only(given())
        check("few steps", steps, below=5)
        print("went on")'''))
    chapter = write_book(tmp_path / "b", {"01_checks": src}) / "notebooks" / "01_checks.md"
    folder = book.run_chapter(chapter, {"steps": 9}, runs=tmp_path / "runs", progress=False)
    assert book.failed_checks(folder) == ["✗ few steps: 9 is not ≤ 5 (fails in this run, whose parameters you "
                                          "changed: steps; not asserted)"]
    assert "went on" in (folder / "01_checks.html").read_text()
    assert book.failed_checks(book.run_chapter(chapter, {"steps": 2}, runs=tmp_path / "runs", progress=False)) == []
    chapter.write_text(src.replace("steps = 3 ", "steps = 9 "))   # now the chapter's own setting fails the check
    with pytest.raises(book.BuildError, match="few steps"):   # as the book's build runs it: asserted
        book.execute_chapter(chapter, tmp_path / "out" / "01_checks.ipynb", {"profile": "cpu"}, cwd=chapter.parent)
    with pytest.raises(book.BuildError, match="few steps"):   # and on a profile alone
        book.run_chapter(chapter, {"profile": "smoke"}, runs=tmp_path / "runs2", progress=False)


def test_run_outputs_follow_the_umask(tiny_book: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        folder = book.run_chapter(tiny_book / "notebooks" / "01_good.md", {"steps": 2}, runs=tmp_path / "runs", progress=False)
    finally:
        os.umask(old)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in folder.iterdir()}
    assert modes == {"01_good.html": "0o644", "01_good.ipynb": "0o644", "parameters.json": "0o644"}


def test_run_does_not_repeat_papermills_guess_about_parameters(tiny_book: Path, tmp_path: Path, caplog) -> None:
    # papermill's own reader misses names with a trailing comment and warned "Passed unknown parameter: steps"
    caplog.set_level(logging.INFO)
    book.run_chapter(tiny_book / "notebooks" / "01_good.md", {"steps": 2, "profile": "smoke"}, runs=tmp_path / "r", progress=False)
    assert "unknown parameter" not in caplog.text.lower()


def test_kernels_run_without_the_unencrypted_tcp_warning(tmp_path: Path, capfd) -> None:
    src = tmp_path / "plain.md"
    src.write_text(profile_only_chapter("Plain", "print(1)"))
    book.execute_chapter(src, tmp_path / "plain.ipynb", {"profile": "smoke"})
    assert "without encryption" not in capfd.readouterr().err


def test_run_failure_keeps_the_failed_notebook_and_leaves_no_temporary(tiny_book: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with pytest.raises(book.BuildError) as info:
        book.run_chapter(tiny_book / "notebooks" / "02_bad.md", {"profile": "smoke"}, runs=runs, progress=False)
    folder = runs / "02_bad" / "profile=smoke"
    message = str(info.value)
    assert f"the partly executed notebook is kept at {folder / '02_bad.failed.ipynb'}" in message
    assert "cell 4 starts: raise RuntimeError(" in message
    assert sorted(p.name for p in folder.iterdir()) == ["02_bad.failed.ipynb", "parameters.json"]


def test_stale_temporaries_of_dead_processes_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".01_good.ganbook-{dead.pid}-abcd1234.ipynb", tmp_path / f".render.ganbook-{dead.pid}-x1y2z3w4"]
    stale[0].write_text("{}")
    stale[1].mkdir()
    live = tmp_path / f".01_good.ganbook-{os.getpid()}-abcd1234.ipynb"
    live.write_text("{}")
    mine = tmp_path / ".01_good.ipynb.user-notes"  # not a ganbook name: never touched
    mine.write_text("notes")
    assert sorted(book.sweep_stale(tmp_path)) == sorted(stale)
    assert live.exists() and mine.exists() and not any(p.exists() for p in stale)


def test_cli_exit_code_and_message_for_a_refused_value(tiny_book: Path, tmp_path: Path, capsys) -> None:
    code = cli.main(["run", str(tiny_book / "notebooks" / "01_good.md"), "-p", "steps", "0", "--runs", str(tmp_path / "r")])
    assert code == 2
    assert "steps=0 is not allowed" in capsys.readouterr().err


@pytest.mark.parametrize("jobs", [1, 2])
def test_failed_chapter_keeps_a_failed_copy_and_names_the_cell(tiny_book: Path, jobs: int) -> None:
    with pytest.raises(book.BuildError) as info:
        book.build_book(tiny_book, profile="smoke", render=False, jobs=jobs)
    message = str(info.value)
    executed = tiny_book / "_build" / "executed"
    failed = executed / "02_bad.failed.ipynb"
    # the good chapter ran to the end, alone or beside the failing one, and is kept for the next build
    assert message.startswith("chapter(s) failed, the book was not rendered (the other chapters were executed to the end):")
    assert [(r.chapter, r.ok, r.processes) for r in info.value.results] == [
        ("/notebooks/01_good", True, jobs), ("/notebooks/02_bad", False, jobs),
    ]
    assert "02_bad.md failed in cell 4" in message
    assert 'cell 4 starts: raise RuntimeError("deliberate failure in the third cell")' in message
    assert 'the error was raised at line 1: raise RuntimeError("deliberate failure in the third cell")' in message
    assert "RuntimeError: deliberate failure in the third cell" in message
    assert f"the partly executed notebook is kept at {failed}" in message
    # the good chapter's page and its record, the failed copy, nothing half-written and no temporary file
    assert sorted(p.name for p in executed.iterdir()) == ["01_good.cache.json", "01_good.ipynb", "02_bad.failed.ipynb"]
    nb = nbformat.read(failed, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert [e.evalue for e in errors] == ["deliberate failure in the third cell"]
    assert not (tiny_book / "_build" / "src" / "book" / "status.md").exists()
    assert not (tiny_book / "_build" / "status.json").exists()  # no site was rendered


def test_a_good_run_removes_the_failed_copy_of_an_earlier_run(tmp_path: Path) -> None:
    chapter = tmp_path / "flaky.md"
    chapter.write_text(profile_only_chapter("A flaky chapter", '# a comment\nok = True\nassert profile == "smoke", profile'))
    runs = tmp_path / "runs"
    with pytest.raises(book.BuildError) as info:
        book.run_chapter(chapter, {}, runs=runs, progress=False)
    message = str(info.value).splitlines()
    assert message[1:] == [
        "    cell 4 starts: ok = True",  # the first line of code, not the comment
        '    the error was raised at line 3: assert profile == "smoke", profile',
        f"    the partly executed notebook is kept at {runs / 'flaky' / 'defaults' / 'flaky.failed.ipynb'}",
    ]
    folder = runs / "flaky" / "defaults"
    assert sorted(p.name for p in folder.iterdir()) == ["flaky.failed.ipynb", "parameters.json"]
    chapter.write_text(profile_only_chapter("A flaky chapter", "assert True"))
    book.run_chapter(chapter, {}, runs=runs, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["flaky.html", "flaky.ipynb", "parameters.json"]


def test_build_executes_with_the_profile_and_writes_a_status_page(tiny_book: Path) -> None:
    (tiny_book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01_good\n")
    results = book.build_book(tiny_book, profile="smoke", render=False)
    assert [(r.chapter, r.profile, r.ok) for r in results] == [("/notebooks/01_good", "smoke", True)]
    nb = nbformat.read(tiny_book / "_build" / "src" / "notebooks" / "01_good.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'profile = "smoke"' in injected[0].source
    status = (tiny_book / "_build" / "src" / "book" / "status.md").read_text()
    assert "A tiny chapter" in status and "`smoke`" in status and "| pass | executed (no earlier execution is kept) |" in status
    assert "executed 1 of 1 chapters one after another" in status


def test_prepare_injects_the_profile_without_executing(tiny_book: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep" / "01_good.ipynb"
    book.prepare_chapter(tiny_book / "notebooks" / "01_good.md", out, {"profile": "smoke"})
    nb = nbformat.read(out, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert any('profile = "smoke"' in c.source for c in nb.cells)


SECOND = profile_only_chapter("A second chapter", 'print("second chapter ran with", profile)')


def _executed_at(notebook: Path) -> str:
    return nbformat.read(notebook, as_version=4).metadata["ganbook"]["executed"]


def test_only_reexecutes_the_named_chapters_and_keeps_the_others(tmp_path: Path) -> None:
    root = write_book(tmp_path, {"01_good": GOOD, "02_second": SECOND})
    book.build_book(root, profile="smoke", render=False)
    executed = root / "_build" / "executed"
    before = {p.name: _executed_at(p) for p in executed.glob("*.ipynb")}
    # the file itself: a re-executed notebook is a new file renamed into place (a new inode, which
    # cannot be the old one: both exist until the rename), while the stamp has a one-second
    # resolution and two builds on a fast machine can share the second
    inode = {p.name: p.stat().st_ino for p in executed.glob("*.ipynb")}
    results = book.build_book(root, profile="smoke", only=["01"], render=False)
    assert [(r.chapter, r.ok, r.reused) for r in results] == [
        ("/notebooks/01_good", True, False), ("/notebooks/02_second", True, True),
    ]
    assert (executed / "01_good.ipynb").stat().st_ino != inode["01_good.ipynb"]  # executed again
    assert (executed / "02_second.ipynb").stat().st_ino == inode["02_second.ipynb"]  # reused
    assert _executed_at(executed / "02_second.ipynb") == before["02_second.ipynb"]
    import yaml

    toc = yaml.safe_load((root / "_build" / "src" / "_toc.yml").read_text())
    assert toc["chapters"] == [{"file": "notebooks/01_good"}, {"file": "notebooks/02_second"}]
    staged = root / "_build" / "src" / "notebooks"
    assert sorted(p.name for p in staged.iterdir()) == ["01_good.ipynb", "02_second.ipynb"]
    status = (root / "_build" / "src" / "book" / "status.md").read_text()
    assert "A second chapter" in status and "reused" in status


def test_only_refuses_without_an_earlier_build_of_the_other_chapters(tmp_path: Path) -> None:
    root = write_book(tmp_path, {"01_good": GOOD, "02_second": SECOND})
    with pytest.raises(ValueError, match=r"--only re-executes 01_good and reuses the other chapters from the last "
                       r"build, but 02_second has not been executed yet \(no .*02_second\.ipynb\); run a full "
                       r"`ganbook build` first"):
        book.build_book(root, profile="smoke", only=["01"], render=False)
    assert not (root / "_build" / "executed" / "01_good.ipynb").exists()  # refused before running anything


def test_only_refuses_to_mix_profiles(tmp_path: Path) -> None:
    root = write_book(tmp_path, {"01_good": GOOD, "02_second": SECOND})
    book.build_book(root, profile="smoke", only=None, render=False)
    with pytest.raises(ValueError, match=r"02_second was last executed with profile 'smoke', not 'cpu'"):
        book.build_book(root, profile="cpu", only=["01"], render=False)


def test_only_renders_a_site_with_every_page(tmp_path: Path) -> None:
    root = write_book(tmp_path, {"01_good": GOOD, "02_second": SECOND}, status_page=True)
    book.build_book(root, profile="smoke", render=False)  # the earlier full build (its pages are reused)
    old_umask = os.umask(0o022)
    try:
        book.build_book(root, profile="smoke", only=["01_good"], render=True)
    finally:
        os.umask(old_umask)
    site = root / "_build" / "html" / "notebooks"
    assert (site / "01_good.html").is_file() and (site / "02_second.html").is_file()
    assert "second chapter ran with smoke" in (site / "02_second.html").read_text()
    status = json.loads((root / "_build" / "status.json").read_text())
    assert [(s["chapter"], s["reused"]) for s in status] == [("/notebooks/01_good", False), ("/notebooks/02_second", True)]
    assert stat.S_IMODE((root / "_build" / "status.json").stat().st_mode) == 0o644
    assert not [p.name for p in (root / "_build").iterdir() if p.name.startswith(".")]  # no scratch left
    stamp = json.loads((root / "_build" / "html" / book.RENDER_STAMP).read_text())  # what the site was made from
    assert set(stamp) == {"inputs", "rendered"}


def test_build_status_json_is_written_only_for_a_rendered_site(tmp_path: Path) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    book.build_book(root, profile="smoke", render=False)
    assert not (root / "_build" / "status.json").exists()


def test_build_shows_the_profile_it_used_in_the_visible_parameters_cell(tmp_path: Path) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    book.build_book(root, profile="smoke", render=False)
    nb = nbformat.read(root / "_build" / "src" / "notebooks" / "01_good.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert cell.source.splitlines() == ['profile = "smoke" # smoke | cpu | gpu', "steps = 3         # an integer >= 1"]
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "remove-cell" in injected.metadata.tags


def test_shown_values_keep_the_comment_column_and_multiline_values() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'profile = "cpu"     # which sizes\nwidths = [\n    1,\n    2,\n]  # a list\nlr = 1e-3  # rate',
        metadata={"tags": ["parameters"]},
    )])
    book.show_values_in_parameters_cell(nb, {"profile": "smoke", "widths": [3, 4, 5], "lr": -2e-4})
    assert nb.cells[0].source.splitlines() == [
        'profile = "smoke"   # which sizes', "widths = [3, 4, 5]  # a list", "lr = -0.0002  # rate",
    ]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({}, "defaults"),
        ({"steps": 500, "lr": 2e-4}, "lr=0.0002__steps=500"),
        ({"alpha": -1}, "alpha=-1"),
        ({"alpha": -0.5}, "alpha=-0.5"),
        ({"profile": "smoke"}, "profile=smoke"),
        ({"divs": ["kl", "gan"]}, "divs=kl_gan"),
        ({"lr": -1e-3}, "lr=-0.001"),
    ],
)
def test_run_folder_names_keep_signs_and_are_distinct(params: dict, name: str) -> None:
    assert book.run_folder_name(params) == name


def test_long_run_folder_names_are_shortened_with_a_hash() -> None:
    long_a = {"data_means": list(range(200))}
    long_b = {"data_means": list(range(199)) + [1000]}
    name_a, name_b = book.run_folder_name(long_a), book.run_folder_name(long_b)
    assert len(name_a) <= 100 and len(name_b) <= 100 and name_a != name_b
    assert name_a.startswith("data_means=0_1_2_3_")
    assert book.run_folder_name(long_a) == name_a  # the same parameters, the same folder


def test_run_with_a_long_list_writes_its_parameters_json(tiny_book: Path, tmp_path: Path) -> None:
    chapter = tmp_path / "lists.md"
    chapter.write_text(HEADER + textwrap.dedent('''
        # A chapter with a list

        ```{code-cell} ipython3
        :tags: [parameters]

        values = [1.0]  # a list of numbers
        ```

        ```{code-cell} ipython3
        :tags: [validate]

        assert all(isinstance(v, float) for v in values)
        ```

        ```{code-cell} ipython3
        print("total", sum(values))
        ```
    '''))
    values = [0.5 + i for i in range(300)]
    folder = book.run_chapter(chapter, {"values": values}, runs=tmp_path / "runs", progress=False)
    assert len(folder.name) <= 100
    assert json.loads((folder / "parameters.json").read_text()) == {"values": values}
    assert sorted(p.name for p in folder.iterdir()) == ["lists.html", "lists.ipynb", "parameters.json"]


def test_a_folder_name_shared_by_other_parameters_gets_a_hash(tiny_book: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = runs / "01_good" / "steps=4"
    first.mkdir(parents=True)
    (first / "parameters.json").write_text(json.dumps({"steps": "4"}))  # spelled the same, a different value
    folder = book.run_chapter(tiny_book / "notebooks" / "01_good.md", {"steps": 4}, runs=runs, progress=False)
    assert folder.parent == first.parent and folder.name.startswith("steps=4__") and folder != first
    assert json.loads((folder / "parameters.json").read_text()) == {"steps": 4}


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


def test_a_failed_run_removes_the_page_of_an_earlier_good_run(tmp_path: Path) -> None:
    # the docstring's promise: a failure leaves the failed copy and parameters.json only
    chapter = tmp_path / "flaky.md"
    chapter.write_text(profile_only_chapter("A flaky chapter", "assert True"))
    runs = tmp_path / "runs"
    folder = book.run_chapter(chapter, {}, runs=runs, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["flaky.html", "flaky.ipynb", "parameters.json"]
    chapter.write_text(profile_only_chapter("A flaky chapter", 'raise RuntimeError("now it fails")'))
    with pytest.raises(book.BuildError):
        book.run_chapter(chapter, {}, runs=runs, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["flaky.failed.ipynb", "parameters.json"]


GLUED = profile_only_chapter("A chapter with roles", 'from gan_lib.pipeline.display import glue, glue_text\n'
                             'from IPython.display import Markdown, display\n'
                             'glue("n_runs", 12)\nglue("ratio", 0.123456)\nglue_text("label", 2.5, ".2f")\n'
                             'display(Markdown("Shown from code, after {cite:t}`song2020bridging`."))') + textwrap.dedent('''
    It ran {glue:text}`n_runs` runs at ratio {glue:text}`ratio:.3f` and label {glue:text}`label`
    ({glue:text}`label:.1f` to one digit), as {cite:t}`song2020bridging` do
    {cite:p}`song2020bridging,nokey`; see {doc}`the intro <../book/intro>` and {glue:text}`never_glued`.
    Math: $\\KL(P \\Vert Q)$.
''')


def test_the_run_page_shows_glued_values_and_citations(tmp_path: Path) -> None:
    # what the book's page shows for these roles, where a plain HTML export would print them raw
    root = write_book(tmp_path / "book", {"03_roles": GLUED})
    (root / "_config.yml").write_text("title: tiny\nbibtex_bibfiles:\n  - book/references.bib\nsphinx:\n  config:\n"
                                      "    mathjax3_config:\n      tex:\n        macros:\n          KL: '\\operatorname{KL}'\n")
    (root / "book" / "references.bib").write_text(
        "@misc{song2020bridging,\n  author = {Song, Jiaming and Ermon, Stefano},\n  title = {Bridging},\n  year = {2020}\n}\n")
    folder = book.run_chapter(root / "notebooks" / "03_roles.md", {}, runs=tmp_path / "runs", progress=False)
    page = (folder / "03_roles.html").read_text()
    assert "It ran 12 runs at ratio 0.123 and label 2.50\n(2.5 to one digit), as Song &amp; Ermon (2020) do" in page
    assert "(Song &amp; Ermon 2020; nokey); see the intro and" in page
    assert "Shown from code, after Song &amp; Ermon (2020)." in page  # Markdown a code cell displays
    assert "and [never_glued: not computed in this run]." in page  # a name nothing glued says so
    assert "{cite:p}" not in page and "{doc}" not in page  # ({cite:t} stays in the code cell that displays it)
    # mathematics offline, as on the book's pages: MathJax from the runs folder, not a CDN
    from gan_lib.pipeline.sphinx_mathjax import mathjax_source

    assert '<script src="../../_mathjax/tex-svg-full.js"></script>' in page and "cdnjs.cloudflare.com/ajax/libs/mathjax" not in page
    assert '"inlineMath": [["$", "$"]' in page and '"KL": "\\\\operatorname{KL}"' in page  # $...$ and the book's macros
    copied = tmp_path / "runs" / "_mathjax" / "tex-svg-full.js"
    assert copied.read_bytes() == (mathjax_source() / "tex-svg-full.js").read_bytes()


def test_the_run_page_is_written_when_the_bibliography_or_mathjax_copy_fails(tmp_path: Path) -> None:
    # both only dress the page: a missing .bib shows the keys, an unwritable _mathjax keeps the CDN
    root = write_book(tmp_path / "book", {"03_roles": GLUED})
    (root / "_config.yml").write_text("title: tiny\nbibtex_bibfiles:\n  - book/missing.bib\n")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "_mathjax").write_text("a file where the folder should be")
    folder = book.run_chapter(root / "notebooks" / "03_roles.md", {}, runs=runs, progress=False)
    page = (folder / "03_roles.html").read_text()
    assert "as song2020bridging do" in page and "cdnjs.cloudflare.com/ajax/libs/mathjax" in page
    assert sorted(p.name for p in folder.iterdir()) == ["03_roles.html", "03_roles.ipynb", "parameters.json"]


def test_chapter_5_refuses_scales_so_small_that_a_cell_would_divide_by_zero() -> None:
    # each of these ran into a ZeroDivisionError or non-finite samples midway through the chapter
    chapter = Path(__file__).resolve().parents[1] / "notebooks" / "05_distances.md"
    nb = book.read_chapter(chapter)
    for name, value, allowed in [("kernel_bandwidth", 1e-300, "[0.001, 5]"), ("bandwidths", [1e-300], "[0.001, 10]"),
                                 ("clip", 1e-300, "[1e-06, 1]"), ("clip_values", [1e-300, 2e-300], "[1e-06, 1]")]:
        with pytest.raises(ValueError, match=re.escape(allowed)):
            book.check_parameters(nb, {name: value}, cwd=chapter.parent)


def test_chapter_5_passes_whole_numbers_for_real_knobs_on_as_floats() -> None:
    # -p start 20 made torch.full(..., P["start"], requires_grad=True) an integer tensor that cannot require a
    # gradient, and -p far_shift 40 a Long tensor beside Float ones: every knob whose default in the parameters
    # cell is a float, or a list of floats, must reach the chapter's cells as floats whatever the reader typed
    chapter = Path(__file__).resolve().parents[1] / "notebooks" / "05_distances.md"
    nb = book.read_chapter(chapter)
    defaults = {name: default for name, (default, _) in book.chapter_parameters(nb).items()}
    whole = {"kernel_bandwidth": 5, "start": 20, "lr_g": 1, "gp_weight": 1000, "clip": 1, "near_shift": 1,
             "far_shift": 40, "clip_values": [0.5, 1], "bandwidths": [10]}
    cells = {tag: next(c.source for c in nb.cells if tag in c.get("metadata", {}).get("tags", []))
             for tag in ("parameters", "validate")}
    namespace: dict = {}
    exec(cells["parameters"], namespace)
    namespace.update(whole)
    exec(cells["validate"], namespace)
    P = namespace["P"]
    real = [name for name, d in defaults.items() if isinstance(d, float)]
    lists = [name for name, d in defaults.items() if isinstance(d, list) and d and all(isinstance(v, float) for v in d)]
    assert set(whole) <= set(real) | set(lists)
    for name in real:
        assert type(P[name]) is float and P[name] == whole.get(name, defaults[name]), name
    for name in lists:
        assert all(type(v) is float for v in P[name]) and P[name] == whole.get(name, defaults[name]), name


@pytest.mark.parametrize("chapter, parameters", [
    ("05_distances", {"lr_g": 1, "start": 1.5, "gan_steps": 1, "warm_steps": 1, "d_steps": 1, "mmd_steps": 1,
                      "rel_steps": 1, "gp_weight": 1e-6}),
    ("06_fwgan", {"batch_size": 16, "n_critic": 1, "lr": 0.01, "objectives": ["kl_wgan", "hinge"],
                  "compare_detached": False}),
])
def test_chapters_5_and_6_read_right_with_a_readers_edge_values(chapter: str, parameters: dict, tmp_path: Path) -> None:
    # a probe of readers' values found crashes and sentences such as "1 steps", "0.0 hours" (the paper's schedule
    # timed with this run's batch), "receives the predicted 2000001.00" and a dangling ", ×": the whole chapter
    # must run through on the smoke profile with such values, and its page read right
    from bs4 import BeautifulSoup

    source = Path(__file__).resolve().parents[1] / "notebooks" / f"{chapter}.md"
    folder = book.run_chapter(source, {"profile": "smoke", **parameters}, runs=tmp_path / "runs", progress=False)
    soup = BeautifulSoup((folder / f"{chapter}.html").read_text(), "html.parser")
    for node in soup.select(".cell_input, .input_area, div.highlight, pre, script, style"):
        node.decompose()
    text = " ".join(soup.get_text(" ").split())
    assert book.failed_checks(folder) == []   # smoke asserts only exact results: none may fail
    for bad in (r"\b1 (steps|epochs|seeds|objectives|runs|critics)\b", r"\bnan\b", r"\binf\b", r"objectives?, ×",
                r"0\.0 hours", r"Traceback", r"the predicted [0-9]{5,}"):
        assert not re.search(bad, text), (bad, re.search(f".{{80}}{bad}.{{80}}", text))


def test_a_kernel_that_dies_while_starting_is_started_again(tmp_path: Path, monkeypatch, caplog) -> None:
    # jupyter_client's report when a kernel dies before its first reply (seen once in CI, two
    # kernels starting at once on 2 cores): no cell ran, so a second start is the same run
    import papermill

    real = papermill.execute_notebook
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    chapter = tmp_path / "good.md"
    chapter.write_text(GOOD)
    with caplog.at_level(logging.WARNING):
        book.execute_chapter(chapter, tmp_path / "out" / "good.ipynb", {"steps": 2}, progress=False)
    assert len(calls) == 2 and "the kernel failed to start" in caplog.text
    outputs = [o.get("text", "") for c in nbformat.read(tmp_path / "out" / "good.ipynb", as_version=4).cells
               if c.cell_type == "code" for o in c.get("outputs", [])]
    assert "squares [0, 1]\n" in outputs
    # a failure that keeps happening is reported after KERNEL_START_ATTEMPTS starts
    calls.clear()
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(RuntimeError("Kernel didn't respond in 60 seconds")))
    with pytest.raises(book.BuildError, match="could not be executed: RuntimeError: Kernel didn't respond"):
        book.execute_chapter(chapter, tmp_path / "out" / "good.ipynb", {"steps": 2}, progress=False)
    assert len(calls) == book.KERNEL_START_ATTEMPTS


def test_the_run_page_keeps_the_figures_alt_text(tmp_path: Path, caplog) -> None:
    # nbconvert gives an SVG figure no alt text; the page takes the cell's mystnb.image.alt, as the book does
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>'
    figure = {"output_type": "display_data", "metadata": {}, "data": {"image/svg+xml": svg, "text/plain": "<Figure>"}}
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("plot()", metadata={"mystnb": {"image": {"alt": "Two curves & a line"}}}),
                nbformat.v4.new_markdown_cell("Between the figures."),
                nbformat.v4.new_code_cell("plot()")]
    for cell in (nb.cells[0], nb.cells[2]):
        cell.outputs = [nbformat.from_dict(figure)]
    ipynb, html = tmp_path / "figs.ipynb", tmp_path / "figs.html"
    nbformat.write(nb, ipynb)
    with caplog.at_level("WARNING"):
        book._export_html(ipynb, html)
    page = html.read_text()
    assert page.count('alt="Two curves &amp; a line"') == 1
    assert page.count('alt="No description has been provided for this image"') == 1  # the cell without one
    assert "1 image(s) on the run's page have no alt text" in caplog.text
    assert "Alternative text is missing" not in caplog.text  # nbconvert's count, made before the fix, is dropped
