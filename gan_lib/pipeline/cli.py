"""The ``ganbook`` command.

    ganbook build [--profile cpu] [--only 01 ...] [--jobs N] [--force]
                                                     execute the chapters that changed, in parallel,
                                                     then render _build/html (--only: execute these,
                                                     reuse the others; --force: execute everything)
    ganbook run notebooks/01_gan_game.md -p steps 500 -p lr 2e-4
                                                     re-execute one chapter into runs/<chapter>/<params>/
    ganbook params notebooks/01_gan_game.md          list a chapter's parameters and defaults
    ganbook prepare --profile smoke --out DIR        write every chapter as .ipynb with the profile
                                                     injected and nothing run (for pytest --nbval-lax)
    ganbook check-pages [_build/html]                every built page in headless Chromium at 1280 px:
                                                     raw TeX, broken images/links, console errors,
                                                     clipped tables/figures; screenshots kept

Exit status: 0 done (check-pages: every page passes; 1 when one does not), 2 refused (a bad value or option, a folder it cannot write, a build already
running, the ``book`` extra not installed), 1 a chapter or the book failed, 130 interrupted
(Ctrl-C), 143 stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
import time
from pathlib import Path

from gan_lib.pipeline.params import PROFILES

__all__ = ["main", "Terminated"]

#: What the ``book`` extra provides, by import name, with its distribution name.
BOOK_MODULES = {
    "yaml": "pyyaml",
    "jupytext": "jupytext",
    "nbformat": "nbformat",
    "nbclient": "nbclient",
    "papermill": "papermill",
    "nbconvert": "nbconvert",
    "ipykernel": "ipykernel",
    "filelock": "filelock",
    "jupyter_book": "jupyter-book",
}


class Terminated(SystemExit):
    """SIGTERM arrived: unwinds like Ctrl-C, so every clean-up on the way out runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def _jobs(text: str) -> int:
    """The value of ``--jobs``: a whole number of processes, at least 1."""
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(
            f"--jobs {text} is not allowed: expected a whole number of processes >= 1 "
            f"(1 executes the chapters one after another)"
        )
    return jobs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganbook", description="Build and re-run the ganbook chapters.")
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="execute every chapter with a profile and render the book")
    b.add_argument("--profile", default="cpu", choices=PROFILES, help="chapter profile (default: cpu)")
    b.add_argument(
        "--only", nargs="+", metavar="CHAPTER",
        help="execute only these chapters (e.g. 01 02_fgan) and reuse the others from the last build",
    )
    b.add_argument(
        "--jobs", "-j", type=_jobs, default=None, metavar="N",
        help="execute up to N chapters at once, each in its own process with one thread (default: the "
        "number of cores this process may use); 1 executes them one after another with all threads",
    )
    b.add_argument(
        "--force", "--no-cache", action="store_true",
        help="execute every chapter (with --only: the named ones) and render the site even if nothing they "
        "depend on changed since they were executed",
    )
    b.add_argument("--no-render", action="store_true", help="execute the chapters but do not run jupyter-book")
    b.add_argument("--root", type=Path, default=None, help="the book repository (default: found from cwd)")

    r = sub.add_parser("run", help="re-execute one chapter with new parameters")
    r.add_argument("chapter", type=Path, help="the chapter source, e.g. notebooks/01_gan_game.md")
    r.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="set a parameter (repeatable, once per name); VALUE is read as a Python literal, else as a "
        "string, and may start with '-' (-p lr -1e-3)",
    )
    r.add_argument("--runs", type=Path, default=Path("runs"), help="where run folders go (default: runs/)")

    p = sub.add_parser("params", help="list a chapter's parameters")
    p.add_argument("chapter", type=Path)

    q = sub.add_parser("prepare", help="write chapters as .ipynb with a profile injected, unexecuted")
    q.add_argument("--profile", default="smoke", choices=PROFILES)
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--root", type=Path, default=None)

    c = sub.add_parser("check-pages", help="check every built page in headless Chromium at 1280 px")
    c.add_argument("site", type=Path, nargs="?", default=Path("_build/html"))
    c.add_argument("--screenshots", type=Path, default=None, help="default: <site>/../screenshots")
    c.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    return parser


def _take_parameters(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Take every ``-p NAME VALUE`` of ``ganbook run`` out of ``argv``.

    argparse reads a value such as ``-1e-3`` as an unknown option, so the pairs are taken verbatim
    here and the rest is left to argparse (which still reports a ``-p`` missing its value).
    """
    if not argv or argv[0] != "run":
        return argv, []
    rest, pairs = [argv[0]], []
    i = 1
    while i < len(argv):
        if argv[i] in ("-p", "--parameter") and i + 2 < len(argv):
            pairs.append((argv[i + 1], argv[i + 2]))
            i += 3
        elif argv[i] == "--":
            rest.extend(argv[i:])
            break
        else:
            rest.append(argv[i])
            i += 1
    return rest, pairs


def _missing_book_extra() -> list[str]:
    missing = []
    for module, dist in BOOK_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(dist)
    return missing


def _parameters(pairs: list[tuple[str, str]], parse) -> dict:
    """The ``-p`` pairs as a dict; a name given twice is refused, naming both values."""
    given: dict[str, str] = {}
    for name, value in pairs:
        if name in given:
            raise ValueError(
                f"parameter {name} is given twice (-p {name} {given[name]} and -p {name} {value}); "
                f"give each parameter once"
            )
        given[name] = value
    return {name: parse(value) for name, value in given.items()}


def _on_sigterm(signum: int, frame) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    argv, pairs = _take_parameters(list(sys.argv[1:] if argv is None else argv))
    args = _parser().parse_args(argv)
    missing = _missing_book_extra()
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        print(
            f"ganbook: {', '.join(missing)} {verb} not installed; ganbook needs the book extra: "
            f"pip install 'gan_lib[book]'",
            file=sys.stderr,
        )
        return 2
    if args.command == "check-pages":
        from gan_lib.pipeline import browser

        extra = [] if args.screenshots is None else ["--screenshots", str(args.screenshots)]
        extra += [] if args.json is None else ["--json", str(args.json)]
        return browser.main([str(args.site), *extra])
    from gan_lib.pipeline import book

    logging.basicConfig(level=logging.INFO, format="[ganbook] %(message)s")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if args.command == "build":
            root = book.find_root(args.root)
            start = time.perf_counter()
            results = book.build_book(
                root, profile=args.profile, only=args.only, render=not args.no_render, jobs=args.jobs, force=args.force,
            )
            ran = [r for r in results if not r.reused]
            reused = len(results) - len(ran)
            done = f"[ganbook] {len(ran)} chapter(s) executed" + (f", {reused} reused" if reused else "")
            if len(ran) > 1 and ran[0].processes > 1:
                done += f" ({ran[0].processes} at once)"
            done += f"; {time.perf_counter() - start:.1f} s in all; "
            if args.no_render:
                done += f"not rendered (--no-render); staged source: {root / '_build' / 'src'}"
            else:
                done += f"site: {root / '_build' / 'html'}"
            print(done)
        elif args.command == "run":
            params = _parameters(pairs, book.parse_value)
            book.check_writable(args.runs, "--runs")
            folder = book.run_chapter(args.chapter, params, runs=args.runs)
            print(f"[ganbook] executed {args.chapter} with {params or 'its defaults'} into {folder}/")
            failed = book.failed_checks(folder)
            if failed:
                print(f"[ganbook] {len(failed)} check(s) did not hold with these parameters (marked ✗ on the page, "
                      "not asserted):\n  " + "\n  ".join(failed))
        elif args.command == "params":
            nb = book.read_chapter(args.chapter)
            for name, (default, comment) in book.chapter_parameters(nb).items():
                print(f"{name} = {default!r}" + (f"    # {comment}" if comment else ""))
        elif args.command == "prepare":
            root = book.find_root(args.root)
            book.check_writable(args.out, "--out")
            for chapter in book.toc_chapters(root):
                book.prepare_chapter(chapter, args.out / (chapter.stem + ".ipynb"), {"profile": args.profile})
                print(f"[ganbook] prepared {chapter.name} with profile {args.profile}")
    except ValueError as err:
        print(f"ganbook: refused: {err}", file=sys.stderr)
        return 2
    except (book.BuildError, OSError) as err:
        print(f"ganbook: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ganbook: interrupted", file=sys.stderr)
        return 130
    except Terminated as stop:
        print(f"ganbook: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
