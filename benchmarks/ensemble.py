"""Speed of ``gan_lib.train.train_ensemble``: a grid of small GANs as one ensemble or one at a time.

    python benchmarks/ensemble.py [--quick] [--threads 1,2] [--pairs P] [--steps S] [--seeds N] [--malloc retain|default]
                                  [--device cpu|cuda[:i]] [--compile-losses] [--out FILE]

The grid is Song & Ermon's 2-D setting: 8 losses x ``--seeds`` seeds (40 members by default), G
2->100->100->2 and D 2->100->100->1 with LeakyReLU(0.2), spectral norm on every critic layer,
RMSprop (lr 2e-4), batch 256, 5 critic steps per generator step, 5000 training points (two
Gaussians at (+-4, 0), sd 0.5). Three ways of training the same members for ``--steps`` generator
steps each:

* ``ensemble``: ``train_ensemble(all members)``, one batched computation;
* ``one_at_a_time``: ``train_ensemble([member])`` for each member, one after the other (the same
  code with K = 1);
* ``plain_loop``: a hand-written single-model loop for each member (``nn.Linear``,
  ``torch.nn.utils.parametrizations.spectral_norm``, ``torch.optim.RMSprop``): what one would write
  without the library.

Each repeat ("pair") times the three in a rotating order, so that they share the machine's load;
the summary is the median over repeats of the speed-up ``ensemble / one_at_a_time`` (and
``ensemble / plain_loop``). Speeds are member-generator-steps per second. The ensemble's achieved
GFLOP/s counts the matrix-product FLOPs of its steps (forward, weight gradients and the input
gradients autograd needs; left out: the spectral norm's matrix-vector products, < 1 %, and the
relativistic members' extra critic pass on the real batch in their generator steps, 2.5 % of such
a member's work, about 0.3 % of the grid's), and is compared with two peaks measured in the same
run with the same threads: ``torch.bmm`` of the ensemble's largest product (K, 2*256, 100) x
(K, 100, 100), and a 1024 x 1024 ``torch.mm``. Each thread count of ``--threads`` (default 1 and
2) is measured in turn. Its peaks are measured after all its repeats (best of five bursts, three
with ``--quick``: ``fraction_of_*_peak``), and also right after each repeat's ensemble run (best
of three bursts), so that on a machine whose speed drifts each repeat is compared with the peak of
its moment (``paired_fraction_of_*_peak``: the median over repeats of the ratio). The run ends with
one line per thread count: the median speed-ups (wall clock and CPU time) and the ensemble's
fraction of the bmm peak, both ways. Writes
``benchmarks/results/ensemble.json``, or ``--out FILE`` (temporary file, then renamed; with the
command line, the UTC time and the machine; ``summary`` holds the first
thread count's results, ``summary["by_threads"]`` every one's) and prints the tables.
``--compile-losses`` trains the ensemble and each member alone with
``EnsembleConfig(compile_losses=True)``: the losses of all the members' loss groups fused by
``torch.compile`` (compiled in a warm-up outside the clock; the plain loop stays eager).
``--quick`` is a small version (8 members, a few steps; seconds). ``--malloc retain`` (the default)
first calls :func:`gan_lib.train.retain_freed_memory`, for the whole run (all three ways and the
peaks): freed activations are reused instead of faulting in fresh pages every step;
``--malloc default`` leaves glibc's allocator as it is. ``--device cuda`` runs all three ways and
the peaks on a GPU (``--threads`` then only sets the CPU threads, default 1), synchronising the
device before every clock is read; the training draws (batch orders and noise) are made on the
GPU, from a generator there seeded with the member's seed (``train_ensemble`` and the plain loop
alike), so that no draw waits for a copy from the host.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_lib import losses
from gan_lib.files import cannot_write, write_json
from gan_lib.train import EnsembleConfig, MemberSpec, retain_freed_memory, train_ensemble

LOSSES = ["non_saturating", "minimax", "lsgan", "hinge", "kl_hinge", "wgan", "ragan", "fgan_kl"]
N_POINTS, BATCH, N_CRITIC, WIDTH, DEPTH, DIM, Z_DIM, LR = 5000, 256, 5, 100, 2, 2, 2, 2e-4


def training_data(seed: int = 0) -> torch.Tensor:
    """Song & Ermon's MoG: two equal-weight Gaussians at (+-4, 0) with sd 0.5."""
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, (N_POINTS,), generator=g).float() * 2 - 1
    return torch.stack([4.0 * sign, torch.zeros(N_POINTS)], dim=1) + 0.5 * torch.randn(N_POINTS, DIM, generator=g)


RECORDS = Path(__file__).resolve().parent / "records"


def grid_config(steps: int, width: int = WIDTH, device: str = "cpu", compile_losses: bool = False) -> EnsembleConfig:
    """The grid's protocol for a ``steps``-step run (RMSprop, batch 256, 5 critic steps, depth 2)."""
    return EnsembleConfig(batch_size=BATCH, n_critic=N_CRITIC, optimiser="rmsprop", steps=steps, width=width,
                          depth=DEPTH, z_dim=Z_DIM, log_every=steps, device=device, compile_losses=compile_losses)


def numbered_records(pattern: str, folder: Path = RECORDS) -> list[tuple[int, Path]]:
    """``(N, path)`` of the files ``folder/pattern`` whose names end in ``-N``, in order of N
    (``gpu.sh N`` numbers its records so); other names are left out."""
    found = [(int(f.stem.rsplit("-", 1)[1]), f) for f in folder.glob(pattern) if f.stem.rsplit("-", 1)[1].isdigit()]
    return sorted(found, key=lambda nf: nf[0])


def seconds_per_step(record: dict[str, Any]) -> float:
    """One generator step of a record's ensemble: the median over repeats of its time, per step."""
    return statistics.median(r["ensemble_s"] for r in record["pairs"]) / record["summary"]["steps"]


def compiled_and_eager(records: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The latest record with compiled losses and the latest one without, of the same device and grid
    (seeds, width, members), for comparing their steps; ``None`` when there is no such pair."""

    def run(rec: dict[str, Any]) -> tuple[Any, ...]:
        return rec["device_name"], rec["grid"]["seeds"], rec["grid"]["width"], rec["summary"]["members"]

    compiled = next((r for r in reversed(records) if r["grid"].get("compile_losses")), None)
    if compiled is None:
        return None
    eager = next((r for r in reversed(records) if not r["grid"].get("compile_losses") and run(r) == run(compiled)), None)
    return None if eager is None else (compiled, eager)


def grid(seeds: int) -> list[MemberSpec]:
    return [MemberSpec(loss, seed=100 * i + s, regulariser="spectral_norm", lr_d=LR, lr_g=LR,
                       label=f"{loss}/{s}") for i, loss in enumerate(LOSSES) for s in range(seeds)]


def matmul_flops(steps: int, n_points: int) -> float:
    """Matrix-product FLOPs of one member's ``steps`` generator steps (see the module docstring)."""
    dims_d = [DIM] + [WIDTH] * DEPTH + [1]
    dims_g = [Z_DIM] + [WIDTH] * DEPTH + [DIM]
    per_row_d = [2 * a * b for a, b in zip(dims_d[:-1], dims_d[1:])]
    per_row_g = [2 * a * b for a, b in zip(dims_g[:-1], dims_g[1:])]
    fd, fg = sum(per_row_d), sum(per_row_g)
    fd_in, fg_in = sum(per_row_d[1:]), sum(per_row_g[1:])  # no input gradient at the first layer
    critic_step = fg + 2 * (fd + fd + fd_in)  # G forward; D forward, weight grads, input grads on 2n rows
    generator_step = fg + fd + fd + fg + fg_in  # G fwd, D fwd, D input grads, G weight and input grads
    per_row = N_CRITIC * critic_step + generator_step
    batches = [min(BATCH, n_points - b) for b in range(0, n_points, BATCH)]
    rows = sum(batches[i % len(batches)] for i in range(steps))
    return float(per_row * rows)


def plain_loop(spec: MemberSpec, x: torch.Tensor, steps: int) -> None:
    """One model, written the ordinary way: nn.Linear, torch's spectral_norm, torch.optim.RMSprop,
    on ``x``'s device (its random numbers drawn there, from a generator seeded with the member's
    seed, as ``train_ensemble`` draws them)."""
    device = x.device
    gen = torch.Generator(device=device).manual_seed(spec.seed)
    torch.manual_seed(spec.seed)

    def mlp(dims: list[int], sn: bool) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i in range(len(dims) - 1):
            lin = nn.Linear(dims[i], dims[i + 1])
            layers.append(spectral_norm(lin) if sn else lin)
            if i < len(dims) - 2:
                layers.append(nn.LeakyReLU(0.2))
        return nn.Sequential(*layers)

    G = mlp([Z_DIM] + [WIDTH] * DEPTH + [DIM], sn=False).to(device)
    D = mlp([DIM] + [WIDTH] * DEPTH + [1], sn=True).to(device)
    loss = losses.get(spec.loss, **dict(spec.loss_options))
    opt_d = torch.optim.RMSprop(D.parameters(), lr=spec.lr_d)
    opt_g = torch.optim.RMSprop(G.parameters(), lr=spec.lr_g)
    step = 0
    while step < steps:
        xe = x[torch.randperm(x.shape[0], generator=gen, device=device)]
        for begin in range(0, x.shape[0], BATCH):
            if step >= steps:
                break
            real = xe[begin:begin + BATCH]
            n = real.shape[0]
            for _ in range(N_CRITIC):
                with torch.no_grad():
                    fake = G(torch.randn(n, Z_DIM, generator=gen, device=device))
                out = D(torch.cat([real, fake]))
                d_loss = loss.discriminator(out[:n], out[n:])
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            d_fake = D(G(torch.randn(n, Z_DIM, generator=gen, device=device)))
            if loss.requires_real_in_generator:
                with torch.no_grad():
                    d_real = D(real)
                g_loss = loss.generator(d_fake, d_real)
            else:
                g_loss = loss.generator(d_fake)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            step += 1


class Peaks:
    """Two matrix-product peaks with the current thread count: ``torch.bmm`` of the ensemble's largest
    product (K, 2*256, 100) x (K, 100, 100), and a 1024 x 1024 ``torch.mm``."""

    def __init__(self, k: int, device: torch.device) -> None:
        self.device = device
        a, b = torch.randn(k, 2 * BATCH, WIDTH, device=device), torch.randn(k, WIDTH, WIDTH, device=device)
        m = torch.randn(1024, 1024, device=device)
        self.products = (("bmm_same_shape", lambda: torch.bmm(a, b), 2.0 * k * 2 * BATCH * WIDTH * WIDTH, 20),
                         ("mm_1024", lambda: torch.mm(m, m), 2.0 * 1024**3, 10))
        for _, fn, _, _ in self.products:
            fn()

    def measure(self, repeats: int) -> dict[str, dict[str, float]]:
        """Best-of-``repeats`` GFLOP/s (per wall second and per process CPU second) of each product."""
        out: dict[str, dict[str, float]] = {"wall": {}, "cpu": {}}
        for name, fn, flops, calls in self.products:
            best_wall = best_cpu = float("inf")
            for _ in range(repeats):
                sync(self.device)
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    fn()
                sync(self.device)
                best_wall = min(best_wall, (time.perf_counter() - start) / calls)
                best_cpu = min(best_cpu, (time.process_time() - start_cpu) / calls)
            out["wall"][name] = flops / best_wall / 1e9
            out["cpu"][name] = flops / best_cpu / 1e9
        return out


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a GPU runs asynchronously); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(threads: int, members: list[MemberSpec], x: torch.Tensor, steps: int, pairs: int, quick: bool,
            plain: bool, compile_losses: bool = False) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The three ways timed ``pairs`` times with ``threads`` torch threads, then the peaks, all on
    ``x``'s device; (summary, rows)."""
    torch.set_num_threads(threads)
    k = len(members)
    device = x.device
    cfg = grid_config(steps, device=str(device), compile_losses=compile_losses)
    flops = k * matmul_flops(steps, N_POINTS)

    def run_ensemble() -> None:
        train_ensemble(members, x, cfg, progress=False)

    def run_one_at_a_time() -> None:
        for m in members:
            train_ensemble([m], x, cfg, progress=False)

    def run_plain() -> None:
        for m in members:
            plain_loop(m, x, steps)

    ways = {"ensemble": run_ensemble, "one_at_a_time": run_one_at_a_time}
    if plain:
        ways["plain_loop"] = run_plain
    # warm-up: allocator and kernels
    warm = EnsembleConfig(batch_size=BATCH, n_critic=1, steps=1, width=WIDTH, device=str(device))
    train_ensemble(members, x, warm, progress=False)
    train_ensemble(members[:1], x, warm, progress=False)
    plain_loop(members[0], x, 1)
    compile_start = time.perf_counter()
    if compile_losses:  # compile outside the clock: the ensemble's loss functions and each loss's alone
        train_ensemble(members, x, cfg, progress=False)
        for loss in dict.fromkeys(m.loss for m in members):
            train_ensemble([next(m for m in members if m.loss == loss)], x, cfg, progress=False)
    compile_seconds = time.perf_counter() - compile_start

    peaks = Peaks(k, device)
    names = list(ways)
    rows: list[dict[str, object]] = []
    wall_start = time.perf_counter()
    for p in range(pairs):
        order = names[p % len(names):] + names[:p % len(names)]
        row: dict[str, object] = {"pair": p, "order": order}
        for name in order:
            sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            ways[name]()
            sync(device)
            row[f"{name}_s"] = time.perf_counter() - start
            row[f"{name}_cpu_s"] = time.process_time() - start_cpu
            if name == "ensemble":  # the peaks right after, under the same load: this pair's own peaks
                pair_peak = peaks.measure(repeats=3)
        for clock in ("", "_cpu"):
            row[f"speedup{clock}"] = row[f"one_at_a_time{clock}_s"] / row[f"ensemble{clock}_s"]  # type: ignore[operator]
            if "plain_loop" in ways:
                row[f"speedup_vs_plain{clock}"] = row[f"plain_loop{clock}_s"] / row[f"ensemble{clock}_s"]  # type: ignore[operator]
            row[f"ensemble_gflops{clock}"] = flops / row[f"ensemble{clock}_s"] / 1e9  # type: ignore[operator]
            label = "wall" if clock == "" else "cpu"
            for key in ("bmm_same_shape", "mm_1024"):
                row[f"peak_{key}_gflops{clock}"] = pair_peak[label][key]
                row[f"fraction_of_{key}_peak{clock}"] = row[f"ensemble_gflops{clock}"] / pair_peak[label][key]  # type: ignore[operator]
        rows.append(row)
        print(f"{threads} thread(s), pair {p}: "
              + "  ".join(f"{n} {row[f'{n}_s']:.2f} s (cpu {row[f'{n}_cpu_s']:.2f})" for n in names)
              + f"  speed-up {row['speedup']:.2f}x (cpu {row['speedup_cpu']:.2f}x)", flush=True)
    peak = peaks.measure(repeats=3 if quick else 5)

    def med(key: str) -> float:
        return statistics.median(float(r[key]) for r in rows)  # type: ignore[arg-type]

    summary: dict[str, object] = {"members": k, "steps": steps, "pairs": pairs, "threads": torch.get_num_threads(),
                                  "seconds": time.perf_counter() - wall_start, "load_average_after": os.getloadavg(),
                                  "matmul_gflop_per_run": flops / 1e9, "peak_gflops": peak,
                                  "compile_losses": compile_losses,
                                  "compile_warm_up_seconds": compile_seconds if compile_losses else None}
    for clock, label in (("", "wall"), ("_cpu", "cpu")):
        speedups = [float(r[f"speedup{clock}"]) for r in rows]  # type: ignore[arg-type]
        gflops = med(f"ensemble_gflops{clock}")
        summary[label] = {
            "member_steps_per_s": {n: k * steps / med(f"{n}{clock}_s") for n in names},
            "speedup_median": statistics.median(speedups), "speedup_min": min(speedups), "speedup_max": max(speedups),
            "speedup_vs_plain_median": med(f"speedup_vs_plain{clock}") if "plain_loop" in ways else None,
            "ensemble_gflops": gflops,
            "fraction_of_bmm_peak": gflops / peak[label]["bmm_same_shape"],
            "fraction_of_mm_peak": gflops / peak[label]["mm_1024"],
            # each repeat's ensemble GFLOP/s over the peaks measured right after it, median over repeats
            "paired_fraction_of_bmm_peak": med(f"fraction_of_bmm_same_shape_peak{clock}"),
            "paired_fraction_of_mm_peak": med(f"fraction_of_mm_1024_peak{clock}"),
            "paired_peak_gflops": {key: med(f"peak_{key}_gflops{clock}") for key in ("bmm_same_shape", "mm_1024")},
        }
    return summary, rows


def report(summary: dict[str, Any]) -> None:
    """Print one thread count's table."""
    w, c, peak = summary["wall"], summary["cpu"], summary["peak_gflops"]
    print(f"\n{summary['members']} members x {summary['steps']} generator steps, {summary['threads']} thread(s), "
          f"{summary['pairs']} repeats ({summary['seconds']:.0f} s); load average "
          f"{summary['load_average_after'][0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'':34s}{'wall clock':>14s}{'CPU time':>14s}")
    for n in w["member_steps_per_s"]:
        print(f"{n + ' member-steps/s':34s}{w['member_steps_per_s'][n]:14.2f}{c['member_steps_per_s'][n]:14.2f}")
    # the speed-ups are the medians of each repeat's own ratio, not the ratio of the medians above
    print("speed-ups (median over repeats of each repeat's ratio):")
    print(f"{'  ensemble/one-at-a-time':34s}{w['speedup_median']:14.2f}{c['speedup_median']:14.2f}")
    if w["speedup_vs_plain_median"] is not None:
        print(f"{'  ensemble/plain loop':34s}{w['speedup_vs_plain_median']:14.2f}{c['speedup_vs_plain_median']:14.2f}")
    print(f"{'ensemble GFLOP/s':34s}{w['ensemble_gflops']:14.1f}{c['ensemble_gflops']:14.1f}")
    for key, label in (("bmm_same_shape", "peak: bmm of the same shape"), ("mm_1024", "peak: 1024^2 mm")):
        print(f"{label:34s}{peak['wall'][key]:14.1f}{peak['cpu'][key]:14.1f}")
    print(f"{'ensemble / bmm peak':34s}{w['fraction_of_bmm_peak']:14.0%}{c['fraction_of_bmm_peak']:14.0%}")
    print(f"{'ensemble / mm peak':34s}{w['fraction_of_mm_peak']:14.0%}{c['fraction_of_mm_peak']:14.0%}")
    print("paired (each repeat's ensemble over the peaks measured right after it, median):")
    for key, label in (("bmm_same_shape", "bmm"), ("mm_1024", "mm")):
        print(f"{'  peak: ' + label + ' (median of repeats)':34s}{w['paired_peak_gflops'][key]:14.1f}{c['paired_peak_gflops'][key]:14.1f}")
        print(f"{'  ensemble / ' + label + ' peak':34s}{w['paired_fraction_of_' + label + '_peak']:14.0%}"
              f"{c['paired_fraction_of_' + label + '_peak']:14.0%}")


def command_line(script: str, args: Sequence[str] | None = None) -> str:
    """How a benchmark was started, for its record: ``python benchmarks/<script> args`` (the process's
    own arguments by default), quoted so that it runs again as written."""
    return shlex.join(["python", f"benchmarks/{script}", *(sys.argv[1:] if args is None else args)])


def run_main(main: Callable[[], int], script: str) -> NoReturn:
    """Exit with ``main()``'s status; on Ctrl-C, with 130 and a line saying that no result was written
    (results are written whole or not at all), not a traceback."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(f"\n{script}: interrupted; no result file was written", file=sys.stderr)
        sys.exit(130)


def cpu_model() -> str:
    """The processor's name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# environment variables that bear on float32 products on NVIDIA GPUs: torch's switch that turns
# TF32 on in cuBLAS (torch's own settings then read "high" and allow_tf32 True), and NVIDIA's,
# whose value 0 keeps TF32 off in its libraries whatever the program asks
_TF32_ENV = ("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "NVIDIA_TF32_OVERRIDE")


def float32_matmul_settings() -> dict[str, Any]:
    """How float32 matrix products are computed in this process, for a record: torch's precision
    (``"highest"``: float32 throughout; ``"high"``/``"medium"`` allow TF32/bfloat16), whether cuBLAS
    may use TF32 (the older switch and the newer ``fp32_precision``), and the environment variables
    of ``_TF32_ENV``. A setting torch refuses to read (it raises when the older and newer switches
    were mixed) is recorded as its error message, so that a finished measurement still gets written."""

    def read(get: Any) -> Any:
        try:
            return get()
        except RuntimeError as err:
            return f"unreadable: {err}"

    cuda_matmul = torch.backends.cuda.matmul
    return {"precision": read(torch.get_float32_matmul_precision),
            "cuda_allow_tf32": read(lambda: bool(cuda_matmul.allow_tf32)),
            "cuda_fp32_precision": read(lambda: getattr(cuda_matmul, "fp32_precision", None)),
            "env": {name: os.environ.get(name) for name in _TF32_ENV}}


def source_revision(root: Path = Path(__file__).resolve().parent.parent) -> str:
    """The commit of the checkout at ``root`` (the repository by default), for a record: ``git
    rev-parse HEAD``, followed by ``" + uncommitted changes"`` when tracked files differ from it;
    ``"unknown: <why>"`` outside a git checkout or without git (a copied working tree)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except subprocess.CalledProcessError as err:
        return f"unknown: git {' '.join(err.cmd[3:])} failed: {(err.stderr or '').strip() or err.returncode}"
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown: {err}"
    return head + (" + uncommitted changes" if changed else "")


def device_argument(parser: argparse.ArgumentParser, text: str) -> torch.device:
    """``--device`` as a torch device: cpu, or cuda / cuda:i where torch sees a GPU; else the
    parser's error (exit 2) naming the value and what is allowed."""
    try:
        device = torch.device(text)
    except RuntimeError:
        parser.error(f"--device={text!r} is not a device name: cpu, cuda or cuda:i")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device={text!r}: only cpu and cuda are supported")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device={text!r}: this torch ({torch.__version__}) sees no CUDA device")
    return device


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small version: 1 seed per loss, 2 steps, 3 pairs")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per loss (default 5; quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="generator steps per member (default 20; quick 2)")
    parser.add_argument("--pairs", type=int, default=None, help="repeats of the three timings (default 5; quick 3)")
    parser.add_argument("--threads", type=str, default=None,
                        help="torch thread counts, comma-separated, each measured in turn (default 1,2; on a GPU 1)")
    parser.add_argument("--device", type=str, default="cpu", help="cpu (default), cuda or cuda:i")
    parser.add_argument("--no-plain", action="store_true", help="skip the hand-written single-model loop")
    parser.add_argument("--compile-losses", action="store_true",
                        help="EnsembleConfig(compile_losses=True) for the ensemble and one at a time (compiled in the warm-up)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the JSON record (default benchmarks/results/ensemble.json)")
    parser.add_argument("--malloc", choices=("retain", "default"), default="retain",
                        help="retain: call gan_lib.train.retain_freed_memory() first (default); default: leave glibc as is")
    args = parser.parse_args()
    # 0 is refused below, not taken for the default
    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 5)
    steps = args.steps if args.steps is not None else (2 if args.quick else 20)
    pairs = args.pairs if args.pairs is not None else (3 if args.quick else 5)
    device = device_argument(parser, args.device)
    threads_arg = args.threads if args.threads is not None else ("1" if device.type == "cuda" else "1,2")
    try:
        thread_counts = [int(t) for t in threads_arg.split(",")]
    except ValueError:
        parser.error(f"--threads={threads_arg!r} must be integers separated by commas, e.g. 1,2")
    for name, v in (("seeds", seeds), ("steps", steps), ("pairs", pairs), ("threads", min(thread_counts))):
        if v < 1:
            parser.error(f"--{name}={v} must be >= 1")
    if len(set(thread_counts)) != len(thread_counts):
        parser.error(f"--threads={threads_arg!r} names a thread count twice")
    target = args.out if args.out is not None else Path(__file__).resolve().parent / "results" / "ensemble.json"
    why = cannot_write(target)  # before minutes of measuring, not after
    if why is not None:
        parser.error(f"--out={str(target)!r}: {why}")

    matmul_settings = float32_matmul_settings()  # as the measurement starts
    source = source_revision()
    retained = retain_freed_memory() if args.malloc == "retain" else False
    print(f"malloc: {args.malloc} ({'glibc thresholds raised' if retained else 'allocator left as it is'})")
    x = training_data().to(device)
    members = grid(seeds)
    by_threads: dict[str, dict[str, object]] = {}
    rows_by_threads: dict[str, list[dict[str, object]]] = {}
    for threads in thread_counts:
        by_threads[str(threads)], rows_by_threads[str(threads)] = measure(
            threads, members, x, steps, pairs, args.quick, not args.no_plain, args.compile_losses)
    for threads in thread_counts:
        report(by_threads[str(threads)])
    print(f"\n{'threads':>8s}{'speed-up wall':>15s}{'speed-up CPU':>14s}{'bmm peak wall':>15s}{'paired':>8s}")
    for threads in thread_counts:
        w = by_threads[str(threads)]["wall"]  # type: ignore[index]
        c = by_threads[str(threads)]["cpu"]  # type: ignore[index]
        print(f"{threads:8d}{w['speedup_median']:14.2f}x{c['speedup_median']:13.2f}x"
              f"{w['fraction_of_bmm_peak']:15.0%}{w['paired_fraction_of_bmm_peak']:8.0%}")
    # the first thread count's summary at the top level (the benchmarks page reads it), every one under by_threads
    summary = dict(by_threads[str(thread_counts[0])])
    summary["by_threads"] = by_threads

    record = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "command": command_line("ensemble.py"),
              "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "grid": {"losses": LOSSES, "seeds": seeds, "regulariser": "spectral_norm",
                                           "optimiser": "rmsprop", "lr": LR, "batch": BATCH, "n_critic": N_CRITIC,
                                           "width": WIDTH, "depth": DEPTH, "n_points": N_POINTS,
                                           "compile_losses": args.compile_losses},
              "malloc": {"mode": args.malloc, "retained": retained},
              "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(), "host": platform.node(), "cpu_model": cpu_model(),
              "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
              "float32_matmul": matmul_settings, "source": source,
              "load_average": os.getloadavg(), "summary": summary, "pairs": rows_by_threads[str(thread_counts[0])],
              "pairs_by_threads": rows_by_threads}
    target.resolve().parent.mkdir(parents=True, exist_ok=True)
    write_json(target, record)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    run_main(main, "ensemble.py")
