"""The ``ganbook`` command.

    ganbook build [--profile cpu] [--only 01 ...]    execute every chapter, then render _build/html
    ganbook run notebooks/01_gan_game.md -p steps 500 -p lr 2e-4
                                                     re-execute one chapter into runs/<chapter>/<params>/
    ganbook params notebooks/01_gan_game.md          list a chapter's parameters and defaults
    ganbook prepare --profile smoke --out DIR        write every chapter as .ipynb with the profile
                                                     injected and nothing run (for pytest --nbval-lax)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gan_lib.pipeline import book
from gan_lib.pipeline.params import PROFILES

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganbook", description="Build and re-run the ganbook chapters.")
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="execute every chapter with a profile and render the book")
    b.add_argument("--profile", default="cpu", choices=PROFILES, help="chapter profile (default: cpu)")
    b.add_argument("--only", nargs="+", metavar="CHAPTER", help="execute only these chapters (e.g. 01 02_fgan)")
    b.add_argument("--no-render", action="store_true", help="execute the chapters but do not run jupyter-book")
    b.add_argument("--root", type=Path, default=None, help="the book repository (default: found from cwd)")

    r = sub.add_parser("run", help="re-execute one chapter with new parameters")
    r.add_argument("chapter", type=Path, help="the chapter source, e.g. notebooks/01_gan_game.md")
    r.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="set a parameter (repeatable); VALUE is read as a Python literal, else as a string",
    )
    r.add_argument("--runs", type=Path, default=Path("runs"), help="where run folders go (default: runs/)")

    p = sub.add_parser("params", help="list a chapter's parameters")
    p.add_argument("chapter", type=Path)

    q = sub.add_parser("prepare", help="write chapters as .ipynb with a profile injected, unexecuted")
    q.add_argument("--profile", default="smoke", choices=PROFILES)
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--root", type=Path, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[ganbook] %(message)s")
    try:
        if args.command == "build":
            root = book.find_root(args.root)
            results = book.build_book(root, profile=args.profile, only=args.only, render=not args.no_render)
            total = sum(r.seconds for r in results)
            print(f"[ganbook] {len(results)} chapter(s) executed in {total:.1f} s; site: {root / '_build' / 'html'}")
        elif args.command == "run":
            params = {name: book.parse_value(value) for name, value in args.parameter}
            folder = book.run_chapter(args.chapter, params, runs=args.runs)
            print(f"[ganbook] executed {args.chapter} with {params or 'its defaults'} into {folder}/")
        elif args.command == "params":
            nb = book.read_chapter(args.chapter)
            for name, (default, comment) in book.chapter_parameters(nb).items():
                print(f"{name} = {default!r}" + (f"    # {comment}" if comment else ""))
        elif args.command == "prepare":
            root = book.find_root(args.root)
            for chapter in book.toc_chapters(root):
                book.prepare_chapter(chapter, args.out / (chapter.stem + ".ipynb"), {"profile": args.profile})
                print(f"[ganbook] prepared {chapter.name} with profile {args.profile}")
    except ValueError as err:
        print(f"ganbook: refused: {err}", file=sys.stderr)
        return 2
    except book.BuildError as err:
        print(f"ganbook: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
