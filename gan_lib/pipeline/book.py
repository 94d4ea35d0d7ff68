"""The book pipeline: execute chapters with papermill, then render with Jupyter Book.

Chapters are jupytext MyST-markdown notebooks ``notebooks/NN_slug.md``. Each has a first code cell
tagged ``parameters`` (every knob a reader may change, ``profile`` among them) and a second cell
tagged ``validate`` that checks them. Two entry points, both exposed by the ``ganbook`` script:

- :func:`build_book` executes every chapter listed in ``_toc.yml`` with a profile into
  ``_build/executed/``, stages a copy of the book (``_build/src``) with those notebooks and a status
  page, and renders ``_build/html`` with ``jupyter-book build -W -n --keep-going`` and execution
  off. With ``only``, the named chapters are executed again and every other chapter's notebook is
  reused from ``_build/executed/``, so the rendered site keeps all its pages. One build at a time
  per build folder: a second one is refused while the first holds ``_build/build.lock``.
- :func:`run_chapter` re-executes one chapter with new parameters into ``runs/<chapter>/<params>/``
  (the executed notebook, its HTML page and ``parameters.json``), refusing unknown names and bad
  values before the chapter's real work starts.

Nothing half-written is left behind: every file is written to a hidden temporary named after the
process that owns it (``.<name>.ganbook-<pid>-<random>``) and renamed into place when complete, with
the permissions the process umask gives a new file. Temporaries of an interrupted process are
removed on the way out; those of a killed one are swept by the next ganbook that finds them, once
their owner is no longer running. A chapter that fails keeps its partly executed notebook as
``<chapter>.failed.ipynb`` for inspection.
"""

from __future__ import annotations

import ast
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import yaml

__all__ = [
    "ChapterResult",
    "BuildError",
    "Refused",
    "find_root",
    "toc_chapters",
    "read_chapter",
    "chapter_parameters",
    "show_values_in_parameters_cell",
    "parse_value",
    "check_parameters",
    "check_writable",
    "sweep_stale",
    "failed_copy",
    "execute_chapter",
    "prepare_chapter",
    "build_book",
    "render_book",
    "run_chapter",
    "run_folder_name",
]

log = logging.getLogger(__name__)
# papermill logs every cell and guesses parameter types from comments; keep only its warnings.
logging.getLogger("papermill").setLevel(logging.WARNING)
logging.getLogger("papermill.translators").setLevel(logging.ERROR)

PARAMETERS_TAG = "parameters"
VALIDATE_TAG = "validate"
KERNEL = "python3"
# Figures reach the page only through the notebook's inline backend; an MPLBACKEND such as Agg
# inherited from the shell would make every plt.show() silently draw nothing.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: The longest run-folder name; a longer spelling of the parameters is cut and ends in a hash.
MAX_RUN_NAME = 100


class BuildError(RuntimeError):
    """A chapter could not be executed or the book could not be rendered."""


class Refused(ValueError):
    """ganbook will not start this: a bad value, an unwritable folder, a build already running."""


@dataclass(frozen=True)
class ChapterResult:
    """How one chapter's execution went (``reused``: taken from an earlier build by ``--only``)."""

    chapter: str
    title: str
    profile: str
    ok: bool
    seconds: float
    error: str = ""
    reused: bool = False
    executed: str = ""


# --------------------------------------------------------------------------------------------
# Reading chapters
# --------------------------------------------------------------------------------------------


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) that holds ``_toc.yml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "_config.yml").is_file():
            return folder
    raise BuildError(f"no _toc.yml and _config.yml found at or above {here}; run from the book's repository")


def _toc_files(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        if "file" in node:
            yield str(node["file"])
        if "root" in node:
            yield str(node["root"])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                yield from _toc_files(child)
    elif isinstance(node, list):
        for child in node:
            yield from _toc_files(child)


def toc_chapters(root: Path) -> list[Path]:
    """The chapter notebooks (``notebooks/*.md``) listed in ``root/_toc.yml``, in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    chapters = []
    for entry in _toc_files(toc):
        if entry.startswith("notebooks/"):
            path = root / (entry if entry.endswith(".md") else entry + ".md")
            if not path.is_file():
                raise BuildError(f"_toc.yml lists {entry!r} but {path} does not exist")
            chapters.append(path)
    return chapters


def read_chapter(path: Path):
    """Read a jupytext chapter (``.md`` or ``.ipynb``) as an nbformat notebook."""
    import jupytext

    path = Path(path)
    if not path.is_file():
        raise BuildError(f"chapter {path} does not exist")
    nb = jupytext.read(path)
    tagged = [i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise BuildError(f"{path} has no code cell tagged {PARAMETERS_TAG!r}")
    return nb


def chapter_title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if m:
                return m.group(1).strip()
    return "(untitled)"


def _cell_index(nb, tag: str) -> int | None:
    for i, c in enumerate(nb.cells):
        if tag in c.get("metadata", {}).get("tags", []):
            return i
    return None


def _assignments(source: str) -> Iterator[tuple[str, ast.expr]]:
    """Each ``name = value`` (or ``name: type = value``) at the top level of ``source``."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            yield node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            yield node.target.id, node.value


def chapter_parameters(nb) -> dict[str, tuple[Any, str]]:
    """The names in the ``parameters`` cell, each with its default value and its comment."""
    source = nb.cells[_cell_index(nb, PARAMETERS_TAG)].source
    lines = source.splitlines()
    params: dict[str, tuple[Any, str]] = {}
    for name, value in _assignments(source):
        try:
            default = ast.literal_eval(value)
        except ValueError:
            default = ast.get_source_segment(source, value)
        line = lines[value.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        params[name] = (default, comment)
    return params


def _python_literal(value: Any) -> str:
    """``value`` as Python source; strings in double quotes, as the chapters write them."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        try:
            if ast.literal_eval(text) == value:
                return text
        except (ValueError, SyntaxError):
            pass
    return repr(value)


def show_values_in_parameters_cell(nb, parameters: Mapping[str, Any]) -> None:
    """Write ``parameters`` into the chapter's own ``parameters`` cell in place of its defaults.

    A built page hides papermill's injected cell, so without this its visible parameters cell
    would show the defaults (``profile = "cpu"``) rather than the values the page was executed
    with. Each value is replaced where it stands; a comment after it keeps its column where the
    new value leaves room. Names the cell does not assign are left to the injected cell.
    """
    idx = _cell_index(nb, PARAMETERS_TAG)
    if idx is None:
        return
    cell = nb.cells[idx]
    lines = cell.source.encode("utf-8").split(b"\n")  # ast offsets count UTF-8 bytes
    edits = [(value, _python_literal(parameters[name])) for name, value in _assignments(cell.source) if name in parameters]
    for value, text in sorted(edits, key=lambda e: (e[0].lineno, e[0].col_offset), reverse=True):
        first, last = value.lineno - 1, value.end_lineno - 1
        head = lines[first][: value.col_offset]
        tail = lines[last][value.end_col_offset :].decode("utf-8")
        new = text.encode("utf-8")
        spaces = re.match(r"^( +)#", tail)
        if spaces and first == last:
            width = len(spaces.group(1)) - (len(new) - (value.end_col_offset - value.col_offset))
            pad = width if width >= 1 else min(len(spaces.group(1)), 2)
            tail = " " * pad + tail[len(spaces.group(1)) :]
        lines[first : last + 1] = [head + new + tail.encode("utf-8")]
    cell.source = b"\n".join(lines).decode("utf-8")


def parse_value(text: str) -> Any:
    """A command-line value as Python: numbers, True/False/None, lists and quoted strings are
    evaluated literally; anything else is taken as a plain string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# --------------------------------------------------------------------------------------------
# Files: temporaries named after their process, published with the umask's permissions
# --------------------------------------------------------------------------------------------

_TEMP_MARK = "ganbook"
# .<name>.ganbook-<pid>-<random>[.<ext>], as _temp_file and _temp_dir make them
_TEMP_NAME = re.compile(r"^\..+\.ganbook-(?P<pid>\d+)-[A-Za-z0-9_]+(\.[A-Za-z]+)?$")
# what earlier versions left in _build without an owner's pid; only swept under the build lock
_LEGACY_BUILD_TEMP = re.compile(r"^\.(render\.[A-Za-z0-9_]{8}|html\.old|status\.json\.[A-Za-z0-9_]{8})$")


def _temp_file(folder: Path, stem: str, suffix: str = "") -> Path:
    """A new empty hidden file in ``folder`` whose name says which process owns it."""
    fd, name = tempfile.mkstemp(prefix=f".{stem}.{_TEMP_MARK}-{os.getpid()}-", suffix=suffix, dir=folder)
    os.close(fd)
    return Path(name)


def _temp_dir(folder: Path, stem: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{stem}.{_TEMP_MARK}-{os.getpid()}-", dir=folder))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(tmp: Path, dest: Path) -> None:
    """Move the finished temporary ``tmp`` to ``dest`` with the mode a new file gets (0666 less
    the umask; mkstemp made it 0600)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, dest)


def _write_atomic(path: Path, text: str) -> None:
    tmp = _temp_file(path.parent, path.name)
    try:
        tmp.write_text(text, encoding="utf-8")
        _publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def sweep_stale(folder: Path, *, legacy: bool = False) -> list[Path]:
    """Remove from ``folder`` the temporaries of ganbook processes that are no longer running
    (a run killed with SIGKILL cannot clean up after itself) and return them.

    Temporaries of running processes are left alone. ``legacy`` also removes the unnamed scratch
    folders of earlier versions in ``_build``, which is only safe while holding the build lock.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        match = _TEMP_NAME.match(entry.name)
        stale = (match is not None and not _process_alive(int(match["pid"]))) or (
            legacy and _LEGACY_BUILD_TEMP.match(entry.name) is not None
        )
        if not stale:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    if removed:
        log.info("removed %d temporary file(s) left in %s by a stopped ganbook", len(removed), folder)
    return removed


def _make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the folders created, outermost first."""
    missing = []
    here = Path(folder)
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    created: list[Path] = []
    try:
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                if path.is_dir():  # made by another process just now: not ours to remove
                    continue
                raise
            created.append(path)
    except BaseException:
        _remove_empty(created)
        raise
    return created


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders of :func:`_make_dirs` again, innermost first, as long as they are empty."""
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:
            break


def check_writable(folder: Path, what: str) -> None:
    """Refuse (:class:`Refused`) unless files can be written in ``folder``, creating it to find out
    and removing what was created. ``what`` names the folder in the message, e.g. ``--runs``."""
    created: list[Path] = []
    try:
        created = _make_dirs(folder)
        _temp_file(Path(folder), "probe").unlink()
    except OSError as err:
        raise Refused(f"cannot write to {what} {folder}: {err.strerror or err}") from None
    finally:
        _remove_empty(created)


# --------------------------------------------------------------------------------------------
# Executing chapters
# --------------------------------------------------------------------------------------------


@contextmanager
def _kernel_options() -> Iterator[tuple[dict[str, Any], Any]]:
    """Settings for every kernel ganbook starts (keyword arguments of an nbclient client), and the
    file the kernel's own log goes to.

    - With pyzmq, jupyter_client and a kernelspec that support it, the kernel's TCP channels are
      encrypted with CurveZMQ keys the manager provisions (ipykernel warns on every start about
      plain-text TCP otherwise).
    - The kernel's stderr, which carries its own log and not the cells' output (ipykernel captures
      that into the notebook), goes to an anonymous temporary file instead of the terminal: after
      Ctrl-C, jupyter_client interrupts the kernel and shuts it down at once, and the kernel logs
      the reply it could no longer send as a traceback. A failure that killed the kernel quotes
      the end of this log (:func:`_log_tail`).
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager
    from traitlets.config import Config

    config = Config()
    if "transport_encryption" in AsyncKernelManager.class_trait_names() and zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    with tempfile.TemporaryFile() as kernel_log:

        class LoggedKernelManager(AsyncKernelManager):
            async def start_kernel(self, **kw: Any) -> None:
                kw.setdefault("stderr", kernel_log)  # passed on to Popen
                await super().start_kernel(**kw)

        yield {"config": config, "kernel_manager_class": LoggedKernelManager}, kernel_log


def _log_tail(kernel_log, lines: int = 6) -> str:
    kernel_log.flush()
    kernel_log.seek(0)
    text = kernel_log.read().decode("utf-8", errors="replace").strip().splitlines()
    return "\n".join(f"    | {line}" for line in text[-lines:])


def _parameterize(nb, parameters: Mapping[str, Any]):
    import nbformat
    from papermill.parameterize import parameterize_notebook

    nb = nbformat.from_dict(nb)  # a copy: the caller's notebook is left as it was
    nb.metadata.setdefault("papermill", nbformat.NotebookNode())
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    return parameterize_notebook(nb, dict(parameters), kernel_name=KERNEL, language="python")


def check_parameters(nb, parameters: Mapping[str, Any], cwd: Path | None = None) -> None:
    """Refuse unknown names, then run the ``parameters`` and ``validate`` cells alone (with the new
    values injected) so the chapter's own validation can refuse a bad value before real work runs.

    Raises :class:`ValueError` with the chapter's message.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    known = chapter_parameters(nb)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; this chapter takes: {', '.join(known)}")
    v_idx = _cell_index(nb, VALIDATE_TAG)
    if v_idx is None:
        raise BuildError(f"the chapter has no cell tagged {VALIDATE_TAG!r} after its parameters cell")
    head = nbformat.v4.new_notebook(metadata=nb.metadata)
    head.cells = [c for c in nb.cells[: v_idx + 1] if c.cell_type == "code"]
    head = _parameterize(head, parameters)
    quiet = logging.getLogger("ganbook.precheck")
    quiet.setLevel(logging.WARNING)
    with _kernel_options() as (options, kernel_log):
        client = NotebookClient(
            head, kernel_name=KERNEL, timeout=300, log=quiet, resources={"metadata": {"path": str(cwd or Path.cwd())}},
            **options,
        )
        try:
            # cell by cell inside setup_kernel, not client.execute(): execute() installs nbclient's
            # own SIGINT/SIGTERM handlers and resets them to the defaults when it returns, which
            # would leave the process without the caller's handlers for the rest of the run
            with client.setup_kernel():
                for index, cell in enumerate(head.cells):
                    client.execute_cell(cell, index)
        except CellExecutionError as err:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # the traceback is coloured with ANSI codes
            lines = [ln.strip() for ln in text.splitlines() if "Error" in ln and ":" in ln]
            raise ValueError(lines[-1] if lines else text) from None
        except Exception as err:  # a dead or missing kernel
            tail = _log_tail(kernel_log)
            raise BuildError(
                f"could not check the parameters: {type(err).__name__}: {err}" + (f"\n  kernel log:\n{tail}" if tail else "")
            ) from err


def failed_copy(output: Path) -> Path:
    """Where :func:`execute_chapter` keeps the partly executed notebook of a failed ``output``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.failed.ipynb")


def _keep_failed(tmp_out: Path | None, failed: Path) -> Path | None:
    """Publish what papermill saved of a failed run as ``failed``; None if it saved nothing."""
    import nbformat

    if tmp_out is None or not tmp_out.is_file() or tmp_out.stat().st_size == 0:
        return None
    try:
        nbformat.read(tmp_out, as_version=4)
    except Exception:  # half-written by a dying kernel manager: nothing to inspect
        return None
    _publish(tmp_out, failed)
    return failed


def _raised_at(traceback: list[str] | None) -> str:
    """``line N: <code>`` where the failing cell raised, from IPython's traceback (``----> N code``
    in the frame ``Cell In[...]``); empty if the traceback does not show it (a SyntaxError)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(traceback or []))
    in_cell = False
    for line in text.splitlines():
        if line.startswith("Cell In["):
            in_cell = True
        elif in_cell and (m := re.match(r"^-+>\s*(\d+)\s?(.*)$", line)):
            return f"line {m.group(1)}: {m.group(2).strip()}"
    return ""


def _cell_failure(source: Path, err, kept: Path | None) -> str:
    """A failed cell in a few lines: where and what, the cell's first line of code, the line that
    raised, and where the partly executed notebook is kept."""
    lines_of_code = [ln.strip() for ln in (err.source or "").splitlines() if ln.strip()]
    first = next((ln for ln in lines_of_code if not ln.startswith("#")), lines_of_code[0] if lines_of_code else "")
    if len(first) > 120:
        first = first[:117] + "..."
    evalue = next((ln for ln in str(err.evalue or "").splitlines() if ln.strip()), "")
    lines = [
        f"{source.name} failed in cell {err.cell_index} (execution count {err.exec_count}): {err.ename}: {evalue}",
        f"    cell {err.cell_index} starts: {first}",
    ]
    raised = _raised_at(err.traceback)
    if raised:
        lines.append(f"    the error was raised at {raised}")
    if kept is not None:
        lines.append(f"    the partly executed notebook is kept at {kept}")
    return "\n".join(lines)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def execute_chapter(
    source: Path,
    output: Path,
    parameters: Mapping[str, Any],
    *,
    cwd: Path | None = None,
    progress: bool = False,
    hide_injected: bool = False,
) -> float:
    """Execute ``source`` with ``parameters`` into ``output`` (written to a temp file, then renamed).

    Returns the wall time in seconds. On failure nothing is left at ``output``; the partly
    executed notebook is kept at :func:`failed_copy` of ``output`` and a :class:`BuildError`
    names the chapter, the failing cell (index, first line) and the error. ``hide_injected``
    (for the book) hides papermill's injected cell and shows the values in the chapter's own
    parameters cell instead.
    """
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    source = Path(source)
    nb = read_chapter(source)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    failed = failed_copy(output)
    # The values are injected here, not by papermill: its own reader of the parameters cell misses
    # names followed by a comment and would warn that valid parameters are unknown.
    prepared = _parameterize(nb, parameters)
    tmp_in: Path | None = None
    tmp_out: Path | None = None
    kernel_tail = ""
    start = time.perf_counter()
    saved_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE_BACKEND  # the kernel inherits the environment
    try:
        with _kernel_options() as (options, kernel_log):
            tmp_in = _temp_file(output.parent, source.stem, ".ipynb")
            tmp_out = _temp_file(output.parent, source.stem, ".ipynb")
            nbformat.write(prepared, tmp_in)
            try:
                pm.execute_notebook(
                    str(tmp_in),
                    str(tmp_out),
                    parameters=None,
                    kernel_name=KERNEL,
                    language="python",
                    progress_bar=progress,
                    cwd=str(cwd or source.parent),
                    **options,
                )
            except PapermillExecutionError:
                raise
            except Exception:  # a dead or missing kernel: its log says why
                kernel_tail = _log_tail(kernel_log)
                raise
        seconds = time.perf_counter() - start
        # Record the run in the notebook so the HTML page and the status page can show it.
        done = nbformat.read(tmp_out, as_version=4)
        done.metadata.setdefault("papermill", {}).update(input_path=str(source), output_path=str(output))
        done.metadata["ganbook"] = {
            "parameters": dict(parameters),
            "seconds": round(seconds, 2),
            "executed": _now(),
            "source_sha256": _sha256(source),
        }
        if hide_injected:  # the page shows the values in the chapter's own cell
            for cell in done.cells:
                tags = cell.metadata.get("tags", [])
                if "injected-parameters" in tags and "remove-cell" not in tags:
                    cell.metadata["tags"] = [*tags, "remove-cell"]
            show_values_in_parameters_cell(done, parameters)
        nbformat.write(done, tmp_out)
        _publish(tmp_out, output)
        failed.unlink(missing_ok=True)  # an earlier failure's copy no longer describes this output
        return seconds
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":  # the kernel itself was interrupted: so are we
            raise KeyboardInterrupt from None
        raise BuildError(_cell_failure(source, err, _keep_failed(tmp_out, failed))) from None
    except Exception as err:  # a dead or missing kernel, an unwritable output, ...
        message = f"{source.name} could not be executed: {type(err).__name__}: {err}"
        if kernel_tail:
            message += f"\n  kernel log:\n{kernel_tail}"
        kept = _keep_failed(tmp_out, failed)
        if kept is not None:
            message += f"\n    the partly executed notebook is kept at {kept}"
        raise BuildError(message) from err
    finally:
        if saved_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = saved_backend
        for tmp in (tmp_in, tmp_out):
            if tmp is not None:
                tmp.unlink(missing_ok=True)


def prepare_chapter(source: Path, output: Path, parameters: Mapping[str, Any]) -> None:
    """Write ``source`` as an ``.ipynb`` with ``parameters`` injected and nothing executed
    (what ``papermill --prepare-only`` does), e.g. for ``pytest --nbval-lax``."""
    import nbformat

    nb = _parameterize(read_chapter(source), parameters)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(output.parent)
    tmp = _temp_file(output.parent, Path(source).stem, ".ipynb")
    try:
        nbformat.write(nb, tmp)
        _publish(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# The whole book
# --------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(terse=True),
        "cpus": str(os.cpu_count()),
    }


def _status_page(results: list[ChapterResult], profile: str, total: float) -> str:
    v = _versions()
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def outcome(r: ChapterResult) -> str:
        if not r.ok:
            return "FAIL"
        return f"pass (reused from the build of {r.executed})" if r.reused else "pass"

    rows = "\n".join(
        f"| {{doc}}`{r.title} <{r.chapter}>` | `{r.profile}` | {r.seconds:.1f} | {outcome(r)} |" for r in results
    )
    return f"""# Build status

This page is written by `ganbook build` every time the book is built: each chapter below was
executed from its source by papermill with the profile shown before the book was rendered, in this
build or, where it says *reused*, in an earlier one (`ganbook build --only` executes only the
chapters it names). If any chapter fails, the book is not rendered, so a rendered book only ever
shows passing chapters.

| Chapter | Profile | Wall time (s) | Result |
|:--|:--|--:|:--|
{rows}

Total execution time in this build: {total:.1f} s with profile `{profile}`, built {when} on
{v['platform']} ({v['cpus']} CPUs) with Python {v['python']} and torch {v['torch']}.
"""


@contextmanager
def _build_lock(build: Path) -> Iterator[None]:
    """Hold ``build/build.lock`` for one build; refuse (:class:`Refused`) if another build holds it.

    The holder's pid, command line and start time are in ``build/build.lock.owner`` so the refusal
    can name it. The lock is an flock, so a killed build releases it with its last breath.
    """
    from filelock import FileLock, Timeout

    try:
        build.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise Refused(f"cannot write to the build folder {build}: {err.strerror or err}") from None
    lock_path = build / "build.lock"
    owner_path = build / "build.lock.owner"
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            owner = json.loads(owner_path.read_text())
            who = f"pid {owner['pid']}, `{owner['command']}`, started {owner['started']}"
        except (OSError, ValueError, KeyError):
            who = f"its owner is not recorded in {owner_path}"
        raise Refused(
            f"another ganbook build holds the lock {lock_path} ({who}); two builds of one folder would "
            f"overwrite each other's files: wait for it to finish, or stop it, and build again"
        ) from None
    try:
        command = " ".join(["ganbook", *sys.argv[1:]])
        _write_atomic(owner_path, json.dumps({"pid": os.getpid(), "command": command, "started": _now()}))
        yield
    finally:
        owner_path.unlink(missing_ok=True)
        lock.release()


def _select(chapters: list[Path], only: Iterable[str] | None) -> list[Path]:
    if not only:
        return chapters
    wanted = list(only)
    unmatched = [w for w in wanted if not any(c.stem == w or c.stem.split("_")[0] == w for c in chapters)]
    if unmatched:
        raise Refused(
            f"--only {' '.join(unmatched)} matches no chapter in _toc.yml; "
            f"the chapters are: {', '.join(c.stem for c in chapters)}"
        )
    return [c for c in chapters if c.stem in wanted or c.stem.split("_")[0] in wanted]


def _reused(chapter: Path, executed: Path, profile: str, selected: list[Path]) -> ChapterResult:
    """The result of a chapter that ``--only`` does not execute, from its notebook of an earlier
    build; refused if there is none or it was executed with another profile."""
    import nbformat

    names = ", ".join(c.stem for c in selected)
    lead = f"--only re-executes {names} and reuses the other chapters from the last build, but"
    if not executed.is_file():
        raise Refused(
            f"{lead} {chapter.stem} has not been executed yet (no {executed}); run a full `ganbook build` first"
        )
    meta = nbformat.read(executed, as_version=4).metadata.get("ganbook", {})
    used = meta.get("parameters", {}).get("profile")
    if used != profile:
        raise Refused(
            f"{lead} {chapter.stem} was last executed with profile {used!r}, not {profile!r}; "
            f"run a full `ganbook build --profile {profile}` or name it in --only too"
        )
    if meta.get("source_sha256") != _sha256(chapter):
        log.warning(
            "%s is reused as executed %s, but its source has changed since; name it in --only to execute it again",
            chapter.name, meta.get("executed", "earlier"),
        )
    title = chapter_title(read_chapter(chapter))
    return ChapterResult(
        f"/notebooks/{chapter.stem}", title, profile, True, float(meta.get("seconds", 0.0)),
        reused=True, executed=str(meta.get("executed", "")),
    )


def build_book(
    root: Path,
    *,
    profile: str = "cpu",
    out: Path | None = None,
    only: Iterable[str] | None = None,
    render: bool = True,
    progress: bool = False,
) -> list[ChapterResult]:
    """Execute every chapter of ``root/_toc.yml`` with ``profile`` and render the book.

    Executed notebooks are kept in ``out/_build/executed`` (``out`` defaults to ``root``); the
    staged source tree is ``out/_build/src`` and the site ``out/_build/html``, described by
    ``out/_build/status.json`` (written only when a site was rendered). With ``only``, the named
    chapters are executed and the others reused from ``_build/executed`` (refused if one was never
    executed there, or with another profile). Raises :class:`BuildError` naming every failed
    chapter, its cell and where its partly executed notebook is kept.
    """
    import nbformat

    from gan_lib.pipeline.params import PROFILES

    if profile not in PROFILES:
        raise Refused(f"profile={profile!r} is not allowed: expected one of {', '.join(PROFILES)}")
    root = Path(root).resolve()
    out = Path(out or root).resolve()
    chapters = toc_chapters(root)
    selected = _select(chapters, only)
    build = out / "_build"
    with _build_lock(build):
        sweep_stale(build, legacy=True)
        executed = build / "executed"
        executed.mkdir(exist_ok=True)
        sweep_stale(executed)
        reused = {c: _reused(c, executed / f"{c.stem}.ipynb", profile, selected) for c in chapters if c not in selected}

        results: list[ChapterResult] = []
        failures: list[str] = []
        t0 = time.perf_counter()
        for chapter in chapters:
            if chapter in reused:
                results.append(reused[chapter])
                print(f"[ganbook] {chapter.name}: reused from the build of {reused[chapter].executed}", flush=True)
                continue
            title = chapter_title(read_chapter(chapter))
            target = executed / f"{chapter.stem}.ipynb"
            log.info("executing %s with profile %s", chapter.name, profile)
            start = time.perf_counter()
            try:
                seconds = execute_chapter(
                    chapter, target, {"profile": profile}, cwd=chapter.parent, progress=progress, hide_injected=True
                )
                when = nbformat.read(target, as_version=4).metadata["ganbook"]["executed"]
                results.append(ChapterResult(f"/notebooks/{chapter.stem}", title, profile, True, seconds, executed=when))
            except BuildError as err:
                failures.append(str(err))
                results.append(ChapterResult(
                    f"/notebooks/{chapter.stem}", title, profile, False, time.perf_counter() - start, str(err)
                ))
            print(f"[ganbook] {chapter.name}: {'ok' if results[-1].ok else 'FAILED'} in {results[-1].seconds:.1f} s", flush=True)
        total = time.perf_counter() - t0
        if failures:
            raise BuildError("chapter(s) failed, the book was not rendered:\n  " + "\n  ".join(failures))

        src = build / "src"
        if src.exists():
            shutil.rmtree(src)
        src.mkdir()
        shutil.copy2(root / "_config.yml", src / "_config.yml")
        shutil.copy2(root / "_toc.yml", src / "_toc.yml")
        shutil.copytree(root / "book", src / "book")
        (src / "notebooks").mkdir()
        for chapter in chapters:
            shutil.copy2(executed / f"{chapter.stem}.ipynb", src / "notebooks" / f"{chapter.stem}.ipynb")
        _write_atomic(src / "book" / "status.md", _status_page(results, profile, total))
        if render:
            render_book(src, out)
            _write_atomic(build / "status.json", json.dumps([asdict(r) for r in results], indent=2))
    return results


def render_book(src: Path, out: Path) -> Path:
    """Render the staged tree ``src`` with ``jupyter-book build -W -n --keep-going`` and return the
    site, ``out/_build/html``.

    The site is rendered into a scratch folder first and moved into place only when the build
    succeeded, so a failed render never leaves a mix of new and old pages.
    """
    build = Path(out) / "_build"
    scratch = _temp_dir(build, "render")
    old = build / f".html.{_TEMP_MARK}-{os.getpid()}-old"
    try:
        cmd = [
            sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(src),
            "--path-output", str(scratch), "--all", "-W", "-n", "--keep-going",
        ]
        proc = subprocess.run(cmd, text=True, capture_output=True)
        sys.stdout.write(proc.stdout[-20000:])
        sys.stderr.write(proc.stderr[-20000:])
        built = scratch / "_build" / "html"
        if proc.returncode != 0:
            raise BuildError(f"jupyter-book build failed (exit {proc.returncode}); see the warnings above")
        if not (built / "index.html").is_file():
            raise BuildError(f"jupyter-book reported success but {built / 'index.html'} is missing")
        site = build / "html"
        if site.exists():
            site.rename(old)
        built.rename(site)
        return site
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Re-running one chapter
# --------------------------------------------------------------------------------------------


def _canonical(parameters: Mapping[str, Any]) -> str:
    return json.dumps(dict(parameters), sort_keys=True, default=repr)


def _with_digest(name: str, parameters: Mapping[str, Any]) -> str:
    """``name`` cut to fit :data:`MAX_RUN_NAME` with a hash of the full parameters at its end."""
    digest = hashlib.sha256(_canonical(parameters).encode()).hexdigest()[:12]
    head = name.encode()[: MAX_RUN_NAME - len(digest) - 2].decode(errors="ignore").rstrip("_")
    return f"{head}__{digest}"


def run_folder_name(parameters: Mapping[str, Any]) -> str:
    """A folder name that spells out the parameters, e.g. ``lr=0.0002__steps=500``; one longer
    than :data:`MAX_RUN_NAME` is cut and ends in a hash of the parameters (their full values are
    in the folder's ``parameters.json``)."""
    if not parameters:
        return "defaults"
    parts = []
    for key in sorted(parameters):
        value = parameters[key]
        text = re.sub(r"[^A-Za-z0-9.+-]+", "_", value if isinstance(value, str) else str(value))
        parts.append(f"{key}={text.strip('_')}")
    name = "__".join(parts)
    return name if len(name.encode()) <= MAX_RUN_NAME else _with_digest(name, parameters)


def _run_folder(chapter_runs: Path, parameters: Mapping[str, Any]) -> Path:
    """The run folder for ``parameters``: :func:`run_folder_name`, or that name with a hash when a
    folder of that name holds a run with other parameters that are spelled the same."""
    name = run_folder_name(parameters)
    recorded = chapter_runs / name / "parameters.json"
    try:
        earlier = json.loads(recorded.read_text())
    except (OSError, ValueError):
        return chapter_runs / name
    if earlier == json.loads(_canonical(parameters)):
        return chapter_runs / name
    return chapter_runs / _with_digest(name, parameters)


def _export_html(ipynb: Path, html: Path) -> None:
    import warnings

    import nbformat
    from nbconvert import HTMLExporter

    with warnings.catch_warnings():
        # glued values carry a myst-nb mimetype that plain HTML export does not show; the value's
        # text/plain twin is shown instead, so the warning about it is noise here
        warnings.filterwarnings("ignore", message="Your element with mimetype")
        body, _ = HTMLExporter().from_notebook_node(nbformat.read(ipynb, as_version=4))
    _write_atomic(html, body)


def run_chapter(chapter: Path, parameters: Mapping[str, Any], *, runs: Path = Path("runs"), progress: bool = True) -> Path:
    """Re-execute ``chapter`` with ``parameters``; return the run folder holding ``<stem>.ipynb``,
    ``<stem>.html`` and ``parameters.json``. Unknown names and bad values are refused (ValueError)
    before it runs.

    Whatever way it ends, no empty folder and no temporary file is left: a failure leaves the run
    folder with ``<stem>.failed.ipynb`` and ``parameters.json`` only.
    """
    chapter = Path(chapter).resolve()
    nb = read_chapter(chapter)
    check_parameters(nb, parameters, cwd=chapter.parent)
    folder = _run_folder(Path(runs) / chapter.stem, parameters)
    created = _make_dirs(folder)
    try:
        sweep_stale(folder)
        ipynb = folder / f"{chapter.stem}.ipynb"
        record = json.dumps(json.loads(_canonical(parameters)), indent=2) + "\n"
        try:
            execute_chapter(chapter, ipynb, parameters, cwd=chapter.parent, progress=progress)
        except BuildError:
            if failed_copy(ipynb).exists():
                _write_atomic(folder / "parameters.json", record)
            raise
        _export_html(ipynb, folder / f"{chapter.stem}.html")
        _write_atomic(folder / "parameters.json", record)
        return folder
    except BaseException:
        _remove_empty(created)
        raise
