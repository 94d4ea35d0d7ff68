"""gan_lib.files: a file appears whole or not at all, with the umask's permissions, and what a killed
writer leaves behind is recognisable as stale."""

from __future__ import annotations

import json
import re
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_lib import files

FORK = multiprocessing.get_context("fork")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_published_file_has_the_mode_a_new_file_gets(tmp_path: Path, umask: int, expected: int) -> None:
    old = os.umask(umask)
    try:
        files.write_text(tmp_path / "a.txt", "x")
        (tmp_path / "plain.txt").write_text("x")  # what open() gives, the reference
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.txt") == expected == _mode(tmp_path / "plain.txt")
    assert os.umask(old) == old  # reading the umask put it back
    os.umask(old)


def test_text_binary_and_json_round_trip(tmp_path: Path) -> None:
    assert files.write_text(tmp_path / "t.txt", "ünïcode\n", fsync=True).read_text(encoding="utf-8") == "ünïcode\n"
    with files.atomic_open(tmp_path / "b.bin", "wb") as handle:
        handle.write(bytes(range(256)))
    assert (tmp_path / "b.bin").read_bytes() == bytes(range(256))
    record = {"a": [1, 2.5, None], "b": "x"}
    files.write_json(tmp_path / "r.json", record)
    assert json.loads((tmp_path / "r.json").read_text()) == record
    assert (tmp_path / "r.json").read_text().endswith("}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "r.json", "t.txt"]


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_an_error_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(type(error)):
        with files.atomic_open(target) as handle:
            handle.write("new, half")
            raise error
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_json_that_cannot_be_serialised_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(TypeError, match="not JSON serializable"):
        files.write_json(target, {"x": object()})
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("mode", ["a", "r", "w+", "ab", "x"])
def test_modes_other_than_writing_are_refused(tmp_path: Path, mode: str) -> None:
    with pytest.raises(ValueError, match=rf"mode='{re.escape(mode)}' is not allowed.*\('w', 'wb'\)"):
        with files.atomic_open(tmp_path / "f", mode):
            pass
    assert not list(tmp_path.iterdir())


def test_missing_folder_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        files.write_text(tmp_path / "no" / "such" / "f.txt", "x")
    assert not list(tmp_path.iterdir())


def test_temporary_names_carry_the_owner_and_are_stale_once_it_is_gone(tmp_path: Path) -> None:
    mine = files.temp_path(tmp_path, "ckpt.pt", ".ipynb")
    folder = files.temp_dir(tmp_path, "render")
    for entry in (mine, folder):
        match = files.TEMP_NAME.match(entry.name)
        assert match is not None and int(match["pid"]) == os.getpid(), entry.name
        assert not files.stale_temporary(entry.name)  # this process is alive
    assert mine.name.startswith(".ckpt.pt.ganbook-") and mine.suffix == ".ipynb" and folder.is_dir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    gone = mine.name.replace(f"-{os.getpid()}-", f"-{int(dead.stdout)}-")
    assert files.stale_temporary(gone)
    for other in ("ckpt.pt", ".ckpt.pt", ".x.ganbook-12a-b", "x.ganbook-1-abc", ".x.tmp-1-abc"):
        assert not files.stale_temporary(other), other


def _die_while_writing(target: str) -> None:
    with files.atomic_open(target, "wb") as handle:
        handle.write(b"partial")
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_writer_killed_midway_leaves_the_old_file_and_one_stale_temporary(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"complete")
    proc = FORK.Process(target=_die_while_writing, args=(str(target),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    assert target.read_bytes() == b"complete"
    left = [p for p in tmp_path.iterdir() if p != target]
    assert len(left) == 1 and left[0].read_bytes() == b"partial"
    assert files.stale_temporary(left[0].name)


def _write_many(target: str, tag: int, count: int) -> None:
    for i in range(count):
        files.write_json(target, {"writer": tag, "i": i, "pad": "x" * 20000})


def test_two_writers_at_once_never_show_a_reader_half_a_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    files.write_json(target, {"writer": -1, "i": 0, "pad": ""})
    writers = [FORK.Process(target=_write_many, args=(str(target), tag, 150)) for tag in (0, 1)]
    for w in writers:
        w.start()
    seen = set()
    deadline = time.monotonic() + 60
    while any(w.is_alive() for w in writers) and time.monotonic() < deadline:
        record = json.loads(target.read_text())  # raises if a reader ever saw a partial file
        seen.add(record["writer"])
    for w in writers:
        w.join(30)
        assert w.exitcode == 0
    assert json.loads(target.read_text())["i"] == 149
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert seen & {0, 1}


def test_cannot_write_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert files.cannot_write(tmp_path / "new" / "deeper" / "out.json") is None
    assert files.cannot_write(tmp_path / "file") is None  # an existing file may be replaced
    assert files.cannot_write(tmp_path) == f"{tmp_path} is a folder"
    assert files.cannot_write(tmp_path / "file" / "out.json") == f"{tmp_path / 'file'} is not a folder"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert "cannot write in" in files.cannot_write(locked / "out.json")
        locked.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"] + (["locked"] if os.geteuid() != 0 else [])


def test_a_device_or_pipe_at_the_destination_is_refused_and_left_alone(tmp_path: Path) -> None:
    # the rename would put a file in place of /dev/null (as root); a pipe stands in for a device here
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    why = f"{pipe} exists and is not a regular file (a device, pipe or socket); give the path of a file"
    assert files.cannot_write(pipe) == why
    for write in (lambda: files.write_json(pipe, {"a": 1}), lambda: files.write_text(pipe, "x")):
        with pytest.raises(ValueError, match="is not a regular file"):
            write()
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temporary left beside it
