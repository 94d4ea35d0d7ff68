"""Files that appear whole or not at all: the one atomic writer the library, the book pipeline and
the benchmarks use.

A file is written to a hidden temporary next to its destination, named after the process that
owns it (``.<name>.ganbook-<pid>-<random><suffix>``), and renamed onto the destination only once it
is complete (:func:`os.replace`, atomic on one file system). Readers therefore see the old file or
the new one, never half of one; an error or Ctrl-C while writing removes the temporary, and what a
killed process leaves behind is recognisable by :data:`TEMP_NAME` and its dead owner
(:func:`stale_temporary`). The published file gets the permissions any new file of the user gets
(0666 less the umask), not the private 0600 that :func:`tempfile.mkstemp` gives its files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = [
    "TEMP_MARK", "TEMP_NAME", "atomic_open", "cannot_write", "publish", "stale_temporary", "temp_dir", "temp_path",
    "write_json", "write_text",
]

#: What marks a temporary as this library's.
TEMP_MARK = "ganbook"
#: The names :func:`temp_path` gives: ``.<name>.ganbook-<pid>-<random>[.<ext>]``.
TEMP_NAME = re.compile(r"^\..+\." + TEMP_MARK + r"-(?P<pid>\d+)-[A-Za-z0-9_]+(\.[A-Za-z]+)?$")
_MODES = ("w", "wb")


def temp_path(folder: str | os.PathLike[str], stem: str, suffix: str = "") -> Path:
    """A new, empty, hidden file in ``folder`` whose name says which process owns it."""
    fd, name = tempfile.mkstemp(prefix=f".{stem}.{TEMP_MARK}-{os.getpid()}-", suffix=suffix, dir=folder)
    os.close(fd)
    return Path(name)


def temp_dir(folder: str | os.PathLike[str], stem: str) -> Path:
    """A new, empty, hidden folder in ``folder`` named as :func:`temp_path` names files."""
    return Path(tempfile.mkdtemp(prefix=f".{stem}.{TEMP_MARK}-{os.getpid()}-", dir=folder))


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` may not be replaced by a written file: it exists and is not a regular file
    (a device such as ``/dev/null``, a pipe, a socket), which the rename would put a file in place of."""
    if path.exists() and not path.is_dir() and not path.is_file():
        return f"{path} exists and is not a regular file (a device, pipe or socket); give the path of a file"
    return None


def cannot_write(path: str | os.PathLike[str]) -> str | None:
    """Why no file could be written at ``path`` (a folder there, a device or pipe there, a parent
    that is a file, no permission), or ``None`` if one can: found by making any missing parent folders and a
    temporary file beside ``path``, all removed again. For checking a result path before the
    work that produces the result."""
    path = Path(path)
    created: list[Path] = []
    try:
        if path.is_dir():
            return f"{path} is a folder"
        if (why := _not_a_file(path)) is not None:
            return why
        missing, here = [], path.parent
        while not here.exists() and here != here.parent:
            missing.append(here)
            here = here.parent
        if not here.is_dir():
            return f"{here} is not a folder"
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:  # made meanwhile by someone else: theirs, not ours to remove
                continue
            created.append(folder)
        temp_path(path.parent, "probe").unlink()
    except OSError as err:  # also from is_dir / exists, in a folder this user may not search
        return f"cannot write in {path.parent}: {err.strerror or err}"
    finally:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                break
    return None


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it and put it back
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Rename the finished temporary ``tmp`` onto ``dest`` with the mode a new file gets (0666 less
    the umask)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, dest)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", *, fsync: bool = False,
                suffix: str = "") -> Iterator[IO[Any]]:
    """Open ``path`` for writing (``mode`` ``"w"``, UTF-8 text, or ``"wb"``) so that it is replaced
    only when the ``with`` block ends without an exception.

    ``fsync=True`` flushes the data to disk before the rename (for checkpoints, which must survive
    a power cut as well as a killed process). ``suffix`` ends the temporary's name, for writers
    that look at the extension. The folder must exist. A destination that exists and is not a
    regular file (a device such as ``/dev/null``, a pipe) is refused with ``ValueError``: the rename
    would replace it with a file.
    """
    if mode not in _MODES:
        raise ValueError(f"mode={mode!r} is not allowed; atomic_open writes with one of {_MODES}")
    dest = Path(path)
    if not dest.name:
        raise ValueError(f"path={str(path)!r} names no file")
    if (why := _not_a_file(dest)) is not None:
        raise ValueError(why)
    tmp = temp_path(dest.parent, dest.name, suffix)
    try:
        with open(tmp, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        publish(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "w", fsync=fsync) as handle:
        handle.write(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (and a final newline) to ``path`` atomically; returns the path.

    The data are serialised before the file is opened, so a value JSON cannot hold raises
    ``TypeError`` and leaves any existing file as it was.
    """
    return write_text(path, json.dumps(data, indent=indent) + "\n")


def stale_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary of :func:`temp_path` whose owning process no longer runs."""
    match = TEMP_NAME.match(name)
    return match is not None and not _process_alive(int(match["pid"]))


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
