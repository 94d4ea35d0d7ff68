"""Wall time of building the book: chapters one after another against in parallel, and a rebuild
of an unchanged tree.

    .venv/bin/python benchmarks/bench_build.py [--profile smoke] [--jobs 2]

One run builds the real book (the chapters of ``_toc.yml``) three times, never rendering, from a
snapshot taken when it starts: the book's files (``_config.yml``, ``_toc.yml``, ``book/``,
``notebooks/``) and a copy of ``gan_lib`` for the cache key, both in a temporary folder, so that
edits made to a shared working tree while it runs cannot turn the unchanged rebuild into a
re-execution (the kernels still import the installed ``gan_lib``). The builds:

1. ``sequential``: every chapter executed one after another in this process (``jobs=1``), the cache
   disabled (``force=True``, as ``ganbook build --force --jobs 1 --no-render``);
2. ``parallel``: every chapter executed in ``--jobs`` worker processes of one thread each, the cache
   disabled (``ganbook build --force --jobs 2 --no-render``);
3. ``unchanged``: the same build again on the unchanged tree (``ganbook build --no-render``), every
   chapter reused from the records build 2 left; a chapter executed again instead is reported
   (``cache_hit`` false, with the reason) and makes the script exit 1.

For each build it reports the wall time, and for each chapter its own wall time and fixed cost:
``startup_s`` from the call to the first cell (papermill's setup, kernel start and handshake) and
``shutdown_s`` from the last cell to the return (kernel shutdown, papermill's last save). The start
of a worker process (Python and the papermill imports, paid once per worker) is timed on its own.
The machine's load average before and after is recorded: on a shared machine the times include
other people's work. Writes ``benchmarks/results/<host>-bench_build.json`` (a temporary file,
then renamed) and prints a table. A chapter that fails is reported, not fatal: its build's times
still count what ran.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gan_lib import files
from gan_lib.pipeline import book

ROOT = Path(__file__).resolve().parents[1]


def worker_start(repeats: int = 3) -> float:
    """Median seconds for a fresh Python to import what a build's worker imports before it is ready."""
    code = "import gan_lib.pipeline.book, jupytext, nbformat, papermill"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def snapshot(scratch: Path) -> tuple[Path, Path]:
    """Copies of the book's files and of gan_lib in ``scratch``: the root to build and the library
    whose files key the cache."""
    root = scratch / "book"
    root.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, root / name)
    skip = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc")
    for name in ("book", "notebooks"):
        shutil.copytree(ROOT / name, root / name, ignore=skip)
    library = scratch / "gan_lib"
    shutil.copytree(book.LIBRARY, library, ignore=skip)
    return root, library


def timed_build(name: str, root: Path, library: Path, out: Path, profile: str, *, jobs: int, force: bool) -> dict:
    print(f"--- {name}: jobs={jobs}, force={force}, no render", flush=True)
    start = time.perf_counter()
    error = ""
    try:
        results = book.build_book(
            root, profile=profile, out=out, render=False, jobs=jobs, force=force, library=library
        )
    except book.BuildError as err:
        results, error = err.results, str(err)
    wall = time.perf_counter() - start
    return {
        "name": name,
        "jobs": jobs,
        "force": force,
        "wall_s": round(wall, 2),
        "ok": not error,
        "error": error,
        "chapters": [
            {
                "chapter": r.chapter.rsplit("/", 1)[-1], "ok": r.ok, "reused": r.reused, "reason": r.reason,
                "seconds": round(r.seconds, 2), "startup_s": r.startup_s, "shutdown_s": r.shutdown_s,
                "processes": r.processes,
            }
            for r in results
        ],
    }


def fixed_cost(build: dict) -> dict:
    ran = [c for c in build["chapters"] if c["ok"] and not c["reused"]]
    if not ran:
        return {}
    startup = [c["startup_s"] for c in ran]
    shutdown = [c["shutdown_s"] for c in ran]
    per_chapter = [a + b for a, b in zip(startup, shutdown)]
    return {
        "chapters": len(ran),
        "startup_s_mean": round(statistics.fmean(startup), 2),
        "shutdown_s_mean": round(statistics.fmean(shutdown), 2),
        "per_chapter_s_min": round(min(per_chapter), 2),
        "per_chapter_s_max": round(max(per_chapter), 2),
        "share_of_wall": round(sum(per_chapter) / build["wall_s"], 3) if build["jobs"] == 1 else None,
    }


def write_json(target: Path, data: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(target, data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel build (default: 2)")
    args = parser.parse_args()
    if args.jobs < 2:
        parser.error(f"--jobs {args.jobs} is not allowed: the parallel build needs at least 2 processes")

    load_before = os.getloadavg()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="bench_build-") as scratch:
        root, library = snapshot(Path(scratch))
        builds = [
            timed_build("sequential", root, library, Path(scratch) / "one", args.profile, jobs=1, force=True),
            timed_build("parallel", root, library, Path(scratch) / "many", args.profile, jobs=args.jobs, force=True),
            timed_build("unchanged", root, library, Path(scratch) / "many", args.profile, jobs=args.jobs, force=False),
        ]
    start_s = worker_start()
    load_after = os.getloadavg()
    sequential, parallel, unchanged = builds
    executed_again = [f"{c['chapter']} ({c['reason']})" for c in unchanged["chapters"] if not c["reused"]]
    report = {
        "host": platform.node() or "host",
        "started": started,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "profile": args.profile,
        "cpus": book.default_jobs(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "worker_start_s": round(start_s, 2),
        "speedup_parallel": round(sequential["wall_s"] / parallel["wall_s"], 2) if parallel["wall_s"] else None,
        "cache_hit": not executed_again,
        "executed_again": executed_again,
        "fixed_cost_sequential": fixed_cost(sequential),
        "fixed_cost_parallel": fixed_cost(parallel),
        "builds": builds,
    }
    target = Path(__file__).resolve().parent / "results" / f"{report['host']}-bench_build.json"
    write_json(target, report)

    print(f"\nprofile {args.profile}, {report['cpus']} CPUs, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"{'build':<11} {'jobs':>4} {'wall s':>7}  chapters (s: own wall time, startup + shutdown)")
    for b in builds:
        chapters = ", ".join(
            f"{c['chapter'].split('_')[0]} {'reused ' if c['reused'] else ('FAIL ' if not c['ok'] else '')}"
            f"{c['seconds']:.1f} ({c['startup_s']:.1f}+{c['shutdown_s']:.1f})"
            for c in b["chapters"]
        )
        print(f"{b['name']:<11} {b['jobs']:>4} {b['wall_s']:>7.2f}  {chapters}")
    print(f"parallel speed-up {report['speedup_parallel']}x; a worker process starts in {start_s:.2f} s")
    for b in builds:
        if b["error"]:
            print(f"{b['name']}: {b['error']}")
    if executed_again:
        print(f"the unchanged rebuild was not a cache hit; it executed again: {', '.join(executed_again)}")
    print(f"wrote {target}")
    return 0 if all(b["ok"] for b in builds) and not executed_again else 1


if __name__ == "__main__":
    sys.exit(main())
