"""Overhead of ``gan_lib.train.train_gan`` over a bare hand-written loop doing the same work.

    python benchmarks/bench_train.py [--pairs 15] [--steps 100] [--batch 256] [--threads 1]

Both sides train the same nets (``nets.mlp`` 2->100->100->2 generator, 2->100->100->1 discriminator)
with the same loss (``non_saturating``), batch, Adam options and seeds, in one process, interleaved:
each pair times one run of each, in alternating order, and the summary is the median of the paired
time ratios ``train_gan / bare`` (pairs share the machine's load, so the ratio is steadier than
either time); the same ratio of process CPU times is printed too (with one thread it is less
disturbed by other processes than wall time). After every pair the parameters of the two runs must
be bit-for-bit equal (the comparison is of the same arithmetic), or the script exits with status 1.
Writes ``benchmarks/results/<host>-bench_train.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from gan_lib import losses, nets
from gan_lib.files import write_json
from gan_lib.train import set_seed, train_gan

DIM, HIDDEN, DEPTH, LR, BETAS = 2, 100, 2, 1e-3, (0.5, 0.999)
LOSS = "non_saturating"


def sample_real(n: int) -> torch.Tensor:
    """Eight Gaussians on a ring of radius 2 (std 0.05), drawn with torch's global generator."""
    k = torch.randint(0, 8, (n,))
    angle = k.to(torch.float32) * (2 * torch.pi / 8)
    return 2.0 * torch.stack([angle.cos(), angle.sin()], dim=1) + 0.05 * torch.randn(n, DIM)


def sample_noise(n: int) -> torch.Tensor:
    return torch.randn(n, DIM)


def make_nets(seed: int) -> tuple[nn.Module, nn.Module]:
    set_seed(seed)
    return nets.mlp(DIM, DIM, HIDDEN, DEPTH), nets.mlp(DIM, 1, HIDDEN, DEPTH)


def fused_adam_available() -> bool:
    """Whether this torch has a fused Adam kernel for float32 parameters on the CPU."""
    probe = torch.zeros(1, requires_grad=True)
    probe.grad = torch.ones(1)
    try:
        torch.optim.Adam([probe], fused=True).step()
    except RuntimeError:
        return False
    return True


FUSED = fused_adam_available()


def adam(params, lr: float) -> torch.optim.Adam:
    """The optimiser a careful hand-written loop would use: fused Adam where torch has it."""
    return torch.optim.Adam(params, lr=lr, betas=BETAS, fused=True if FUSED else None)


def bare_loop(gen: nn.Module, disc: nn.Module, steps: int, batch: int) -> None:
    loss = losses.get(LOSS)
    opt_g, opt_d = adam(gen.parameters(), LR), adam(disc.parameters(), LR)
    for _ in range(steps):
        x_real = sample_real(batch)
        with torch.no_grad():
            x_fake = gen(sample_noise(batch))
        d_loss = loss.discriminator(disc(x_real), disc(x_fake))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = loss.generator(disc(gen(sample_noise(batch))))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()


def library_loop(gen: nn.Module, disc: nn.Module, steps: int, batch: int) -> None:
    train_gan(gen, disc, losses.get(LOSS), sample_real, sample_noise, steps=steps, batch_size=batch,
              lr_g=LR, lr_d=LR, betas=BETAS, progress=False)


def timed(loop, seed: int, steps: int, batch: int) -> tuple[float, float, list[torch.Tensor]]:
    """Wall-clock and process CPU seconds of one run, and the final parameters."""
    gen, disc = make_nets(seed)
    set_seed(seed + 1)  # the data and noise stream, the same for both loops
    start, start_cpu = time.perf_counter(), time.process_time()
    loop(gen, disc, steps, batch)
    elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return elapsed, elapsed_cpu, [p.detach().clone() for p in [*gen.parameters(), *disc.parameters()]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15, help="interleaved (train_gan, bare) pairs, >= 1")
    parser.add_argument("--steps", type=int, default=100, help="generator steps per run, >= 1")
    parser.add_argument("--batch", type=int, default=256, help="batch size, >= 1")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads, >= 1")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first pair (pair i uses seed + 2 i), >= 0")
    args = parser.parse_args()
    for name in ("pairs", "steps", "batch", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)} must be >= 1")
    if args.seed < 0:
        parser.error(f"--seed={args.seed} must be >= 0")
    torch.set_num_threads(args.threads)

    # warm-up: allocator, kernels, and the fused-Adam probe of each side
    timed(library_loop, args.seed, 10, args.batch)
    timed(bare_loop, args.seed, 10, args.batch)

    rows = []
    for i in range(args.pairs):
        seed = args.seed + 2 * i
        order = (library_loop, bare_loop) if i % 2 == 0 else (bare_loop, library_loop)
        results = {loop.__name__: timed(loop, seed, args.steps, args.batch) for loop in order}
        (t_lib, c_lib, p_lib), (t_bare, c_bare, p_bare) = results["library_loop"], results["bare_loop"]
        equal = len(p_lib) == len(p_bare) and all(torch.equal(a, b) for a, b in zip(p_lib, p_bare))
        rows.append({"pair": i, "first": order[0].__name__, "train_gan_s": t_lib, "bare_s": t_bare,
                     "ratio": t_lib / t_bare, "train_gan_cpu_s": c_lib, "bare_cpu_s": c_bare,
                     "cpu_ratio": c_lib / c_bare, "params_equal": equal})
        print(f"pair {i:2d} ({'train_gan' if i % 2 == 0 else 'bare'} first)  train_gan {t_lib * 1e3:7.1f} ms"
              f"  bare {t_bare * 1e3:7.1f} ms  ratio {t_lib / t_bare:6.3f}  cpu-time ratio {c_lib / c_bare:6.3f}"
              f"  params equal: {equal}", flush=True)

    ratios = [r["ratio"] for r in rows]
    cpu_ratios = [r["cpu_ratio"] for r in rows]
    lib_rate = [args.steps / r["train_gan_s"] for r in rows]
    bare_rate = [args.steps / r["bare_s"] for r in rows]
    all_equal = all(r["params_equal"] for r in rows)
    summary = {
        "median_ratio": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios),
        "median_cpu_ratio": statistics.median(cpu_ratios), "min_cpu_ratio": min(cpu_ratios),
        "max_cpu_ratio": max(cpu_ratios),
        "train_gan_steps_per_s": statistics.median(lib_rate), "bare_steps_per_s": statistics.median(bare_rate),
        "params_bit_equal": all_equal,
    }
    print()
    print(f"{'':24s}{'median':>10s}{'min':>10s}{'max':>10s}")
    print(f"{'ratio train_gan/bare':24s}{summary['median_ratio']:10.3f}{min(ratios):10.3f}{max(ratios):10.3f}")
    print(f"{'  same, CPU time':24s}{summary['median_cpu_ratio']:10.3f}{min(cpu_ratios):10.3f}{max(cpu_ratios):10.3f}")
    for label, rates in (("train_gan steps/s", lib_rate), ("bare loop steps/s", bare_rate)):
        print(f"{label:24s}{statistics.median(rates):10.1f}{min(rates):10.1f}{max(rates):10.1f}")
    print(f"parameters bit-for-bit equal after every pair: {all_equal}")

    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    target = out_dir / f"{platform.node() or 'host'}-bench_train.json"
    record = {"args": vars(args), "loss": LOSS,
              "nets": f"mlp {DIM}->{HIDDEN}x{DEPTH}->{DIM} G, {DIM}->{HIDDEN}x{DEPTH}->1 D",
              "torch": torch.__version__, "fused_adam": FUSED, "threads": torch.get_num_threads(),
              "cpus": os.cpu_count(), "summary": summary, "pairs": rows}
    write_json(target, record)
    print(f"wrote {target}")
    if not all_equal:
        print("train_gan and the bare loop disagree: they are not doing the same work", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
