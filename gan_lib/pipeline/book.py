"""The book pipeline: execute chapters with papermill, then render with Jupyter Book.

Chapters are jupytext MyST-markdown notebooks ``notebooks/NN_slug.md``. Each has a first code cell
tagged ``parameters`` (every knob a reader may change, ``profile`` among them) and a second cell
tagged ``validate`` that checks them. Two entry points, both exposed by the ``ganbook`` script:

- :func:`build_book` executes every chapter listed in ``_toc.yml`` with a profile into a staged copy
  of the book (``_build/src``), writes a status page, and renders ``_build/html`` with
  ``jupyter-book build -W -n --keep-going`` and execution off.
- :func:`run_chapter` re-executes one chapter with new parameters into ``runs/<chapter>/<params>/``
  (the executed notebook and its HTML page), refusing unknown names and bad values before the
  chapter's real work starts.

Nothing half-written is left behind: each executed notebook goes to a temporary file first and is
renamed into place only when every cell ran.
"""

from __future__ import annotations

import ast
import datetime as _dt
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

__all__ = [
    "ChapterResult",
    "BuildError",
    "find_root",
    "toc_chapters",
    "read_chapter",
    "chapter_parameters",
    "parse_value",
    "check_parameters",
    "execute_chapter",
    "prepare_chapter",
    "build_book",
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


class BuildError(RuntimeError):
    """A chapter could not be executed or the book could not be rendered."""


@dataclass(frozen=True)
class ChapterResult:
    """How one chapter's execution went."""

    chapter: str
    title: str
    profile: str
    ok: bool
    seconds: float
    error: str = ""


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


def chapter_parameters(nb) -> dict[str, tuple[Any, str]]:
    """The names in the ``parameters`` cell, each with its default value and its comment."""
    idx = _cell_index(nb, PARAMETERS_TAG)
    source = nb.cells[idx].source
    tree = ast.parse(source)
    lines = source.splitlines()
    params: dict[str, tuple[Any, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name = node.target.id
        else:
            continue
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            default = ast.get_source_segment(source, node.value)
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        params[name] = (default, comment)
    return params


def parse_value(text: str) -> Any:
    """A command-line value as Python: numbers, True/False/None, lists and quoted strings are
    evaluated literally; anything else is taken as a plain string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# --------------------------------------------------------------------------------------------
# Executing chapters
# --------------------------------------------------------------------------------------------


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
    client = NotebookClient(
        head, kernel_name=KERNEL, timeout=300, log=quiet, resources={"metadata": {"path": str(cwd or Path.cwd())}}
    )
    try:
        client.execute()
    except CellExecutionError as err:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # the traceback is coloured with ANSI codes
        lines = [ln.strip() for ln in text.splitlines() if "Error" in ln and ":" in ln]
        raise ValueError(lines[-1] if lines else text) from None
    except Exception as err:  # a dead or missing kernel
        raise BuildError(f"could not check the parameters: {type(err).__name__}: {err}") from err


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

    Returns the wall time in seconds. On failure nothing is left at ``output`` and a
    :class:`BuildError` names the chapter, the failing cell and the error.
    """
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    nb = read_chapter(source)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_in = tempfile.mkstemp(suffix=".ipynb", prefix=f".{source.stem}.in.", dir=output.parent)
    os.close(fd)
    fd, tmp_out = tempfile.mkstemp(suffix=".ipynb", prefix=f".{source.stem}.out.", dir=output.parent)
    os.close(fd)
    start = time.perf_counter()
    saved_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE_BACKEND  # the kernel inherits the environment
    try:
        nbformat.write(nb, tmp_in)
        pm.execute_notebook(
            tmp_in,
            tmp_out,
            parameters=dict(parameters),
            kernel_name=KERNEL,
            language="python",
            progress_bar=progress,
            cwd=str(cwd or source.parent),
        )
        seconds = time.perf_counter() - start
        # Record the run in the notebook so the HTML page and the status page can show it.
        done = nbformat.read(tmp_out, as_version=4)
        done.metadata["ganbook"] = {"parameters": dict(parameters), "seconds": round(seconds, 2)}
        if hide_injected:  # the book shows the defaults; the status page names the profile
            for cell in done.cells:
                tags = cell.metadata.get("tags", [])
                if "injected-parameters" in tags and "remove-cell" not in tags:
                    cell.metadata["tags"] = [*tags, "remove-cell"]
        nbformat.write(done, tmp_out)
        os.replace(tmp_out, output)
        return seconds
    except PapermillExecutionError as err:
        raise BuildError(
            f"{source.name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}"
        ) from None
    except Exception as err:  # a dead or missing kernel, an unwritable output, ...
        raise BuildError(f"{source.name} could not be executed: {type(err).__name__}: {err}") from err
    finally:
        if saved_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = saved_backend
        for tmp in (tmp_in, tmp_out):
            if os.path.exists(tmp):
                os.remove(tmp)


def prepare_chapter(source: Path, output: Path, parameters: Mapping[str, Any]) -> None:
    """Write ``source`` as an ``.ipynb`` with ``parameters`` injected and nothing executed
    (what ``papermill --prepare-only`` does), e.g. for ``pytest --nbval-lax``."""
    import nbformat

    nb = _parameterize(read_chapter(source), parameters)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".ipynb", prefix=f".{source.stem}.", dir=output.parent)
    os.close(fd)
    try:
        nbformat.write(nb, tmp)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
    rows = "\n".join(
        f"| {{doc}}`{r.title} <{r.chapter}>` | `{r.profile}` | {r.seconds:.1f} | {'pass' if r.ok else 'FAIL'} |"
        for r in results
    )
    return f"""# Build status

This page is written by `ganbook build` every time the book is built: each chapter below was
executed from its source by papermill with the profile shown, in this build, before the book was
rendered. If any chapter fails, the book is not rendered, so a rendered book only ever shows passing
chapters.

| Chapter | Profile | Wall time (s) | Result |
|:--|:--|--:|:--|
{rows}

Total execution time: {total:.1f} s with profile `{profile}`, built {when} on {v['platform']}
({v['cpus']} CPUs) with Python {v['python']} and torch {v['torch']}.
"""


def _prune_toc(node: Any, kept: set[str]) -> Any:
    """The table of contents without the chapters that are not being built (``--only``)."""
    if isinstance(node, list):
        out = [_prune_toc(child, kept) for child in node]
        return [child for child in out if child is not None]
    if isinstance(node, dict):
        entry = str(node.get("file", ""))
        if entry.startswith("notebooks/") and entry.removesuffix(".md") not in kept:
            return None
        node = dict(node)
        for key in ("parts", "chapters", "sections"):
            if key in node:
                node[key] = _prune_toc(node[key], kept)
                if not node[key]:
                    del node[key]
        if "caption" in node and not any(k in node for k in ("chapters", "sections", "file")):
            return None
        return node
    return node


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

    The staged source tree is ``out/_build/src`` and the site ``out/_build/html`` (``out``
    defaults to ``root``). Raises :class:`BuildError` naming every failed chapter and its cell.
    """
    from gan_lib.pipeline.params import PROFILES

    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not allowed: expected one of {', '.join(PROFILES)}")
    root = Path(root).resolve()
    out = Path(out or root).resolve()
    chapters = toc_chapters(root)
    if only:
        wanted = set(only)
        chapters = [c for c in chapters if c.stem in wanted or c.stem.split("_")[0] in wanted]
        if not chapters:
            raise ValueError(f"--only {sorted(wanted)} matches no chapter in _toc.yml")
    src = out / "_build" / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    shutil.copy2(root / "_config.yml", src / "_config.yml")
    kept = {f"notebooks/{c.stem}" for c in chapters}
    toc = _prune_toc(yaml.safe_load((root / "_toc.yml").read_text()), kept)
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    shutil.copytree(root / "book", src / "book")
    (src / "notebooks").mkdir()

    results: list[ChapterResult] = []
    failures: list[str] = []
    t0 = time.perf_counter()
    for chapter in chapters:
        title = chapter_title(read_chapter(chapter))
        target = src / "notebooks" / (chapter.stem + ".ipynb")
        log.info("executing %s with profile %s", chapter.name, profile)
        start = time.perf_counter()
        try:
            seconds = execute_chapter(
                chapter, target, {"profile": profile}, cwd=chapter.parent, progress=progress, hide_injected=True
            )
            results.append(ChapterResult(f"/notebooks/{chapter.stem}", title, profile, True, seconds))
        except BuildError as err:
            failures.append(str(err))
            results.append(
                ChapterResult(f"/notebooks/{chapter.stem}", title, profile, False, time.perf_counter() - start, str(err))
            )
        print(f"[ganbook] {chapter.name}: {'ok' if results[-1].ok else 'FAILED'} in {results[-1].seconds:.1f} s", flush=True)
    total = time.perf_counter() - t0
    _write_atomic(out / "_build" / "status.json", json.dumps([asdict(r) for r in results], indent=2))
    if failures:
        raise BuildError("chapter(s) failed, the book was not rendered:\n  " + "\n  ".join(failures))
    _write_atomic(src / "book" / "status.md", _status_page(results, profile, total))
    if render:
        render_book(src, out)
    return results


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def render_book(src: Path, out: Path) -> Path:
    """Render the staged tree ``src`` with ``jupyter-book build -W -n --keep-going`` and return the
    site, ``out/_build/html``.

    The site is rendered into a scratch folder first and moved into place only when the build
    succeeded, so a failed render never leaves a mix of new and old pages.
    """
    scratch = Path(tempfile.mkdtemp(prefix=".render.", dir=out / "_build"))
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
        site = out / "_build" / "html"
        old = out / "_build" / ".html.old"
        if old.exists():
            shutil.rmtree(old)
        if site.exists():
            site.rename(old)
        built.rename(site)
        if old.exists():
            shutil.rmtree(old)
        return site
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Re-running one chapter
# --------------------------------------------------------------------------------------------


def run_folder_name(parameters: Mapping[str, Any]) -> str:
    """A folder name that spells out the parameters, e.g. ``lr=0.0002__steps=500``."""
    if not parameters:
        return "defaults"
    parts = []
    for key in sorted(parameters):
        value = parameters[key]
        text = re.sub(r"[^A-Za-z0-9.+-]+", "_", value if isinstance(value, str) else str(value))
        parts.append(f"{key}={text.strip('_')}")
    return "__".join(parts)


def _export_html(ipynb: Path, html: Path) -> None:
    import warnings

    import nbformat
    from nbconvert import HTMLExporter

    with warnings.catch_warnings():
        # glued values carry a myst-nb mimetype that plain HTML export does not show; the value's
        # text/plain twin is shown instead, so the warning about it is noise here
        warnings.filterwarnings("ignore", message="Your element with mimetype")
        body, _ = HTMLExporter().from_notebook_node(nbformat.read(ipynb, as_version=4))
    fd, tmp = tempfile.mkstemp(suffix=".html", prefix=f".{html.stem}.", dir=html.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(body)
    os.replace(tmp, html)


def run_chapter(chapter: Path, parameters: Mapping[str, Any], *, runs: Path = Path("runs"), progress: bool = True) -> Path:
    """Re-execute ``chapter`` with ``parameters``; return the run folder holding ``<stem>.ipynb``
    and ``<stem>.html``. Unknown names and bad values are refused (ValueError) before it runs."""
    chapter = Path(chapter).resolve()
    nb = read_chapter(chapter)
    check_parameters(nb, parameters, cwd=chapter.parent)
    folder = Path(runs) / chapter.stem / run_folder_name(parameters)
    folder.mkdir(parents=True, exist_ok=True)
    ipynb = folder / f"{chapter.stem}.ipynb"
    execute_chapter(chapter, ipynb, parameters, cwd=chapter.parent, progress=progress)
    _export_html(ipynb, folder / f"{chapter.stem}.html")
    return folder
