"""A Sphinx extension that serves MathJax 3 from the built site instead of a CDN (and drops a
duplicated inline script of Jupyter Book's theme).

The book must render its mathematics offline (a reader's copy of ``_build/html`` works without a
network). MathJax 3.2.2 comes from the PyPI package ``django-static-mathjax`` (a plain copy of
MathJax's ``es5`` build, Apache-2.0; the package imports nothing from Django): this extension copies
the CommonHTML combined component ``tex-chtml.js`` and the folders it loads lazily (fonts,
extensions, menu, accessibility) into ``_static/mathjax/`` and points ``mathjax_path`` there.

Enabled in ``_config.yml`` with ``sphinx: extra_extensions: [gan_lib.pipeline.sphinx_mathjax]``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

__all__ = ["setup", "mathjax_source", "MATHJAX_ENTRY"]

#: The MathJax component the pages load: TeX input, CommonHTML output (web fonts), menu included.
MATHJAX_ENTRY = "tex-chtml.js"
_FOLDERS = ("a11y", "adaptors", "input", "output", "sre", "ui")


def mathjax_source() -> Path:
    """The installed MathJax ``es5`` folder; a clear error when the package is missing."""
    try:
        import mathjax  # the django-static-mathjax distribution
    except ImportError as err:
        raise RuntimeError(
            "MathJax for offline pages is missing: install the book extra (pip install -e '.[book]'), "
            "which brings django-static-mathjax"
        ) from err
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / MATHJAX_ENTRY).is_file():
        raise RuntimeError(f"MathJax package found but {es5 / MATHJAX_ENTRY} is missing; reinstall django-static-mathjax")
    return es5


def _stage(app: Any, config: Any) -> None:
    es5 = mathjax_source()
    stage = Path(app.doctreedir).parent / "ganbook_static"
    target = stage / "mathjax"
    if not (target / MATHJAX_ENTRY).is_file():
        tmp = stage / ".mathjax.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        shutil.copy2(es5 / MATHJAX_ENTRY, tmp / MATHJAX_ENTRY)
        for folder in _FOLDERS:
            shutil.copytree(es5 / folder, tmp / folder)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    config.html_static_path = [*config.html_static_path, str(stage)]
    config.mathjax_path = f"mathjax/{MATHJAX_ENTRY}"


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    # Jupyter Book 1.x registers sphinx-thebe's inline configuration script twice, and the second
    # copy is a console error ("Identifier 'THEBE_JS_URL' has already been declared").
    seen: set[tuple[str, str]] = set()
    kept = []
    for script in context.get("script_files", []):
        name = getattr(script, "filename", script)
        body = str(getattr(script, "attributes", {}).get("body", ""))
        key = ("inline", body) if not name or name == "None" else (str(name), body)
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"] = kept


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _stage)
    app.connect("html-page-context", _dedupe_scripts, priority=900)  # after the theme's handlers
    return {"parallel_read_safe": True, "parallel_write_safe": True}
