"""Forward + backward time of every registered GAN loss on a batch of raw discriminator outputs.

    python benchmarks/bench_losses.py [--batch 65536] [--repeats 50] [--device cpu|cuda]

Prints one row per loss (median milliseconds for discriminator and generator halves) and writes
``benchmarks/results/losses-<device>-<host>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gan_lib import losses


def _time(fn, repeats: int, device: str) -> float:
    for _ in range(3):  # warm-up
        fn()
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return 1e3 * statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    if args.batch < 1 or args.repeats < 1:
        parser.error(f"--batch={args.batch} and --repeats={args.repeats} must both be >= 1")
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(args.batch, generator=gen).to(args.device)
    fake = torch.randn(args.batch, generator=gen).to(args.device)
    rows = []
    for name in losses.names():
        loss = losses.get(name)

        def d_half() -> None:
            r, f = real.clone().requires_grad_(True), fake.clone().requires_grad_(True)
            loss.discriminator(r, f).backward()

        def g_half() -> None:
            r, f = real.clone(), fake.clone().requires_grad_(True)
            loss.generator(f, r).backward()

        rows.append({"loss": name, "d_ms": _time(d_half, args.repeats, args.device),
                     "g_ms": _time(g_half, args.repeats, args.device)})
        print(f"{name:28s} D {rows[-1]['d_ms']:8.3f} ms   G {rows[-1]['g_ms']:8.3f} ms", flush=True)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    target = out_dir / f"losses-{args.device}-{platform.node() or 'host'}.json"
    record = {"batch": args.batch, "repeats": args.repeats, "device": args.device, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "rows": rows}
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=2)
    os.replace(tmp, target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
