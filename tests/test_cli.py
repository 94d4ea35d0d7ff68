"""The ``ganbook`` command: exit codes (0 done, 2 refused, 1 a build error), its messages, and what
it leaves behind when it is stopped by a real signal.

The signal tests run ``ganbook`` in its own process group on a tiny chapter whose third cell waits
while a file named ``hold`` exists beside it, so a test can stop it in the middle of a cell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_lib.pipeline import cli
from test_book import BAD, GOOD, profile_only_chapter, write_book

HOLD = profile_only_chapter(
    "A chapter that waits",
    'import os, time\nopen("started", "w").close()\nwhile os.path.exists("hold"):\n    time.sleep(0.05)',
)
GANBOOK = [sys.executable, "-m", "gan_lib.pipeline.cli"]


def ganbook(*args: object, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*GANBOOK, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def start_ganbook(*args: object, cwd: Path, sigint: signal.Handlers = signal.SIG_DFL) -> subprocess.Popen:
    """ganbook in its own process group, with SIGINT as a terminal's foreground job has it
    (``SIG_DFL``) whatever the test runner inherited (a background job of a non-interactive shell
    starts with SIGINT ignored, and so would every process it starts), or ``SIG_IGN``."""
    return subprocess.Popen(
        [*GANBOOK, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, so a signal reaches it and its kernel as Ctrl-C would
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"ganbook exited with {proc.returncode} before {path.name} appeared:\n{out}\n{err}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    """Wait for ganbook to end (stdout, stderr); then whatever is left in its group (a kernel) goes too."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop(proc: subprocess.Popen, signum: int) -> tuple[int, str, str]:
    os.killpg(proc.pid, signum)
    out, err = finish(proc)
    return proc.returncode, out, err


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.fixture()
def hold_chapter(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    chapter = tmp_path / "notebooks" / "03_hold.md"
    chapter.write_text(HOLD)
    (tmp_path / "notebooks" / "hold").touch()
    return chapter


# --------------------------------------------------------------------------------------------
# Each subcommand: exit code and key output
# --------------------------------------------------------------------------------------------


def test_params_lists_names_defaults_and_comments(tmp_path: Path, capsys) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    assert cli.main(["params", str(root / "notebooks" / "01_good.md")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "profile = 'cpu'    # smoke | cpu | gpu", "steps = 3    # an integer >= 1",
    ]


def test_params_of_a_missing_chapter_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert cli.main(["params", str(tmp_path / "nope.md")]) == 1
    assert capsys.readouterr().err == f"ganbook: error: chapter {tmp_path / 'nope.md'} does not exist\n"


def test_prepare_writes_every_chapter(tmp_path: Path, capsys) -> None:
    root = write_book(tmp_path / "book", {"01_good": GOOD, "02_bad": BAD})
    out = tmp_path / "prepared"
    assert cli.main(["prepare", "--profile", "smoke", "--root", str(root), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["01_good.ipynb", "02_bad.ipynb"]
    assert "prepared 02_bad.md with profile smoke" in capsys.readouterr().out


def test_build_without_render_executes_and_reports(tmp_path: Path, capsys) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    assert cli.main(["build", "--profile", "smoke", "--no-render", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "01_good.md: ok in" in out and "1 chapter(s) executed" in out and "not rendered (--no-render)" in out


def test_a_second_build_reuses_what_did_not_change(tmp_path: Path, capsys) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    assert cli.main(["build", "--profile", "smoke", "--no-render", "--root", str(root)]) == 0
    capsys.readouterr()
    assert cli.main(["build", "--profile", "smoke", "--no-render", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "01_good.md: reused (nothing it depends on changed): executed " in out
    assert "0 chapter(s) executed, 1 reused;" in out
    assert cli.main(["build", "--profile", "smoke", "--no-render", "--force", "--root", str(root)]) == 0
    assert "01_good.md: executing (--force)" in capsys.readouterr().out


@pytest.mark.parametrize("jobs", ["0", "-2", "two"])
def test_build_refuses_a_bad_number_of_jobs(tmp_path: Path, capsys, jobs: str) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    with pytest.raises(SystemExit) as info:
        cli.main(["build", "--jobs", jobs, "--root", str(root)])
    assert info.value.code == 2
    assert (f"argument --jobs/-j: --jobs {jobs} is not allowed: expected a whole number of processes >= 1"
            in capsys.readouterr().err)
    assert not (root / "_build").exists()


def test_build_with_a_failing_chapter_exits_1_and_names_it(tmp_path: Path, capsys) -> None:
    root = write_book(tmp_path, {"01_good": GOOD, "02_bad": BAD})
    assert cli.main(["build", "--profile", "smoke", "--no-render", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ganbook: error: chapter(s) failed, the book was not rendered (the other chapters were executed to the end):")
    assert "02_bad.md failed in cell 4" in err and "02_bad.failed.ipynb" in err


def test_build_only_without_an_earlier_build_is_refused(tmp_path: Path, capsys) -> None:
    root = write_book(tmp_path, {"01_good": GOOD, "02_bad": BAD})
    assert cli.main(["build", "--profile", "smoke", "--no-render", "--only", "01", "--root", str(root)]) == 2
    assert "ganbook: refused: --only re-executes 01_good" in capsys.readouterr().err


def test_build_only_naming_no_chapter_is_refused(tmp_path: Path, capsys) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    assert cli.main(["build", "--no-render", "--only", "07", "--root", str(root)]) == 2
    assert "--only 07 matches no chapter in _toc.yml; the chapters are: 01_good" in capsys.readouterr().err


def test_run_executes_and_names_the_folder(tmp_path: Path, capsys) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    runs = tmp_path / "runs"
    assert cli.main(["run", str(root / "notebooks" / "01_good.md"), "-p", "steps", "2", "--runs", str(runs)]) == 0
    folder = runs / "01_good" / "steps=2"
    assert f"into {folder}/" in capsys.readouterr().out
    assert json.loads((folder / "parameters.json").read_text()) == {"steps": 2}


def test_run_with_a_failing_chapter_exits_1_and_keeps_the_failed_copy(tmp_path: Path, capsys) -> None:
    root = write_book(tmp_path, {"02_bad": BAD})
    runs = tmp_path / "runs"
    assert cli.main(["run", str(root / "notebooks" / "02_bad.md"), "--runs", str(runs)]) == 1
    err = capsys.readouterr().err
    failed = runs / "02_bad" / "defaults" / "02_bad.failed.ipynb"
    assert failed.is_file() and str(failed) in err and "RuntimeError: deliberate failure in the third cell" in err


# --------------------------------------------------------------------------------------------
# Command-line values
# --------------------------------------------------------------------------------------------


def test_negative_numbers_are_values_not_options(tmp_path: Path, capsys) -> None:
    chapter = tmp_path / "signed.md"
    chapter.write_text(profile_only_chapter("Signed", "print(lr)").replace(
        'profile = "cpu"', 'profile = "cpu"\nlr = 1e-3  # any number'))
    runs = tmp_path / "runs"
    assert cli.main(["run", str(chapter), "-p", "lr", "-1e-3", "--runs", str(runs)]) == 0, capsys.readouterr().err
    assert json.loads((runs / "signed" / "lr=-0.001" / "parameters.json").read_text()) == {"lr": -1e-3}


def test_a_repeated_parameter_is_refused_naming_it(tmp_path: Path, capsys) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    code = cli.main(["run", str(root / "notebooks" / "01_good.md"), "-p", "steps", "5", "-p", "steps", "6",
                     "--runs", str(tmp_path / "runs")])
    assert code == 2
    assert capsys.readouterr().err == (
        "ganbook: refused: parameter steps is given twice (-p steps 5 and -p steps 6); give each parameter once\n"
    )
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("option", ["--runs", "--out"])
def test_an_unwritable_output_folder_is_a_one_line_refusal(tmp_path: Path, capsys, option: str) -> None:
    root = write_book(tmp_path / "book", {"01_good": GOOD})
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "out"
    if option == "--runs":
        argv = ["run", str(root / "notebooks" / "01_good.md"), "--runs", str(target)]
    else:
        argv = ["prepare", "--root", str(root), "--out", str(target)]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"ganbook: refused: cannot write to {option} {target}: Not a directory\n"


# --------------------------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------------------------


def test_without_the_book_extra_ganbook_says_what_to_install(tmp_path: Path) -> None:
    # papermill and jupyter-book are "not installed": an import of either fails
    code = (
        "import sys; sys.modules['papermill'] = None; sys.modules['jupyter_book'] = None\n"
        "from gan_lib.pipeline.cli import main; sys.exit(main(['params', 'x.md']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == (
        "ganbook: papermill, jupyter-book are not installed; ganbook needs the book extra: "
        "pip install 'gan_lib[book]'\n"
    )


def test_the_library_imports_none_of_the_book_dependencies(tmp_path: Path) -> None:
    code = (
        "import sys, gan_lib, gan_lib.divergences, gan_lib.losses, gan_lib.train, gan_lib.nets, gan_lib.data, "
        "gan_lib.metrics\n"
        "print(sorted(m for m in ('papermill', 'jupyter_client', 'nbclient', 'matplotlib', 'yaml', 'seaborn') "
        "if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# Output of a run
# --------------------------------------------------------------------------------------------


def test_run_prints_no_papermill_or_kernel_warnings(tmp_path: Path) -> None:
    root = write_book(tmp_path, {"01_good": GOOD})
    proc = ganbook("run", root / "notebooks" / "01_good.md", "-p", "steps", "2", "-p", "profile", "smoke",
                   "--runs", tmp_path / "runs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Passed unknown parameter" not in proc.stderr
    assert "without encryption" not in proc.stderr


# --------------------------------------------------------------------------------------------
# Real signals
# --------------------------------------------------------------------------------------------


def test_sigint_during_a_run_leaves_nothing_behind(tmp_path: Path, hold_chapter: Path) -> None:
    runs = tmp_path / "runs"
    proc = start_ganbook("run", hold_chapter, "-p", "profile", "smoke", "--runs", runs, cwd=tmp_path)
    wait_for(hold_chapter.parent / "started", proc)
    code, _, err = stop(proc, signal.SIGINT)
    assert code == 130
    assert err.splitlines()[-1] == "ganbook: interrupted"
    assert "Traceback" not in err
    assert not runs.exists()  # no empty run folder, no temporary notebook


def test_sigterm_during_a_run_leaves_nothing_behind(tmp_path: Path, hold_chapter: Path) -> None:
    runs = tmp_path / "runs"
    proc = start_ganbook("run", hold_chapter, "--runs", runs, cwd=tmp_path)
    wait_for(hold_chapter.parent / "started", proc)
    os.kill(proc.pid, signal.SIGTERM)  # the ganbook process alone, as a service manager would
    _, err = finish(proc)
    code = proc.returncode
    assert code == 128 + signal.SIGTERM
    assert err.splitlines()[-1] == "ganbook: stopped by SIGTERM"
    assert not runs.exists()


def test_temporaries_of_a_killed_run_are_swept_by_the_next_run(tmp_path: Path, hold_chapter: Path) -> None:
    runs = tmp_path / "runs"
    proc = start_ganbook("run", hold_chapter, "-p", "profile", "smoke", "--runs", runs, cwd=tmp_path)
    wait_for(hold_chapter.parent / "started", proc)
    stop(proc, signal.SIGKILL)
    folder = runs / "03_hold" / "profile=smoke"
    assert hidden(folder)  # SIGKILL cannot be caught: the temporary notebooks are still there
    (hold_chapter.parent / "hold").unlink()
    proc = ganbook("run", hold_chapter, "-p", "profile", "smoke", "--runs", runs, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["03_hold.html", "03_hold.ipynb", "parameters.json"]


def test_a_second_build_is_refused_while_one_runs(tmp_path: Path) -> None:
    root = write_book(tmp_path, {"03_hold": HOLD})
    (root / "notebooks" / "hold").touch()
    first = start_ganbook("build", "--profile", "smoke", "--no-render", "--root", root, cwd=tmp_path)
    try:
        wait_for(root / "notebooks" / "started", first)
        second = ganbook("build", "--profile", "smoke", "--no-render", "--root", root, cwd=tmp_path, timeout=120)
        assert second.returncode == 2, second.stderr
        lock = root / "_build" / "build.lock"
        assert f"another ganbook build holds the lock {lock} (pid {first.pid}" in second.stderr
        assert "build --profile smoke --no-render" in second.stderr  # the other build's command line
        (root / "notebooks" / "hold").unlink()
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_build_killed_while_rendering_is_swept_and_leaves_status_alone(tmp_path: Path) -> None:
    root = write_book(tmp_path, {"01_good": GOOD}, status_page=True)
    build = root / "_build"
    proc = start_ganbook("build", "--profile", "smoke", "--root", root, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not [p for p in build.glob(".render*")] and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert [p for p in build.glob(".render*")], "the build never started rendering"
    stop(proc, signal.SIGKILL)
    assert not (build / "status.json").exists()  # the site was never rendered
    proc = ganbook("build", "--profile", "smoke", "--no-render", "--root", root, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not list(build.glob(".render*")) and not (build / "status.json").exists()


def waiting_chapter(name: str) -> str:
    """A chapter whose kernel writes its pid to ``kernel_<name>.pid`` and creates ``started_<name>``
    beside it, then waits while ``hold`` exists."""
    return profile_only_chapter(
        f"Chapter {name} waits",
        f'import os, time\nopen("kernel_{name}.pid", "w").write(str(os.getpid()))\nopen("started_{name}", "w").close()\n'
        'while os.path.exists("hold"):\n    time.sleep(0.05)',
    )


def wait_until_gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stopping_a_parallel_build_stops_every_chapter_and_leaves_nothing(tmp_path: Path, signum: int) -> None:
    root = write_book(tmp_path / "book", {"03_hold": waiting_chapter("a"), "04_hold": waiting_chapter("b")})
    notebooks = root / "notebooks"
    (notebooks / "hold").touch()
    proc = start_ganbook("build", "--profile", "smoke", "--no-render", "--jobs", "2", "--root", root, cwd=tmp_path)
    wait_for(notebooks / "started_a", proc)
    wait_for(notebooks / "started_b", proc)  # both chapters are executing at once
    kernels = [int((notebooks / f"kernel_{n}.pid").read_text()) for n in "ab"]
    if signum == signal.SIGINT:  # Ctrl-C: the terminal signals ganbook's whole process group
        os.killpg(proc.pid, signal.SIGINT)
    else:  # a service manager signals the ganbook process alone
        os.kill(proc.pid, signal.SIGTERM)
    # the workers and the kernels write to ganbook's stderr too: it ends when all of them are gone
    _, err = finish(proc, timeout=90)
    expected = {signal.SIGINT: "ganbook: interrupted", signal.SIGTERM: "ganbook: stopped by SIGTERM"}[signum]
    assert proc.returncode == 128 + signum, err
    assert err.splitlines()[-1] == expected
    assert "Traceback" not in err
    assert all(wait_until_gone(pid) for pid in kernels), "a chapter's kernel is still running"
    build = root / "_build"
    # no notebook, no record, no failed copy, no temporary: the chapters were stopped, not failed
    assert list((build / "executed").iterdir()) == []
    assert sorted(p.name for p in build.iterdir()) == ["build.lock", "executed"]


def test_a_build_started_with_sigint_ignored_goes_on_through_ctrl_c(tmp_path: Path) -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored: a Ctrl-C meant for
    the foreground job must stop neither the build nor its workers' chapters."""
    root = write_book(tmp_path / "book", {"03_hold": waiting_chapter("a"), "04_hold": waiting_chapter("b")})
    notebooks = root / "notebooks"
    (notebooks / "hold").touch()
    proc = start_ganbook("build", "--profile", "smoke", "--no-render", "--jobs", "2", "--root", root, cwd=tmp_path,
                         sigint=signal.SIG_IGN)
    wait_for(notebooks / "started_a", proc)
    wait_for(notebooks / "started_b", proc)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(2.0)
    went_on = proc.poll() is None  # the build goes on ...
    (notebooks / "hold").unlink()  # ... and ends well once its chapters may finish
    _, err = finish(proc, timeout=120)
    assert went_on, err
    assert proc.returncode == 0, err
    assert sorted(p.name for p in (root / "_build" / "executed").iterdir() if p.suffix == ".ipynb") == [
        "03_hold.ipynb", "04_hold.ipynb"]
