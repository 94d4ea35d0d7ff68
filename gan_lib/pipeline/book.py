"""The book pipeline: execute chapters with papermill, then render with Jupyter Book.

Chapters are jupytext MyST-markdown notebooks ``notebooks/NN_slug.md``. Each has a first code cell
tagged ``parameters`` (every knob a reader may change, ``profile`` among them) and a second cell
tagged ``validate`` that checks them. Two entry points, both exposed by the ``ganbook`` script:

- :func:`build_book` executes the chapters listed in ``_toc.yml`` with a profile into
  ``_build/executed/``, stages a copy of the book (``_build/src``) with those notebooks and a status
  page, and renders ``_build/html`` with ``jupyter-book build -W -n --keep-going`` and execution
  off. One build at a time per build folder: a second one is refused while the first holds
  ``_build/build.lock``.

  *Only what changed is executed again.* Beside each executed notebook, ``<chapter>.cache.json``
  records what it was executed from: the chapter's source, its parameters (the profile), every
  ``.py`` file of :mod:`gan_lib` (the chapters import it; jupyter-cache would not notice a change
  there), the version of every package installed in the environment and Python's, with the wall
  time of that execution and when it ran. A chapter whose record matches is reused without starting
  a kernel; the site is not rendered again either when nothing it is made from changed.
  ``force`` (``ganbook build --force``) executes and renders everything. With ``only``, the named
  chapters are executed whatever their records say and every other chapter's notebook is reused as
  it is, so the rendered site keeps all its pages.

  *Chapters execute in parallel*: ``jobs`` worker processes (default: one per core), each executing
  one chapter at a time in a kernel limited to one thread (``OMP_NUM_THREADS=1`` and its MKL and
  OpenBLAS twins, which torch and numpy read). A failing chapter does not stop the others: they
  run to the end, so every failure is reported. ``jobs=1`` executes the chapters one after another
  in this process, each kernel with all the threads it wants. Kernels are shut down at once when
  their notebook is done (the graceful shutdown waited seconds for nothing).
- :func:`run_chapter` re-executes one chapter with new parameters into ``runs/<chapter>/<params>/``
  (the executed notebook, its HTML page and ``parameters.json``), refusing unknown names and bad
  values before the chapter's real work starts.

Nothing half-written is left behind: every file is written to a hidden temporary named after the
process that owns it (``.<name>.ganbook-<pid>-<random>``) and renamed into place when complete, with
the permissions the process umask gives a new file. Temporaries of an interrupted process are
removed on the way out; those of a killed one are swept by the next ganbook that finds them, once
their owner is no longer running. An interrupted build (SIGINT, SIGTERM) stops its worker processes,
waits for them to clean up, and removes what a killed one left. A chapter that fails keeps its
partly executed notebook as ``<chapter>.failed.ipynb`` for inspection.
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
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import yaml

from ..files import TEMP_MARK, atomic_open, publish, stale_temporary, temp_dir, temp_path, write_text
from .params import GIVEN_NAME

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
    "failed_checks",
    "check_writable",
    "sweep_stale",
    "failed_copy",
    "execute_chapter",
    "prepare_chapter",
    "build_book",
    "default_jobs",
    "library_files",
    "benchmark_files",
    "dependency_versions",
    "cache_parts",
    "cache_record_path",
    "cache_state",
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
    """A chapter could not be executed or the book could not be rendered.

    Raised by :func:`build_book` for failed chapters, it carries every chapter's
    :class:`ChapterResult` in ``results`` (the passing ones too).
    """

    def __init__(self, message: str, results: list["ChapterResult"] | None = None) -> None:
        super().__init__(message)
        self.results = list(results or [])


class Refused(ValueError):
    """ganbook will not start this: a bad value, an unwritable folder, a build already running."""


@dataclass(frozen=True)
class ChapterResult:
    """How one chapter's execution went.

    ``reused``: its notebook was not executed in this build but taken from an earlier one, because
    nothing it depends on changed since, or because ``--only`` names other chapters. ``reason``
    says why it was executed or reused. ``seconds`` is the wall time of the execution the notebook
    comes from (for a reused one, the original execution's), ``executed`` when that execution
    ended; ``startup_s`` is its fixed cost before the first cell (kernel start, papermill) and
    ``shutdown_s`` after the last one (kernel shutdown, the final save); ``processes`` how many
    chapters were executing at once in that build (1: alone).
    """

    chapter: str
    title: str
    profile: str
    ok: bool
    seconds: float
    error: str = ""
    reused: bool = False
    executed: str = ""
    reason: str = ""
    startup_s: float = 0.0
    shutdown_s: float = 0.0
    processes: int = 1


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
# Files: temporaries named after their process (gan_lib.files), swept once their owner is gone
# --------------------------------------------------------------------------------------------

# what earlier versions left in _build without an owner's pid; only swept under the build lock
_LEGACY_BUILD_TEMP = re.compile(r"^\.(render\.[A-Za-z0-9_]{8}|html\.old|status\.json\.[A-Za-z0-9_]{8})$")


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
        stale = stale_temporary(entry.name) or (legacy and _LEGACY_BUILD_TEMP.match(entry.name) is not None)
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
        temp_path(Path(folder), "probe").unlink()
    except OSError as err:
        raise Refused(f"cannot write to {what} {folder}: {err.strerror or err}") from None
    finally:
        _remove_empty(created)


# --------------------------------------------------------------------------------------------
# Executing chapters
# --------------------------------------------------------------------------------------------


@contextmanager
def _kernel_options(env: Mapping[str, str] | None = None) -> Iterator[tuple[dict[str, Any], Any]]:
    """Settings for every kernel ganbook starts (keyword arguments of an nbclient client), and the
    file the kernel's own log goes to.

    - The kernel's environment is this process's with ``env`` on top (e.g. ``MPLBACKEND``, thread
      limits); this process's own environment is left as it is.
    - The kernel is shut down at once (``shutdown_kernel="immediate"``) when the client is done
      with it: every cell's reply is in by then, and a graceful shutdown only waited 1.4-2.6 s for
      the kernel to tear itself down. On Ctrl-C the exception is already raised in this process,
      so nothing waits for the kernel's answer either.

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
    extra = dict(env or {})
    with tempfile.TemporaryFile() as kernel_log:

        class LoggedKernelManager(AsyncKernelManager):
            async def start_kernel(self, **kw: Any) -> None:
                kw.setdefault("stderr", kernel_log)  # passed on to Popen
                if extra:
                    kw["env"] = {**kw.get("env", os.environ), **extra}
                await super().start_kernel(**kw)

        options = {"config": config, "kernel_manager_class": LoggedKernelManager, "shutdown_kernel": "immediate"}
        yield options, kernel_log


def _log_tail(kernel_log, lines: int = 6) -> str:
    kernel_log.flush()
    kernel_log.seek(0)
    text = kernel_log.read().decode("utf-8", errors="replace").strip().splitlines()
    return "\n".join(f"    | {line}" for line in text[-lines:])


def _given(nb, parameters: Mapping[str, Any]) -> list[str]:
    """The names in ``parameters`` set to other values than the chapter's defaults, ``profile`` left
    out (for :func:`gan_lib.pipeline.params.given`): a run on a profile's own settings asserts its
    checks; one on a reader's values may only report them."""
    defaults = chapter_parameters(nb)
    return sorted(name for name, value in parameters.items()
                  if name != "profile" and (name not in defaults or defaults[name][0] != value))


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
    publish(tmp_out, failed)
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


def _kernel_overhead(nb, called: float, returned: float) -> tuple[float, float]:
    """The fixed cost of one execution, from papermill's per-cell timestamps: seconds from the call
    to the first cell's start (papermill's setup, kernel start, its ready handshake) and from the
    last cell's end to the return (kernel shutdown, papermill's final save)."""
    starts, ends = [], []
    for cell in nb.cells:
        stamps = cell.get("metadata", {}).get("papermill", {})
        if stamps.get("start_time") and stamps.get("end_time"):
            starts.append(_dt.datetime.fromisoformat(stamps["start_time"]).timestamp())
            ends.append(_dt.datetime.fromisoformat(stamps["end_time"]).timestamp())
    if not starts:
        return 0.0, 0.0
    return max(0.0, min(starts) - called), max(0.0, returned - max(ends))


#: Starts of a chapter's kernel before a failure to start is reported (:func:`_kernel_start_failure`).
KERNEL_START_ATTEMPTS = 3


def _kernel_start_failure(err: BaseException) -> bool:
    """Whether ``err`` is jupyter_client's report that a kernel died, or did not answer, before
    its first reply: raised while the kernel starts, before any cell runs."""
    text = str(err)
    return text.startswith("Kernel died before replying to kernel_info") or (
        text.startswith("Kernel didn't respond in ") and "heartbeat" not in text)


def execute_chapter(
    source: Path,
    output: Path,
    parameters: Mapping[str, Any],
    *,
    cwd: Path | None = None,
    progress: bool = False,
    hide_injected: bool = False,
    env: Mapping[str, str] | None = None,
) -> float:
    """Execute ``source`` with ``parameters`` into ``output`` (written to a temp file, then renamed).

    Returns the wall time in seconds. On failure nothing is left at ``output``; the partly
    executed notebook is kept at :func:`failed_copy` of ``output`` and a :class:`BuildError`
    names the chapter, the failing cell (index, first line) and the error. ``hide_injected``
    (for the book) hides papermill's injected cell and shows the values in the chapter's own
    parameters cell instead. ``env`` is added to the kernel's environment (the inline figure
    backend always is, and :data:`~gan_lib.pipeline.params.GIVEN_NAME`: the parameters set to
    other values than the chapter's defaults, the profile left out, as a JSON list). The
    notebook's ``ganbook`` metadata records the parameters, the wall time, when it ended, the
    source's sha256 and the fixed cost before the first cell (``startup_s``) and after the last
    (``shutdown_s``).
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
    try:
        kernel_env = {"MPLBACKEND": INLINE_BACKEND, GIVEN_NAME: json.dumps(_given(nb, parameters)), **(env or {})}
        with _kernel_options(kernel_env) as (options, kernel_log):
            tmp_in = temp_path(output.parent, source.stem, ".ipynb")
            tmp_out = temp_path(output.parent, source.stem, ".ipynb")
            nbformat.write(prepared, tmp_in)
            for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
                called = time.time()
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
                except RuntimeError as err:
                    if _kernel_start_failure(err) and attempt < KERNEL_START_ATTEMPTS:
                        # no cell ran: the kernel died or stayed silent while starting (seen on a
                        # loaded 2-core machine starting two at once); another start is the same run
                        log.warning("%s: the kernel failed to start (%s); starting another (%d of %d)",
                                    source.name, err, attempt + 1, KERNEL_START_ATTEMPTS)
                        continue
                    kernel_tail = _log_tail(kernel_log)
                    raise
                except Exception:  # a dead or missing kernel: its log says why
                    kernel_tail = _log_tail(kernel_log)
                    raise
                break
            returned = time.time()
        seconds = time.perf_counter() - start
        # Record the run in the notebook so the HTML page and the status page can show it.
        done = nbformat.read(tmp_out, as_version=4)
        startup, shutdown = _kernel_overhead(done, called, returned)
        done.metadata.setdefault("papermill", {}).update(input_path=str(source), output_path=str(output))
        done.metadata["ganbook"] = {
            "parameters": dict(parameters),
            "seconds": round(seconds, 2),
            "executed": _now(),
            "source_sha256": _sha256(source),
            "startup_s": round(startup, 2),
            "shutdown_s": round(shutdown, 2),
        }
        if hide_injected:  # the page shows the values in the chapter's own cell
            for cell in done.cells:
                tags = cell.metadata.get("tags", [])
                if "injected-parameters" in tags and "remove-cell" not in tags:
                    cell.metadata["tags"] = [*tags, "remove-cell"]
            show_values_in_parameters_cell(done, parameters)
        nbformat.write(done, tmp_out)
        publish(tmp_out, output)
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
    tmp = temp_path(output.parent, Path(source).stem, ".ipynb")
    try:
        nbformat.write(nb, tmp)
        publish(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# What an executed chapter depends on: the build cache
# --------------------------------------------------------------------------------------------

#: Raised when the meaning of a record changes, so that records of an older ganbook are not trusted.
CACHE_FORMAT = 1
#: The thread limits of a kernel that shares the machine with other chapters' kernels: OpenMP's
#: (torch's intra-op pool and numpy's OpenBLAS read it), MKL's and OpenBLAS's own.
THREAD_LIMITS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: The library every chapter imports, the package folder of ``gan_lib`` (this file is
#: ``gan_lib/pipeline/book.py``).
LIBRARY = Path(__file__).resolve().parents[1]
#: The file in a rendered site that says what it was rendered from.
RENDER_STAMP = ".ganbook-render.json"


def default_jobs() -> int:
    """The number of cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity mask on this OS
        return max(1, os.cpu_count() or 1)


def library_files(root: Path = LIBRARY) -> dict[str, str]:
    """The sha256 of every ``.py`` file under ``root`` (default: the ``gan_lib`` package), by its
    path relative to ``root``. Every file counts, the pipeline's too: a chapter imports the
    package, so no part of it can be declared unable to change a chapter's output."""
    root = Path(root)
    if not root.is_dir():
        raise BuildError(f"the library folder {root} does not exist; expected the folder of the gan_lib package")
    return {path.relative_to(root).as_posix(): _sha256(path) for path in sorted(root.rglob("*.py")) if path.is_file()}


def benchmark_files(folder: Path) -> dict[str, str]:
    """The sha256 of the benchmark scripts (``*.py``) and committed records (``records/*.json``) in
    the project's ``benchmarks`` folder, keyed ``../benchmarks/<path>`` beside the library's files:
    the benchmarks page runs those scripts and reads those records. ``{}`` if there is no folder;
    ``results/`` (the scripts' own output) does not count."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    paths = [*folder.glob("*.py"), *folder.glob("records/*.json")]
    return {f"../benchmarks/{path.relative_to(folder).as_posix()}": _sha256(path) for path in sorted(paths)
            if path.is_file()}


def dependency_versions() -> dict[str, str]:
    """The version of every distribution installed in this Python environment (what ``pip freeze``
    lists), by its normalised name, and Python's own version under ``python``.

    The kernels run this environment's Python (the ``python3`` kernelspec of ipykernel), so these
    are the versions the chapters import.
    """
    import importlib.metadata

    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():  # in sys.path order: the first one found is imported
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version)
    versions["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    return dict(sorted(versions.items()))


def cache_parts(
    chapter: Path, parameters: Mapping[str, Any], library: Mapping[str, str], dependencies: Mapping[str, str]
) -> dict[str, Any]:
    """Everything an executed chapter depends on, as its record keeps it: the sha256 of its source,
    its parameters (the profile among them), the files of the library (:func:`library_files`),
    the installed versions (:func:`dependency_versions`), the kernel and the record format."""
    return {
        "format": CACHE_FORMAT,
        "kernel": KERNEL,
        "source_sha256": _sha256(chapter),
        "parameters": json.loads(_canonical(parameters)),
        "library": dict(sorted(library.items())),
        "dependencies": dict(sorted(dependencies.items())),
    }


def _cache_key(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cache_record_path(notebook: Path) -> Path:
    """Where the record of what ``<chapter>.ipynb`` was executed from is kept: ``<chapter>.cache.json``
    beside it."""
    notebook = Path(notebook)
    return notebook.with_name(f"{notebook.stem}.cache.json")


def _changes(old: Mapping[str, Any], new: Mapping[str, Any], *, values: bool, most: int = 4) -> str:
    """What differs between two name -> value tables, e.g. ``torch 2.13.0 -> 2.14.0, pandas added``."""
    names = sorted(set(old) | set(new))
    parts = []
    for name in names:
        if name not in old:
            parts.append(f"{name} added" if values else f"{name} (new)")
        elif name not in new:
            parts.append(f"{name} removed" if values else f"{name} (removed)")
        elif old[name] != new[name]:
            parts.append(f"{name} {old[name]} -> {new[name]}" if values else name)
    if len(parts) > most:
        parts[most:] = [f"and {len(parts) - most} more"]
    return ", ".join(parts)


def _what_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    if old.get("format") != new["format"]:
        return "its record was written by another version of ganbook"
    reasons = []
    if old.get("source_sha256") != new["source_sha256"]:
        reasons.append("its source changed")
    if old.get("parameters") != new["parameters"]:
        before, after = old.get("parameters") or {}, new["parameters"]
        changed = []
        for name in sorted(set(before) | set(after)):
            if name not in after:
                changed.append(f"{name} no longer set")
            elif name not in before:
                changed.append(f"{name} set to {after[name]!r}")
            elif before[name] != after[name]:
                changed.append(f"{name} {before[name]!r} -> {after[name]!r}")
        reasons.append("parameters changed: " + ", ".join(changed))
    if old.get("library") != new["library"]:
        reasons.append("gan_lib changed: " + _changes(old.get("library") or {}, new["library"], values=False))
    if old.get("dependencies") != new["dependencies"]:
        reasons.append("package versions changed: " + _changes(old.get("dependencies") or {}, new["dependencies"], values=True))
    if old.get("kernel") != new["kernel"]:
        reasons.append(f"kernel {old.get('kernel')!r} -> {new['kernel']!r}")
    return "; ".join(reasons) or "its record does not match what it depends on now"


def cache_state(notebook: Path, parts: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """Whether the executed ``notebook`` may be reused for ``parts`` (:func:`cache_parts`): its
    record when it may, else None, and in words why it may not (``"its source changed"``,
    ``"package versions changed: torch 2.13.0 -> 2.14.0"``, ...).

    The record names the sha256 of the notebook it describes, so a notebook replaced after its
    record was written (a build killed between the two) is not mistaken for the recorded one.
    """
    notebook = Path(notebook)
    record_path = cache_record_path(notebook)
    if not notebook.is_file():
        return None, "no earlier execution is kept"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"there is no record of what it was executed from ({record_path.name})"
    except (OSError, ValueError) as err:
        return None, f"its record {record_path.name} cannot be read ({err})"
    if not isinstance(record, dict) or record.get("notebook_sha256") != _sha256(notebook):
        return None, f"its record {record_path.name} describes another execution than the notebook kept"
    if record.get("key") != _cache_key(parts):
        return None, _what_changed(record.get("parts") or {}, parts)
    return record, ""


def _write_record(notebook: Path, parts: Mapping[str, Any], meta: Mapping[str, Any], processes: int) -> None:
    record = {
        "chapter": notebook.stem,
        "key": _cache_key(parts),
        "notebook_sha256": _sha256(notebook),
        "executed": meta["executed"],
        "seconds": meta["seconds"],
        "startup_s": meta.get("startup_s", 0.0),
        "shutdown_s": meta.get("shutdown_s", 0.0),
        "processes": processes,
        "parts": parts,
    }
    write_text(cache_record_path(notebook), json.dumps(record, indent=1, sort_keys=True) + "\n")


def _expected_seconds(notebook: Path) -> float:
    """How long ``notebook`` took when it was last executed (its record, else its metadata), to
    start the longest chapters first; infinity when unknown, so a new chapter starts first."""
    for read in (
        lambda: json.loads(cache_record_path(notebook).read_text(encoding="utf-8"))["seconds"],
        lambda: json.loads(notebook.read_text(encoding="utf-8"))["metadata"]["ganbook"]["seconds"],
    ):
        try:
            return float(read())
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return float("inf")


# --------------------------------------------------------------------------------------------
# Executing chapters in parallel: worker processes
# --------------------------------------------------------------------------------------------


def _execute_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """Execute one chapter of a build and write the record of what it was executed from; return
    what :func:`build_book` needs to know, as JSON values. Runs in the build's own process
    (``jobs=1``) and in worker processes alike."""
    import nbformat

    source, target = Path(task["source"]), Path(task["target"])
    start = time.perf_counter()
    try:
        execute_chapter(
            source, target, task["parameters"], cwd=source.parent, progress=task.get("progress", False),
            hide_injected=True, env=task.get("env"),
        )
    except BuildError as err:
        return {"ok": False, "error": str(err), "seconds": time.perf_counter() - start}
    meta = nbformat.read(target, as_version=4).metadata["ganbook"]
    _write_record(target, task["parts"], meta, task.get("processes", 1))
    return {
        "ok": True, "seconds": meta["seconds"], "executed": meta["executed"],
        "startup_s": meta["startup_s"], "shutdown_s": meta["shutdown_s"],
    }


#: How a worker process starts: deaf to SIGINT and SIGTERM until :func:`_worker_main` has installed
#: its own handlers (a Ctrl-C during its imports would print a traceback); a build that is stopped
#: sends a worker no task before it said it is ready, so a signal it missed then loses nothing.
#: ``{sigint}``: whether the worker listens to SIGINT at all (see :func:`_start_worker`).
_WORKER_CODE = (
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "from gan_lib.pipeline.book import _worker_main; _worker_main(sigint={sigint})"
)


def _worker_main(sigint: bool = True) -> None:
    """A build's worker process: executes the chapters the build sends it, one JSON task a line on
    stdin, answering each with one JSON line (:func:`_execute_task`); its first line says it is ready.

    The answers go to the original stdout; anything else written there (by a library, or by a
    kernel, which inherits it) goes to stderr instead. The first SIGINT or SIGTERM stops the
    chapter being executed as Ctrl-C stops ``ganbook run`` (temporaries removed, kernel shut
    down) and ends the process with status 130 or 143; later ones are ignored, so that they cannot
    cut that clean-up short. With ``sigint=False`` (a build started with SIGINT ignored) SIGINT
    stays ignored, as it is in the build itself.
    """
    answers = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    stopping: list[int] = []

    def stop(signum: int, frame) -> None:
        if stopping:
            return
        stopping.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    if sigint:
        signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    logging.basicConfig(level=logging.WARNING, format="[ganbook] %(message)s")
    try:
        import jupytext  # noqa: F401  (imported before the first chapter's clock starts)
        import nbformat  # noqa: F401
        import papermill  # noqa: F401

        answers.write(json.dumps({"ready": os.getpid()}) + "\n")
        for line in sys.stdin:
            answers.write(json.dumps(_execute_task(json.loads(line))) + "\n")
    except KeyboardInterrupt:
        raise SystemExit(128 + signal.SIGINT) from None
    except BrokenPipeError:  # the build is gone; the chapter's files are complete, nobody is waiting
        os._exit(1)


@dataclass
class _Worker:
    proc: subprocess.Popen
    task: dict[str, Any] | None = None
    ready: bool = False
    since: float = field(default_factory=time.perf_counter)


def _start_worker() -> subprocess.Popen:
    """A worker process. A build started with SIGINT ignored (a background job of a
    non-interactive shell, ``nohup``) is not stopped by a Ctrl-C meant for the foreground job, so
    its workers ignore SIGINT too, instead of ending their chapters under a build that goes on."""
    listen = signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER_CODE.format(sigint=listen)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, encoding="utf-8", bufsize=1,
    )


def _run_in_workers(
    tasks: list[dict[str, Any]],
    jobs: int,
    started: Callable[[dict[str, Any]], None],
    finished: Callable[[dict[str, Any], dict[str, Any]], None],
) -> None:
    """Execute ``tasks`` in ``jobs`` worker processes, each taking the next task when it is done
    with one, in the order given; ``started(task)`` and ``finished(task, answer)`` report each.

    A worker that dies (killed, out of memory) fails its chapter and another worker takes over the
    rest. Whatever stops this (Ctrl-C, SIGTERM, an error), the workers are stopped first.
    """
    pending = deque(tasks)
    workers: list[_Worker] = []
    chooser = selectors.DefaultSelector()

    def spawn() -> None:
        worker = _Worker(_start_worker())
        workers.append(worker)
        chooser.register(worker.proc.stdout, selectors.EVENT_READ, worker)

    def retire(worker: _Worker) -> int:
        chooser.unregister(worker.proc.stdout)
        workers.remove(worker)
        try:
            worker.proc.stdin.close()
        except OSError:  # it is gone already
            pass
        code = worker.proc.wait()
        worker.proc.stdout.close()
        return code

    try:
        for _ in range(min(jobs, len(pending))):
            spawn()
        while workers:
            for key, _ in chooser.select(timeout=1.0):
                worker: _Worker = key.data
                line = worker.proc.stdout.readline()
                if not line:
                    task, pid, ready = worker.task, worker.proc.pid, worker.ready
                    code = retire(worker)
                    if not ready:
                        raise BuildError(
                            f"a worker process (pid {pid}) ended with exit status {code} before it could execute "
                            f"anything; see its messages above, or build with --jobs 1"
                        )
                    if task is not None:
                        finished(task, {
                            "ok": False, "seconds": time.perf_counter() - worker.since,
                            "error": f"{Path(task['source']).name} could not be executed: its worker process "
                            f"(pid {pid}) ended with exit status {code}",
                        })
                    if pending and len(workers) < jobs:
                        spawn()
                    continue
                answer = json.loads(line)
                worker.ready = True
                if worker.task is not None:
                    task, worker.task = worker.task, None
                    finished(task, answer)
                if pending:
                    worker.task, worker.since = pending.popleft(), time.perf_counter()
                    started(worker.task)
                    worker.proc.stdin.write(json.dumps(worker.task) + "\n")
                    worker.proc.stdin.flush()
                else:
                    retire(worker)
    except BaseException:
        _stop_workers(workers)
        raise
    finally:
        chooser.close()


def _stop_workers(workers: list[_Worker], grace: float = 30.0) -> None:
    """Stop the workers of a build that is being stopped: no more tasks (stdin closed), SIGTERM to
    each one executing a chapter (one already stopping on the terminal's SIGINT ignores it), then
    wait for them to clean up. One still running after ``grace`` seconds is killed; the build
    sweeps what it left."""
    for worker in workers:
        try:
            worker.proc.stdin.close()
        except OSError:
            pass
        if worker.task is not None and worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    try:
        for worker in workers:
            try:
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    finally:  # also when a second Ctrl-C cuts the wait short
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()
            worker.proc.stdout.close()


# --------------------------------------------------------------------------------------------
# The whole book
# --------------------------------------------------------------------------------------------


def _when(stamp: str) -> str:
    """An ISO time stamp as ``2026-01-31 14:05 UTC``."""
    try:
        return _dt.datetime.fromisoformat(stamp).astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return stamp or "earlier"


def _in_this_build(r: ChapterResult, with_processes: bool = True) -> str:
    """What the build did with a chapter, for its line on the terminal and (``with_processes=False``:
    the status page says once how many executed at once) its status row."""
    alongside = f", one of {r.processes} executing at once" if r.processes > 1 and with_processes else ""
    if r.reused:
        return f"reused ({r.reason}): executed {_when(r.executed)}{alongside}"
    return f"executed ({r.reason}){alongside}"


def _status_page(
    results: list[ChapterResult], profile: str, wall: float, processes: int, dependencies: Mapping[str, str]
) -> str:
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ran = [r for r in results if not r.reused]
    rows = "\n".join(
        f"| {{doc}}`{r.title} <{r.chapter}>` | `{r.profile}` | {r.seconds:.1f} | {'pass' if r.ok else 'FAIL'} | "
        f"{_in_this_build(r, with_processes=False)} |"
        for r in results
    )
    if not ran:
        how = "No chapter was executed in this build: nothing any of them depends on changed since it was executed."
    elif processes > 1:
        how = (
            f"This build executed {len(ran)} of {len(results)} chapters in parallel, in {processes} processes of one "
            f"thread each (`OMP_NUM_THREADS=1`), so their wall times overlap: they add up to "
            f"{sum(r.seconds for r in ran):.1f} s, while the build took {wall:.1f} s of wall time before rendering."
        )
    else:
        how = (
            f"This build executed {len(ran)} of {len(results)} chapters one after another; it took {wall:.1f} s of "
            f"wall time before rendering."
        )
    return f"""# Build status

This page is written by `ganbook build` every time the book is built: each chapter below was
executed from its source by papermill with the profile shown before the book was rendered, in this
build or, where it says *reused*, in an earlier one. A chapter is executed again only when
something it depends on changed since: its source, its parameters and profile, a Python file of
`gan_lib`, or the version of an installed package (`ganbook build --force` executes every chapter;
`ganbook build --only` executes the chapters it names). If any chapter fails, the book is not
rendered, so a rendered book only ever shows passing chapters (a chapter passes when its checks
hold; the benchmarks page shows a record made on another machine that missed its tolerance, such as
a GPU run's, as a ✗ callout: a record of that run, not a check of this build).

| Chapter | Profile | Wall time (s) | Result | In this build |
|:--|:--|--:|:--|:--|
{rows}

Each wall time is the chapter's own execution, from starting its kernel to shutting it down; a
reused chapter shows the time of the execution it was reused from. {how}

Built {when} with profile `{profile}` on {platform.platform(terse=True)} ({default_jobs()} CPUs) with
Python {platform.python_version()} and torch {dependencies.get('torch', 'not installed')}.
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
        write_text(owner_path, json.dumps({"pid": os.getpid(), "command": command, "started": _now()}))
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


def _reused(chapter: Path, executed: Path, profile: str, selected: list[Path], parts: Mapping[str, Any]) -> ChapterResult:
    """The result of a chapter that ``--only`` does not execute, from its notebook of an earlier
    build; refused if there is none or it was executed with another profile, and a warning if
    something it depends on changed since."""
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
    reason = "not named by --only"
    record, why = cache_state(executed, parts)
    if record is None:
        log.warning(
            "%s is reused as executed %s although %s; name it in --only to execute it again",
            chapter.name, meta.get("executed", "earlier"), why,
        )
        reason += f", although {why}"
    title = chapter_title(read_chapter(chapter))
    return ChapterResult(
        f"/notebooks/{chapter.stem}", title, profile, True, float(meta.get("seconds", 0.0)),
        reused=True, executed=str(meta.get("executed", "")), reason=reason,
        startup_s=float(meta.get("startup_s", 0.0)), shutdown_s=float(meta.get("shutdown_s", 0.0)),
        processes=int((record or {}).get("processes", 1)),
    )


def _from_record(chapter: Path, title: str, profile: str, record: Mapping[str, Any]) -> ChapterResult:
    return ChapterResult(
        f"/notebooks/{chapter.stem}", title, profile, True, float(record["seconds"]),
        reused=True, executed=str(record["executed"]), reason="nothing it depends on changed",
        startup_s=float(record.get("startup_s", 0.0)), shutdown_s=float(record.get("shutdown_s", 0.0)),
        processes=int(record.get("processes", 1)),
    )


def _render_inputs(src: Path, library: Mapping[str, str], dependencies: Mapping[str, str]) -> str:
    """The sha256 of what a site is rendered from: every staged file but the status page (which
    changes with every build), the library (the Sphinx extension is in it) and the installed
    versions (jupyter-book, Sphinx, the theme)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        name = path.relative_to(src).as_posix()
        if name != "book/status.md":
            digest.update(name.encode() + b"\0" + bytes.fromhex(_sha256(path)))
    digest.update(json.dumps([dict(library), dict(dependencies)], sort_keys=True).encode())
    return digest.hexdigest()


def _rendered_from(site: Path) -> dict[str, Any]:
    try:
        stamp = json.loads((site / RENDER_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) and (site / "index.html").is_file() else {}


def build_book(
    root: Path,
    *,
    profile: str = "cpu",
    out: Path | None = None,
    only: Iterable[str] | None = None,
    render: bool = True,
    progress: bool = False,
    jobs: int | None = None,
    force: bool = False,
    library: Path | None = None,
    dependencies: Callable[[], Mapping[str, str]] | None = None,
) -> list[ChapterResult]:
    """Execute the chapters of ``root/_toc.yml`` that changed with ``profile`` and render the book.

    Executed notebooks are kept in ``out/_build/executed`` (``out`` defaults to ``root``), each with
    its record ``<chapter>.cache.json``; a chapter whose record matches what it depends on now
    (:func:`cache_parts`: its source, the parameters, the ``.py`` files under ``library``, default
    the ``gan_lib`` package, and the versions ``dependencies()`` returns, default
    :func:`dependency_versions`) is reused without starting a kernel. ``force`` executes every
    chapter and renders the site even if nothing changed. With ``only``, the named chapters are
    executed whatever their records say and the others reused from ``_build/executed`` (refused if
    one was never executed there, or with another profile).

    ``jobs`` chapters execute at once (default :func:`default_jobs`), each in a worker process
    whose kernel has one thread (:data:`THREAD_LIMITS`); with ``jobs=1``, or when only one chapter
    needs executing, they execute one after another in this process with the machine's threads.
    A failing chapter does not stop the others, which run to the end.

    The staged source tree is ``out/_build/src`` and the site ``out/_build/html``, described by
    ``out/_build/status.json`` (written only when a site was rendered). The site is not rendered
    again when it was rendered from the same staged files, library and versions. Raises
    :class:`BuildError` naming every failed chapter, its cell and where its partly executed notebook
    is kept, with every chapter's result in its ``results``.
    """
    from gan_lib.pipeline.params import PROFILES

    if profile not in PROFILES:
        raise Refused(f"profile={profile!r} is not allowed: expected one of {', '.join(PROFILES)}")
    if jobs is None:
        jobs = default_jobs()
    elif isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise Refused(f"jobs={jobs!r} is not allowed: expected an integer >= 1 (1 executes the chapters one after another)")
    root = Path(root).resolve()
    out = Path(out or root).resolve()
    chapters = toc_chapters(root)
    selected = _select(chapters, only)
    build = out / "_build"
    with _build_lock(build):
        t0 = time.perf_counter()
        sweep_stale(build, legacy=True)
        executed = build / "executed"
        executed.mkdir(exist_ok=True)
        sweep_stale(executed)
        lib = library_files(LIBRARY if library is None else library)
        lib.update(benchmark_files(root / "benchmarks"))
        deps = {str(name): str(version) for name, version in (dependencies or dependency_versions)().items()}
        parameters = {"profile": profile}

        results: dict[Path, ChapterResult] = {}
        tasks: list[dict[str, Any]] = []
        for chapter in chapters:
            target = executed / f"{chapter.stem}.ipynb"
            parts = cache_parts(chapter, parameters, lib, deps)
            if chapter not in selected:
                results[chapter] = _reused(chapter, target, profile, selected, parts)
                continue
            title = chapter_title(read_chapter(chapter))
            if only:
                why = "named by --only"
            elif force:
                why = "--force"
            else:
                record, why = cache_state(target, parts)
                if record is not None:
                    results[chapter] = _from_record(chapter, title, profile, record)
                    continue
            tasks.append({
                "source": str(chapter), "target": str(target), "parameters": parameters, "parts": parts,
                "title": title, "why": why, "progress": progress, "expected": _expected_seconds(target),
            })
        for chapter in chapters:
            if chapter in results:
                r = results[chapter]
                print(f"[ganbook] {chapter.name}: {_in_this_build(r)}, in {r.seconds:.1f} s", flush=True)

        processes = min(jobs, len(tasks))
        if processes > 1:
            tasks.sort(key=lambda task: -task["expected"])  # the longest first, so the last to end ends soonest
        for task in tasks:
            task["processes"] = processes
            if processes > 1:
                task["env"] = dict(THREAD_LIMITS)
                task["progress"] = False  # the bars of chapters executing at once would overwrite each other

        def started(task: dict[str, Any]) -> None:
            print(f"[ganbook] {Path(task['source']).name}: executing ({task['why']})", flush=True)

        def finished(task: dict[str, Any], answer: dict[str, Any]) -> None:
            chapter = Path(task["source"])
            results[chapter] = ChapterResult(
                f"/notebooks/{chapter.stem}", task["title"], profile, bool(answer["ok"]), float(answer["seconds"]),
                error=answer.get("error", ""), executed=answer.get("executed", ""), reason=task["why"],
                startup_s=float(answer.get("startup_s", 0.0)), shutdown_s=float(answer.get("shutdown_s", 0.0)),
                processes=processes,
            )
            print(f"[ganbook] {chapter.name}: {'ok' if answer['ok'] else 'FAILED'} in {answer['seconds']:.1f} s", flush=True)

        if processes > 1:
            print(f"[ganbook] executing {len(tasks)} chapters in {processes} processes of one thread each", flush=True)
        try:
            if processes > 1:
                _run_in_workers(tasks, processes, started, finished)
            else:
                for task in tasks:
                    started(task)
                    finished(task, _execute_task(task))
        finally:
            sweep_stale(executed)  # what a worker that had to be killed left
        ordered = [results[c] for c in chapters]
        wall = time.perf_counter() - t0
        failures = [r.error for r in ordered if not r.ok]
        if failures:
            others = " (the other chapters were executed to the end)" if len(tasks) > 1 else ""
            raise BuildError(
                f"chapter(s) failed, the book was not rendered{others}:\n  " + "\n  ".join(failures), ordered
            )

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
        write_text(src / "book" / "status.md", _status_page(ordered, profile, wall, processes, deps))
        if render:
            inputs = _render_inputs(src, lib, deps)
            site = build / "html"
            earlier = _rendered_from(site)
            if not force and earlier.get("inputs") == inputs:
                print(
                    f"[ganbook] the site was rendered {earlier.get('rendered', 'earlier')} from the same notebooks, "
                    f"book files, library and packages: kept as it is (--force renders it again)",
                    flush=True,
                )
            else:
                render_book(src, out, stamp={"inputs": inputs, "rendered": _now()})
                write_text(build / "status.json", json.dumps([asdict(r) for r in ordered], indent=2))
    return ordered


def render_book(src: Path, out: Path, *, stamp: Mapping[str, Any] | None = None) -> Path:
    """Render the staged tree ``src`` with ``jupyter-book build -W -n --keep-going`` and return the
    site, ``out/_build/html``.

    The site is rendered into a scratch folder first and moved into place only when the build
    succeeded, so a failed render never leaves a mix of new and old pages. ``stamp`` (what the site
    is rendered from) is written into the site as :data:`RENDER_STAMP` before it moves into place,
    so a site and its stamp are replaced together.
    """
    build = Path(out) / "_build"
    scratch = temp_dir(build, "render")
    old = build / f".html.{TEMP_MARK}-{os.getpid()}-old"
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
        if stamp is not None:
            write_text(built / RENDER_STAMP, json.dumps(dict(stamp), indent=1) + "\n")
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


_GLUE_ROLE = re.compile(r"\{glue(?::text)?\}`([^`]+)`")
_CITE_ROLE = re.compile(r"\{cite(?::(p|t))?\}`([^`]+)`")
_XREF_ROLE = re.compile(r"\{(?:doc|ref|numref)\}`([^`]+)`")


def _glued(nb: Any) -> dict[str, str]:
    """The text form of every value the executed notebook glued (``myst_nb.glue``), by name."""
    values: dict[str, str] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            scrap = output.get("metadata", {}).get("scrapbook", {})
            key = scrap.get("mime_prefix", "") + "text/plain"  # an empty prefix: glued with display=True
            if "name" in scrap and key in output.get("data", {}):
                values[scrap["name"]] = output["data"][key]
    return values


def _glue_text(plain: str, fmt: str | None) -> str:
    """What ``{glue:text}`` shows for a value whose text form is ``plain``: a string without its
    quotes, formatted with ``fmt`` when one is given (a string that reads as a number too)."""
    try:
        value = ast.literal_eval(plain)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return plain
    if fmt:
        try:
            return format(float(value) if isinstance(value, str) else value, fmt)
        except (TypeError, ValueError):
            pass
    return value if isinstance(value, str) else plain


def _book_config(root: Path) -> dict[str, Any]:
    """The book's ``_config.yml`` as a dict (raises ``OSError`` or ``yaml.YAMLError``)."""
    return yaml.safe_load((root / "_config.yml").read_text()) or {}


def _bibliography(root: Path | None) -> dict[str, tuple[list[str], str]]:
    """Surnames and year of every entry of the book's ``bibtex_bibfiles``, by key; empty (with a
    warning in the log) when there is none or it cannot be read: the citations then show their keys."""
    if root is None:
        return {}
    import codecs

    import latexcodec  # noqa: F401  (registers the "ulatex" codec)
    from pybtex.database import parse_file

    out: dict[str, tuple[list[str], str]] = {}
    try:
        for bib in _book_config(root).get("bibtex_bibfiles", []) or []:
            for key, entry in parse_file(str(root / bib)).entries.items():
                people = entry.persons.get("author") or entry.persons.get("editor") or []
                names = [codecs.decode(" ".join(p.prelast_names + p.last_names).replace("{", "").replace("}", ""),
                                       "ulatex") for p in people]
                out[key] = (names, entry.fields.get("year", "n.d."))
    except Exception as err:  # pybtex's errors are its own; the page is still worth having
        log.warning("citations on the run's page show their keys: the bibliography could not be read (%s)", err)
        return {}
    return out


def _citation(keys: str, kind: str | None, bib: Mapping[str, tuple[list[str], str]]) -> str:
    """``{cite:p}`` as "(Song & Ermon 2020; ...)", ``{cite:t}`` as "Song & Ermon (2020)"; a key
    the bibliography lacks is shown as it is."""
    parts = []
    for key in (k.strip() for k in keys.split(",")):
        if key not in bib:
            parts.append(key)
            continue
        names, year = bib[key]
        who = names[0] if len(names) == 1 else " & ".join(names) if len(names) == 2 else f"{names[0]} et al." if names else key
        parts.append(f"{who} ({year})" if kind == "t" else f"{who} {year}")
    return "; ".join(parts) if kind == "t" else "(" + "; ".join(parts) + ")"


def resolve_roles(nb: Any, root: Path | None = None) -> Any:
    """A copy of the executed notebook ``nb`` whose Markdown (cells, and the Markdown that code
    cells display) shows what the book's pages show for MyST roles, for readers of a plain HTML
    export: ``{glue:text}`` and ``{glue}`` roles replaced by the glued values (a name this run did
    not glue, e.g. a quantity only a longer profile computes, by "[name: not computed in this
    run]"), ``{cite:p}`` / ``{cite:t}`` by author and year from the bibliography of the book at
    ``root``, and ``{doc}`` / ``{ref}`` by their text."""
    import copy

    glued = _glued(nb)
    bib = _bibliography(root)

    def glue(match: re.Match[str]) -> str:
        name, _, fmt = match.group(1).partition(":")
        return _glue_text(glued[name], fmt or None) if name in glued else f"[{name}: not computed in this run]"

    def xref(match: re.Match[str]) -> str:
        text = match.group(1)
        label = re.match(r"(.*?)\s*<[^<>]*>$", text)
        return label.group(1) if label else text

    def resolved(text: str) -> str:
        text = _GLUE_ROLE.sub(glue, text)
        text = _CITE_ROLE.sub(lambda m: _citation(m.group(2), m.group(1), bib), text)
        return _XREF_ROLE.sub(xref, text)

    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type == "markdown":
            cell.source = resolved(cell.source)
        elif cell.cell_type == "code":
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if isinstance(data.get("text/markdown"), str):
                    data["text/markdown"] = resolved(data["text/markdown"])
    return out


_CDN_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
#: The MathJax component the run pages load: TeX input with every extension in one file (a macro
#: such as \boldsymbol would otherwise load a file not copied, and stop the page's typesetting),
#: SVG output, which needs no font files.
_RUN_MATHJAX = "tex-svg-full.js"


def _mathjax_settings(root: Path | None) -> str:
    """The page's ``window.MathJax``: ``$...$`` inline as in the book, and the book's own macros
    (``sphinx.config.mathjax3_config.tex.macros`` of its ``_config.yml``)."""
    macros: dict[str, Any] = {}
    if root is not None:
        try:
            macros = dict(_book_config(root)["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
            macros = {}
    settings = {"tex": {"inlineMath": [["$", "$"], ["\\(", "\\)"]], "processEscapes": True, "tags": "ams",
                        "macros": macros},
                "svg": {"fontCache": "global"}}
    return f"<script>window.MathJax = {json.dumps(settings)};</script>"


def _offline_math(body: str, html: Path, runs: Path, root: Path | None = None) -> str:
    """``body`` loading MathJax from ``<runs>/_mathjax/`` (copied there once from the installed
    MathJax) instead of nbconvert's CDN, so that the page's mathematics renders without a network,
    as the book's pages do. Unchanged (the CDN stays) when MathJax is not installed, the template
    has no CDN block, or the copy cannot be written (with a warning in the log)."""
    from .sphinx_mathjax import mathjax_source

    try:
        source = mathjax_source() / _RUN_MATHJAX
    except RuntimeError:
        return body
    if not _CDN_MATHJAX.search(body) or not source.is_file():
        return body
    target = runs / "_mathjax" / _RUN_MATHJAX
    try:
        if not target.is_file():
            target.parent.mkdir(exist_ok=True)
            with atomic_open(target, "wb") as out:
                out.write(source.read_bytes())
    except OSError as err:
        log.warning("the run's page loads MathJax from the network: %s could not be written (%s)", target, err)
        return body
    src = Path(os.path.relpath(target, html.parent)).as_posix()
    return _CDN_MATHJAX.sub(lambda _: f'{_mathjax_settings(root)}\n<script src="{src}"></script>', body, count=1)


def _export_html(ipynb: Path, html: Path, root: Path | None = None, runs: Path | None = None) -> None:
    import warnings

    import nbformat
    from nbconvert import HTMLExporter

    nb = resolve_roles(nbformat.read(ipynb, as_version=4), root)
    with warnings.catch_warnings():
        # glued values carry a myst-nb mimetype that plain HTML export does not show; the value's
        # text/plain twin is shown instead, so the warning about it is noise here
        warnings.filterwarnings("ignore", message="Your element with mimetype")
        exporter = HTMLExporter()
        # nbconvert counts images without alt text before _figure_alt_text fills in the book's
        # own; what is still missing after that is reported below instead
        quiet = _DropMessage("Alternative text is missing")
        exporter.log.addFilter(quiet)
        try:
            body, _ = exporter.from_notebook_node(nb)
        finally:
            exporter.log.removeFilter(quiet)
    body, missing = _figure_alt_text(nb, body)
    if missing:
        log.warning("%d image(s) on the run's page have no alt text (their cells set no mystnb.image.alt)", missing)
    write_text(html, body if runs is None else _offline_math(body, html, runs, root))


class _DropMessage(logging.Filter):
    """Drops log records whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


_NO_ALT = "No description has been provided"  # nbconvert's placeholder


def _figure_alt_text(nb: Any, body: str) -> tuple[str, int]:
    """The book's alt text (a cell's ``mystnb.image.alt``) on the images of that cell in an exported
    page, and how many images are left with nbconvert's placeholder (its template gives SVG figures
    no alt text). Cells are found by the ``cell-id=`` anchors the template writes."""
    from bs4 import BeautifulSoup

    alts = {}
    for cell in nb.cells:
        image = (cell.get("metadata", {}).get("mystnb") or {}).get("image") or {}
        if cell.get("id") and isinstance(image, dict) and isinstance(image.get("alt"), str):
            alts[f"cell-id={cell['id']}"] = image["alt"]
    soup = BeautifulSoup(body, features="html.parser")
    changed = False
    for anchor, alt in alts.items():
        div = soup.find(id=anchor)
        for img in div.find_all("img") if div is not None else ():
            if not img.get("alt") or img["alt"].startswith(_NO_ALT):
                img["alt"] = alt
                changed = True
    missing = sum(1 for img in soup.find_all("img") if not img.get("alt") or img["alt"].startswith(_NO_ALT))
    return (str(soup) if changed else body), missing


def failed_checks(folder: Path) -> list[str]:
    """The callouts of checks that failed, shown rather than raised (``display.report_only``: a run
    on a reader's own parameters), in the executed notebook of the run ``folder``."""
    import nbformat

    nb = nbformat.read(next(Path(folder).glob("*.ipynb")), as_version=4)
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = o.get("data", {}).get("text/markdown", "")
            out += [line for line in (text if isinstance(text, str) else "".join(text)).splitlines() if line.startswith("✗ ")]
    return out


def run_chapter(chapter: Path, parameters: Mapping[str, Any], *, runs: Path = Path("runs"), progress: bool = True) -> Path:
    """Re-execute ``chapter`` with ``parameters``; return the run folder holding ``<stem>.ipynb``,
    ``<stem>.html`` and ``parameters.json``. Unknown names and bad values are refused (ValueError)
    before it runs. The page shows the glued numbers and citations (:func:`resolve_roles`) and
    renders its mathematics offline from ``<runs>/_mathjax/`` (shared by all runs there).

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
        html = folder / f"{chapter.stem}.html"
        try:
            execute_chapter(chapter, ipynb, parameters, cwd=chapter.parent, progress=progress)
        except BuildError:
            if failed_copy(ipynb).exists():
                # an earlier successful run with these parameters would now sit beside the failure
                for earlier in (ipynb, html):
                    earlier.unlink(missing_ok=True)
                write_text(folder / "parameters.json", record)
            raise
        try:
            root: Path | None = find_root(chapter.parent)
        except BuildError:  # a chapter outside a book: no bibliography for its citations
            root = None
        _export_html(ipynb, html, root, Path(runs))
        write_text(folder / "parameters.json", record)
        return folder
    except BaseException:
        _remove_empty(created)
        raise
