"""Check every page of the built site in headless Chromium, as a reader at a 1280-px window sees it.

For each HTML page of ``_build/html`` (served on a loopback port, as a static host would), after
MathJax has typeset, a page fails when it shows

* raw TeX that was not rendered (``\\(``, ``\\[``, ``$$``, ``\\vert`` or ``\\\\vert`` in the visible
  text) or a MathJax error box;
* a broken image (not loaded, or zero size), or a link to a page or file of the site that does not
  exist;
* an error in the browser console (a failed request, a script error);
* something clipped: a table, figure, image, output or display equation wider than the text column,
  or a horizontally scrolling box whose content is wider than the box.

A full-page screenshot of every page is kept under ``_build/screenshots/`` for people to look at.
Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``)
and the ``selenium`` package (the ``book`` extra). Run with ``ganbook check-pages`` or
``python -m gan_lib.pipeline.browser _build/html``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import re
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

__all__ = ["PageReport", "check_site", "main"]

WIDTH = 1280
HEIGHT = 900
_MAX_SHOT_HEIGHT = 32000
_SKIP = {"genindex.html", "search.html", "py-modindex.html"}

# Runs in the page once MathJax is done; returns the problems found, as strings.
_PAGE_JS = r"""
const problems = [];
const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const text = article.innerText;
for (const raw of ['\\(', '\\)', '\\[', '$$', '\\vert', '\\\\']) {
  const i = text.indexOf(raw);
  if (i >= 0) problems.push(`raw TeX ${JSON.stringify(raw)} left in the text: ...${text.slice(Math.max(0, i - 40), i + 40).replace(/\s+/g, ' ')}...`);
}
for (const e of document.querySelectorAll('mjx-merror, .mjx-merror, [data-mjx-error]')) {
  problems.push(`MathJax error: ${(e.getAttribute('data-mjx-error') || e.textContent).slice(0, 120)}`);
}
for (const img of document.querySelectorAll('img')) {
  if (!img.complete || img.naturalWidth === 0) problems.push(`broken image: ${img.getAttribute('src')}`);
}
const col = article.getBoundingClientRect();
const describe = (e) => {
  const id = e.id ? '#' + e.id : '';
  const cls = (e.className && typeof e.className === 'string') ? '.' + e.className.trim().split(/\s+/).slice(0, 2).join('.') : '';
  const near = (e.closest('section') || {}).id || '';
  return `<${e.tagName.toLowerCase()}${id}${cls}> in section "${near}"`;
};
const sel = 'table, figure, img, svg:not(mjx-container svg), .cell_output, .output, mjx-container[display="true"], pre';
for (const e of article.querySelectorAll(sel)) {
  if (e.closest('.toggle-hidden, details:not([open]), .dropdown, .admonition.toggle-hidden')) continue;
  const r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (e.tagName === 'PRE' && e.closest('.cell_input')) continue;  // source code scrolls by design
  if (r.right > col.right + 2 || r.left < col.left - 2) {
    problems.push(`wider than the column (${Math.round(r.width)} px vs ${Math.round(col.width)} px): ${describe(e)}`);
  }
}
for (const e of article.querySelectorAll('*')) {
  const cs = getComputedStyle(e);
  if (!['auto', 'scroll'].includes(cs.overflowX)) continue;
  if (e.closest('.cell_input') || e.tagName === 'PRE' || e.closest('pre')) continue;
  if (e.scrollWidth > e.clientWidth + 2 && e.clientWidth > 0) {
    problems.push(`clipped: content ${e.scrollWidth} px in a ${e.clientWidth} px scrolling box: ${describe(e)}`);
  }
}
const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
return [problems, links, document.documentElement.scrollHeight];
"""

_WAIT_MATHJAX = r"""
// MathJax's configuration object exists before its (deferred) script has run, so wait, for up to
// arguments[0] ms, until the script has created MathJax.startup, then for its typesetting promise.
const done = arguments[arguments.length - 1];
const limit = arguments[0];
const t0 = Date.now();
const poll = () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(() => done('ok')).catch((e) => done('error: ' + e));
  } else if (Date.now() - t0 > limit) {
    done(window.MathJax ? 'no-startup' : 'no-mathjax');
  } else if (!window.MathJax && document.readyState === 'complete' && Date.now() - t0 > 2000) {
    done('no-mathjax');
  } else { setTimeout(poll, 100); }
};
poll();
"""


#: How long a page may take to start MathJax (its script is deferred) before the check gives up.
MATHJAX_START_S = 45.0


@dataclass
class PageReport:
    """What was found on one page."""

    page: str
    problems: list[str] = field(default_factory=list)
    screenshot: str = ""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def _serve(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        raise RuntimeError("selenium is missing: install the book extra (pip install -e '.[book]')") from err
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        raise RuntimeError(
            "headless Chromium is missing: install Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver)"
        )
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}", "--force-device-scale-factor=1",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


def _local_target(site: Path, base: str, href: str) -> tuple[Path, str] | None:
    """The file and fragment a same-site link points to (``None`` for external links)."""
    if not href.startswith(base):
        return None
    parts = urlsplit(href)
    path = unquote(parts.path)
    target = site / path.lstrip("/")
    if path.endswith("/"):
        target = target / "index.html"
    return target, unquote(parts.fragment)


@functools.lru_cache(maxsize=None)
def _ids(page: Path) -> frozenset[str]:
    return frozenset(re.findall(r'\sid="([^"]+)"', page.read_text(encoding="utf-8", errors="replace")))


def _broken(site: Path, base: str, href: str) -> bool:
    found = _local_target(site, base, href)
    if found is None:
        return False
    target, fragment = found
    if not target.exists():
        return True
    return bool(fragment) and target.suffix == ".html" and fragment not in _ids(target)


def _is_redirect(page: Path) -> bool:
    """A page that only forwards to another (Jupyter Book's root ``index.html``)."""
    head = page.read_text(encoding="utf-8", errors="replace")[:2000].lower()
    return 'http-equiv="refresh"' in head and "<article" not in head


def check_site(site: Path, screenshots: Path | None = None) -> list[PageReport]:
    """Check every page of ``site``; return one :class:`PageReport` per page."""
    site = Path(site).resolve()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} holds no index.html: build the book first (make book)")
    pages = sorted(
        p for p in site.rglob("*.html")
        if p.name not in _SKIP and "_static" not in p.parts and not _is_redirect(p)
    )
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
    reports = []
    with _serve(site) as base:
        driver = _driver()
        try:
            driver.set_script_timeout(MATHJAX_START_S + 60)
            for page in pages:
                rel = page.relative_to(site).as_posix()
                report = PageReport(rel)
                driver.set_window_size(WIDTH, HEIGHT)
                driver.get(base + rel)
                state = driver.execute_async_script(_WAIT_MATHJAX, int(MATHJAX_START_S * 1000))
                if state not in ("ok", "no-mathjax"):
                    report.problems.append(f"MathJax did not finish: {state}")
                problems, links, height = driver.execute_script(_PAGE_JS)
                report.problems += problems
                for href in sorted(set(links)):
                    if _broken(site, base, href):
                        report.problems.append(f"broken link: {href[len(base):]}")
                for entry in driver.get_log("browser"):
                    if entry.get("level") == "SEVERE":
                        report.problems.append(f"console error: {entry.get('message', '')[:300]}")
                if screenshots is not None:
                    driver.set_window_size(WIDTH, min(int(height) + 40, _MAX_SHOT_HEIGHT))
                    shot = screenshots / (rel.replace("/", "__").removesuffix(".html") + ".png")
                    driver.save_screenshot(str(shot))
                    report.screenshot = str(shot)
                reports.append(report)
        finally:
            driver.quit()
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ganbook check-pages", description=__doc__.split("\n")[0])
    parser.add_argument("site", type=Path, nargs="?", default=Path("_build/html"))
    parser.add_argument("--screenshots", type=Path, default=None, help="default: <site>/../screenshots")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    shots = args.screenshots or args.site.resolve().parent / "screenshots"
    try:
        reports = check_site(args.site, shots)
    except (RuntimeError, FileNotFoundError) as err:
        print(f"ganbook check-pages: {err}", file=sys.stderr)
        return 2
    bad = [r for r in reports if r.problems]
    for r in reports:
        print(f"[check-pages] {'FAIL' if r.problems else 'ok  '} {r.page}")
        for p in r.problems:
            print(f"    - {p}")
    if args.json is not None:
        tmp = args.json.with_suffix(".json.partial")
        tmp.write_text(json.dumps([r.__dict__ for r in reports], indent=1))
        tmp.replace(args.json)
    print(f"[check-pages] {len(reports) - len(bad)} of {len(reports)} pages pass; screenshots in {shots}")
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
