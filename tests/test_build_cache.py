"""The build cache and the parallel build: a chapter is executed again only when something it depends
on changed (its source, its parameters and profile, a ``.py`` file of the library, a package version),
and chapters execute in worker processes with one thread each.

Most tests copy one tiny book built once for this module (two chapters, a library folder and a
package-version table of its own, injected into ``build_book``), change one thing and build again.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from gan_lib.pipeline import book
from test_book import GOOD, SECOND, profile_only_chapter, write_book

VERSIONS = {"numpy": "2.1.0", "python": "CPython 3.11.7", "torch": "2.13.0"}


def build(root: Path, **options) -> list[book.ChapterResult]:
    """Build ``root`` with its own library folder (``lib/``) and package versions (``versions.json``)."""
    options.setdefault("profile", "smoke")
    options.setdefault("render", False)
    options.setdefault("jobs", 1)
    return book.build_book(
        root, library=root / "lib", dependencies=lambda: json.loads((root / "versions.json").read_text()), **options
    )


def outcome(results: list[book.ChapterResult]) -> list[tuple[str, bool, str]]:
    return [(r.chapter.rsplit("/", 1)[-1], r.reused, r.reason) for r in results]


def files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = write_book(tmp_path_factory.mktemp("cache") / "book", {"01_good": GOOD, "02_second": SECOND})
    (root / "lib").mkdir()
    (root / "lib" / "losses.py").write_text("SCALE = 1.0\n")
    (root / "lib" / "README.txt").write_text("not Python: not part of the key\n")
    (root / "versions.json").write_text(json.dumps(VERSIONS))
    results = build(root)
    assert outcome(results) == [("01_good", False, "no earlier execution is kept"), ("02_second", False, "no earlier execution is kept")]
    return root


@pytest.fixture()
def copy(built: Path, tmp_path: Path) -> Path:
    """A copy of the built book; its records still match it (they name no path)."""
    root = tmp_path / "book"
    shutil.copytree(built, root)
    return root


def test_each_executed_notebook_has_a_record_of_what_it_was_executed_from(copy: Path) -> None:
    executed = copy / "_build" / "executed"
    record = json.loads((executed / "01_good.cache.json").read_text())
    meta = nbformat.read(executed / "01_good.ipynb", as_version=4).metadata["ganbook"]
    assert record["parts"] == book.cache_parts(
        copy / "notebooks" / "01_good.md", {"profile": "smoke"}, {"losses.py": book._sha256(copy / "lib" / "losses.py")},
        VERSIONS,
    )
    assert (record["seconds"], record["executed"], record["processes"]) == (meta["seconds"], meta["executed"], 1)
    assert 0 < record["startup_s"] < record["seconds"] and 0 <= record["shutdown_s"] < record["seconds"]


def test_an_unchanged_rebuild_starts_no_kernel(copy: Path, monkeypatch) -> None:
    def no_kernel(*args, **kwargs):
        raise AssertionError("an unchanged chapter was executed again")

    monkeypatch.setattr(book, "execute_chapter", no_kernel)
    monkeypatch.setattr(book, "_start_worker", no_kernel)
    executed = copy / "_build" / "executed"
    before = files(executed)
    records = {n: json.loads(before[n][1]) for n in ("01_good.cache.json", "02_second.cache.json")}
    start = time.perf_counter()
    results = build(copy, jobs=2)
    seconds = time.perf_counter() - start
    assert outcome(results) == [("01_good", True, "nothing it depends on changed"),
                                ("02_second", True, "nothing it depends on changed")]
    # the original executions' wall times and end times, not this build's
    assert [(r.seconds, r.executed) for r in results] == [
        (records[f"{r.chapter.rsplit('/', 1)[-1]}.cache.json"]["seconds"],
         records[f"{r.chapter.rsplit('/', 1)[-1]}.cache.json"]["executed"]) for r in results
    ]
    assert files(executed) == before  # nothing rewritten
    status = (copy / "_build" / "src" / "book" / "status.md").read_text()
    assert "No chapter was executed in this build" in status
    assert f"| {results[0].seconds:.1f} | pass | reused (nothing it depends on changed): executed " in status
    # hashing a few files; executing the two chapters took seconds (a bound far above the 0.2-0.5 s it takes)
    assert seconds < 5, f"an unchanged rebuild took {seconds:.1f} s"


def test_a_changed_source_executes_that_chapter_only(copy: Path) -> None:
    chapter = copy / "notebooks" / "02_second.md"
    chapter.write_text(chapter.read_text() + "\nA new closing sentence.\n")
    before = json.loads((copy / "_build" / "executed" / "01_good.cache.json").read_text())
    results = build(copy)
    assert outcome(results) == [("01_good", True, "nothing it depends on changed"),
                                ("02_second", False, "its source changed")]
    assert results[0].seconds == before["seconds"]
    record = json.loads((copy / "_build" / "executed" / "02_second.cache.json").read_text())
    assert record["parts"]["source_sha256"] == book._sha256(chapter)
    status = (copy / "_build" / "src" / "book" / "status.md").read_text()
    assert f"| {results[1].seconds:.1f} | pass | executed (its source changed) |" in status
    assert "This build executed 1 of 2 chapters one after another" in status


def test_a_changed_profile_executes_every_chapter(copy: Path) -> None:
    results = build(copy, profile="cpu")
    assert outcome(results) == [("01_good", False, "parameters changed: profile 'smoke' -> 'cpu'"),
                                ("02_second", False, "parameters changed: profile 'smoke' -> 'cpu'")]
    assert [r.profile for r in results] == ["cpu", "cpu"]


def test_a_changed_parameter_invalidates_the_record(copy: Path) -> None:
    chapter = copy / "notebooks" / "01_good.md"
    notebook = copy / "_build" / "executed" / "01_good.ipynb"
    library = book.library_files(copy / "lib")

    def state(parameters: dict) -> tuple[bool, str]:
        record, why = book.cache_state(notebook, book.cache_parts(chapter, parameters, library, VERSIONS))
        return record is not None, why

    assert state({"profile": "smoke"}) == (True, "")
    assert state({"profile": "smoke", "steps": 4}) == (False, "parameters changed: steps set to 4")
    assert state({}) == (False, "parameters changed: profile no longer set")


def test_a_changed_library_file_executes_every_chapter(copy: Path) -> None:
    (copy / "lib" / "README.txt").write_text("edited, but not Python\n")
    assert all(r.reused for r in build(copy))  # only .py files count
    (copy / "lib" / "losses.py").write_text("SCALE = 2.0\n")
    (copy / "lib" / "train").mkdir()
    (copy / "lib" / "train" / "loop.py").write_text("STEPS = 1\n")
    results = build(copy, jobs=2)
    reason = "gan_lib changed: losses.py, train/loop.py (new)"
    assert outcome(results) == [("01_good", False, reason), ("02_second", False, reason)]
    assert [r.processes for r in results] == [2, 2]


def test_a_changed_package_version_executes_every_chapter(copy: Path) -> None:
    (copy / "versions.json").write_text(json.dumps({**VERSIONS, "torch": "2.14.0", "scipy": "1.15.0"}))
    results = build(copy)
    reason = "package versions changed: scipy added, torch 2.13.0 -> 2.14.0"
    assert outcome(results) == [("01_good", False, reason), ("02_second", False, reason)]


def test_force_executes_every_chapter(copy: Path) -> None:
    assert outcome(build(copy, force=True)) == [("01_good", False, "--force"), ("02_second", False, "--force")]


def test_a_notebook_replaced_after_its_record_is_not_reused(copy: Path) -> None:
    notebook = copy / "_build" / "executed" / "01_good.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["ganbook"]["executed"] = "2000-01-01T00:00:00+00:00"  # another execution's notebook
    nbformat.write(nb, notebook)
    parts = book.cache_parts(copy / "notebooks" / "01_good.md", {"profile": "smoke"}, book.library_files(copy / "lib"), VERSIONS)
    assert book.cache_state(notebook, parts) == (
        None, "its record 01_good.cache.json describes another execution than the notebook kept",
    )
    book.cache_record_path(notebook).unlink()
    assert book.cache_state(notebook, parts) == (
        None, "there is no record of what it was executed from (01_good.cache.json)",
    )


def test_only_warns_when_it_reuses_a_chapter_that_changed(copy: Path, caplog) -> None:
    (copy / "lib" / "losses.py").write_text("SCALE = 3.0\n")
    results = build(copy, only=["01"])
    assert outcome(results) == [
        ("01_good", False, "named by --only"),
        ("02_second", True, "not named by --only, although gan_lib changed: losses.py"),
    ]
    assert "02_second.md is reused as executed" in caplog.text and "although gan_lib changed: losses.py" in caplog.text


def test_an_unchanged_site_is_not_rendered_again(copy: Path, monkeypatch) -> None:
    rendered = []

    def render(src: Path, out: Path, *, stamp=None) -> Path:  # what render_book leaves: a site and its stamp
        rendered.append(stamp["inputs"])
        site = out / "_build" / "html"
        site.mkdir(exist_ok=True)
        (site / "index.html").write_text("<html></html>")
        (site / book.RENDER_STAMP).write_text(json.dumps(stamp))
        return site

    monkeypatch.setattr(book, "render_book", render)
    build(copy, render=True)
    build(copy, render=True)
    assert len(rendered) == 1  # the same notebooks and book files: the site is kept
    (copy / "book" / "intro.md").write_text("# Intro\n\nA new sentence.\n")
    build(copy, render=True)
    assert len(rendered) == 2 and rendered[0] != rendered[1]
    build(copy, render=True, force=True)
    assert len(rendered) == 3


def test_parallel_kernels_have_one_thread_each(tmp_path: Path) -> None:
    threads = 'import os, torch\nprint("threads", os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"], torch.get_num_threads())'
    root = write_book(tmp_path, {"01_a": profile_only_chapter("A", threads), "02_b": profile_only_chapter("B", threads)})
    results = book.build_book(root, profile="smoke", render=False, jobs=2)
    assert [(r.ok, r.processes) for r in results] == [(True, 2), (True, 2)]
    for stem in ("01_a", "02_b"):
        nb = nbformat.read(root / "_build" / "executed" / f"{stem}.ipynb", as_version=4)
        printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert printed == "threads 1 1 1\n"
    status = (root / "_build" / "src" / "book" / "status.md").read_text()
    assert "This build executed 2 of 2 chapters in parallel, in 2 processes of one thread each" in status
    # said once above the table, not in every row
    assert "one of 2 executing at once" not in status and "| executed (no earlier execution is kept) |" in status


def test_jobs_must_be_a_positive_integer(tmp_path: Path) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    for jobs in (0, -1, 1.5, True):
        with pytest.raises(book.Refused, match=rf"^jobs={jobs!r} is not allowed: expected an integer >= 1 "):
            book.build_book(root, render=False, jobs=jobs)
    assert not (root / "_build").exists()  # refused before anything was written


def test_the_real_library_and_versions_are_what_the_kernel_imports() -> None:
    import numpy
    import torch

    versions = book.dependency_versions()
    assert (versions["torch"], versions["numpy"]) == (torch.__version__, numpy.__version__)
    assert versions["python"].endswith(".".join(map(str, __import__("sys").version_info[:3])))
    library = book.library_files()
    assert {"pipeline/book.py", "losses/__init__.py"} <= set(library)
    assert library["pipeline/book.py"] == book._sha256(Path(book.__file__))


def test_the_longest_chapter_starts_first(tmp_path: Path) -> None:
    executed = tmp_path / "executed"
    executed.mkdir()
    (executed / "01_a.cache.json").write_text(json.dumps({"seconds": 3.5}))
    nb = nbformat.v4.new_notebook(metadata={"ganbook": {"seconds": 12.0}})
    nbformat.write(nb, executed / "02_b.ipynb")
    assert [book._expected_seconds(executed / f"{s}.ipynb") for s in ("01_a", "02_b", "03_new")] == [3.5, 12.0, float("inf")]



def test_benchmark_scripts_and_records_count_but_their_results_do_not(tmp_path):
    bench = tmp_path / "benchmarks"
    (bench / "records").mkdir(parents=True)
    (bench / "results").mkdir()
    (bench / "ensemble.py").write_text("print(1)\n")
    (bench / "records" / "ensemble-cpu-1.json").write_text("{}\n")
    (bench / "results" / "ensemble.json").write_text("{}\n")
    (bench / "README.md").write_text("notes\n")
    files = book.benchmark_files(bench)
    assert sorted(files) == ["../benchmarks/ensemble.py", "../benchmarks/records/ensemble-cpu-1.json"]
    before = dict(files)
    (bench / "results" / "ensemble.json").write_text('{"changed": true}\n')
    assert book.benchmark_files(bench) == before  # a script's own output is not an input
    (bench / "records" / "ensemble-cpu-1.json").write_text('{"run": 2}\n')
    after = book.benchmark_files(bench)
    assert after["../benchmarks/records/ensemble-cpu-1.json"] != before["../benchmarks/records/ensemble-cpu-1.json"]
    assert after["../benchmarks/ensemble.py"] == before["../benchmarks/ensemble.py"]
    assert book.benchmark_files(tmp_path / "missing") == {}
