"""The page check in headless Chromium finds each kind of defect, and passes a clean page; the
MathJax extension serves MathJax from the site.

Needs Debian's chromium and chromium-driver (``make check-pages`` installs them; CI does).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gan_lib.pipeline import browser

needs_chromium = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="Debian's chromium and chromium-driver are not installed (make check-pages installs them)",
)

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body><main><article class="bd-article" style="width: 700px">
<section id="top"><h1>Page</h1>{body}</section></article></main></body></html>"""

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2b2c3a40000000049454e44ae426082"
)


def _site(tmp_path: Path, body: str, extra: dict[str, str] | None = None) -> Path:
    site = tmp_path / "html"
    site.mkdir()
    (site / "index.html").write_text(PAGE.format(body=body), encoding="utf-8")
    (site / "dot.png").write_bytes(PNG_1PX)
    for name, text in (extra or {}).items():
        (site / name).write_text(PAGE.format(body=text), encoding="utf-8")
    return site


@needs_chromium
def test_a_clean_page_passes(tmp_path: Path) -> None:
    body = (
        '<p>Text with a <a href="other.html#part">link</a> and <img src="dot.png" width="20"></p>'
        "<table><tr><td>1</td><td>2</td></tr></table>"
    )
    site = _site(tmp_path, body, {"other.html": '<p id="part">there</p>'})
    reports = browser.check_site(site, tmp_path / "shots")
    assert [r.page for r in reports] == ["index.html", "other.html"]
    assert all(r.problems == [] for r in reports), [r.problems for r in reports]
    assert (tmp_path / "shots" / "index.png").stat().st_size > 1000


@needs_chromium
@pytest.mark.parametrize(
    "body, expected",
    [
        (r"<p>The value $$D_f$$ stays raw</p>", "raw TeX"),
        (r"<p>a \(x\) inline</p>", "raw TeX"),
        (r"<p>bad \\vert escape</p>", "raw TeX"),
        ('<img src="missing.png">', "broken image"),
        ('<a href="nowhere.html">x</a>', "broken link"),
        ('<a href="#no-such-anchor">x</a>', "broken link"),
        ("<script>undefined_function_call();</script>", "console error"),
        ('<table><tr><td style="white-space:nowrap">' + "wide " * 300 + "</td></tr></table>", "wider than the column"),
        ('<div style="overflow-x:auto"><div style="width:2000px">x</div></div>', "clipped"),
    ],
)
def test_each_defect_is_reported(tmp_path: Path, body: str, expected: str) -> None:
    site = _site(tmp_path, body)
    (report,) = browser.check_site(site, None)
    assert any(expected in p for p in report.problems), report.problems


LATE_MATHJAX = """<p>x</p><script>
window.MathJax = {{tex: {{}}}};  // the configuration exists at once, as on a Jupyter Book page
setTimeout(() => {{ window.MathJax.startup = {{promise: Promise.resolve()}}; }}, {delay});
</script>"""


@needs_chromium
def test_mathjax_that_starts_late_is_waited_for(tmp_path: Path) -> None:
    """CI once failed a page because MathJax's deferred script had not yet created MathJax.startup."""
    site = _site(tmp_path, LATE_MATHJAX.format(delay=1500))
    (report,) = browser.check_site(site, None)
    assert report.problems == []


@needs_chromium
def test_mathjax_that_never_starts_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "MATHJAX_START_S", 1.0)
    site = _site(tmp_path, LATE_MATHJAX.format(delay=10**6))
    (report,) = browser.check_site(site, None)
    assert report.problems == ["MathJax did not finish: no-startup"]


def test_missing_site_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no index.html"):
        browser.check_site(tmp_path, None)
    assert browser.main([str(tmp_path)]) == 2


@needs_chromium
def test_mathjax_is_served_from_the_site(tmp_path: Path) -> None:
    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").write_text(
        "title: t\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: 'off'\n"
        "parse:\n  myst_enable_extensions: [dollarmath]\n"
        "sphinx:\n  extra_extensions: [gan_lib.pipeline.sphinx_mathjax]\n"
        "  config:\n    html_context:\n      default_mode: light\n"
    )
    (book / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (book / "index.md").write_text("# Math\n\nInline $\\int q f(p/q)$ and $$D_f(P\\|Q)$$\n")
    subprocess.run(
        [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(book), "--all"],
        check=True, capture_output=True,
    )
    site = book / "_build" / "html"
    html = (site / "index.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com/mathjax" not in html
    assert html.count("THEBE_JS_URL =") <= 1
    (report,) = [r for r in browser.check_site(site, None) if r.page == "index.html"]
    # favicon requests are the only console noise a minimal book has
    problems = [p for p in report.problems if "favicon" not in p]
    assert problems == []


@needs_chromium
def test_ganbook_check_pages_exit_codes(tmp_path: Path) -> None:
    from gan_lib.pipeline import cli

    good = _site(tmp_path / "a", "<p>fine</p>") if (tmp_path / "a").mkdir() is None else None
    bad = _site(tmp_path / "b", '<img src="missing.png">') if (tmp_path / "b").mkdir() is None else None
    assert cli.main(["check-pages", str(good), "--screenshots", str(tmp_path / "shots")]) == 0
    assert cli.main(["check-pages", str(bad), "--json", str(tmp_path / "report.json")]) == 1
    assert "broken image" in (tmp_path / "report.json").read_text()
    assert cli.main(["check-pages", str(tmp_path / "nothing")]) == 2
