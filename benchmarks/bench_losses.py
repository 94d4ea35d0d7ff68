"""Cost of every registered GAN loss relative to a bare torch expression of the same formula.

    python benchmarks/bench_losses.py [--batches 64 4096] [--repeats 30] [--calls 20]

For each registered loss (default options) and each half (discriminator, generator) the script
times forward + backward (gradients with respect to the raw outputs ``d_real`` and ``d_fake``) of

* ``lib``: ``losses.get(name).discriminator(d_real, d_fake)`` / ``.generator(d_fake, d_real)``,
  input checks included, and
* ``bare``: the same formula written out by hand with plain torch calls (:data:`BARE`), the way
  one would type it from the paper without any care for overflow or exactness.

Timings are paired and interleaved in one process: each repetition times ``--calls`` calls of one
and then of the other (the order alternates between repetitions), and the table reports the median
over repetitions of the ratio lib / bare, so a machine busy with other work slows both sides of a
pair alike. Times are CPU time of the benchmarking thread (``time.thread_time``), so time spent
descheduled while other processes use the cores does not count. CPU, float32,
``torch.set_num_threads(1)``. Before timing, the script checks that lib
and bare agree numerically (values and gradients) on the benchmark inputs, so both sides do the
same work.

Prints one row per loss and batch size, and writes ``benchmarks/results/losses-cpu-<host>.json``
(written to a temporary file, then renamed).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from gan_lib import losses
from gan_lib.divergences import wright_omega
from gan_lib.files import write_json

from ensemble import command_line, source_revision  # benchmarks/ensemble.py, beside this script

Tensor = torch.Tensor
Half = Callable[[Tensor, Tensor], Tensor]  # (d_real, d_fake) -> scalar

LOG2 = math.log(2.0)
_A = 0.5  # default alpha of poole_alpha and fgan_alpha
_C = _A / (_A - 1.0)


def _sp(x: Tensor) -> Tensor:
    return F.softplus(x)


def _bce_d(r: Tensor, f: Tensor) -> Tensor:
    return _sp(-r).mean() + _sp(f).mean()


def _fgan(g: Callable[[Tensor], Tensor], fstar_g: Callable[[Tensor], Tensor]) -> tuple[Half, Half]:
    # D: -E_P[g(v)] + E_Q[f*(g(v))];  G (minimax): -E_Q[f*(g(v))]
    return (lambda r, f: -g(r).mean() + fstar_g(f).mean(), lambda r, f: -fstar_g(f).mean())


def _jeffrey_fstar(v: Tensor) -> Tensor:
    # f*(t) = W(e^{1-t}) + 1/W(e^{1-t}) + t - 2; torch has no Lambert W, so the bare form uses the
    # library's Wright omega W(e^x) = omega(x), as any hand-written version would have to.
    w = wright_omega(1.0 - v)
    return w + 1.0 / w + v - 2.0


def _kl_w(f: Tensor) -> Tensor:
    return f.numel() * torch.softmax(f, dim=0)


def _chi2_w(f: Tensor) -> Tensor:
    # r_i = max(0, u_i - theta), u = 1 + v/2, theta so that sum r = n: the sort-based projection
    n = f.numel()
    u = 1.0 + 0.5 * f
    s, _ = torch.sort(u, descending=True)
    k = torch.arange(1, n + 1, dtype=f.dtype)
    theta_k = (torch.cumsum(s, 0) - n) / k
    rho = int((s - theta_k > 0).nonzero().max())
    return torch.clamp(u - theta_k[rho], min=0.0)


#: name -> (discriminator, generator), each a bare function of (d_real, d_fake), at default options.
BARE: dict[str, tuple[Half, Half]] = {
    "minimax": (_bce_d, lambda r, f: -_sp(f).mean()),
    "non_saturating": (_bce_d, lambda r, f: _sp(-f).mean()),
    "fgan_kl": _fgan(lambda v: v, lambda v: torch.exp(v - 1.0)),
    "fgan_reverse_kl": _fgan(lambda v: -torch.exp(-v), lambda v: v - 1.0),
    "fgan_pearson": _fgan(lambda v: v, lambda v: 0.25 * v * v + v),
    "fgan_neyman": _fgan(lambda v: 1.0 - torch.exp(-v), lambda v: 2.0 - 2.0 * torch.exp(-0.5 * v)),
    "fgan_squared_hellinger": _fgan(lambda v: 1.0 - torch.exp(-v), lambda v: torch.exp(v) - 1.0),
    "fgan_jeffrey": _fgan(lambda v: v, _jeffrey_fstar),
    "fgan_jensen_shannon": _fgan(lambda v: LOG2 - _sp(-v), lambda v: _sp(v) - LOG2),
    "fgan_gan": _fgan(lambda v: -_sp(-v), _sp),
    "fgan_total_variation": _fgan(lambda v: 0.5 * torch.tanh(v), lambda v: 0.5 * torch.tanh(v)),
    # alpha < 1: g(v) = 1/(1-a) - softplus(-v), f*(g(v)) = ((1-a) softplus(-v))^{a/(a-1)}/a - 1/a
    "fgan_alpha": _fgan(
        lambda v: 1.0 / (1.0 - _A) - _sp(-v), lambda v: (((1.0 - _A) * _sp(-v)) ** _C - 1.0) / _A
    ),
    "huszar_kl": (_bce_d, lambda r, f: -f.mean()),
    "poole_standard": (_bce_d, lambda r, f: _sp(-f).mean()),
    "poole_rkl": (_bce_d, lambda r, f: -f.mean()),
    "poole_kl": (_bce_d, lambda r, f: (f * torch.exp(f)).mean()),
    "poole_alpha": (
        _bce_d,
        lambda r, f: ((torch.exp(_A * f) - 1.0 - _A * (torch.exp(f) - 1.0)) / (_A * (_A - 1.0))).mean(),
    ),
    "poole_envelope": (_bce_d, lambda r, f: (_sp(-f) + torch.sigmoid(-f)).mean()),
    "lsgan": (
        lambda r, f: 0.5 * ((r - 1.0) ** 2).mean() + 0.5 * (f**2).mean(),
        lambda r, f: 0.5 * ((f - 1.0) ** 2).mean(),
    ),
    "wgan": (lambda r, f: f.mean() - r.mean(), lambda r, f: -f.mean()),
    "hinge": (lambda r, f: F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean(), lambda r, f: -f.mean()),
    "kl_hinge": (
        lambda r, f: F.relu(1.0 - r).mean() + F.relu(1.0 + _kl_w(f) * f).mean(),
        lambda r, f: -(_kl_w(f) * f).mean(),
    ),
    "chi2_hinge": (
        lambda r, f: F.relu(1.0 - r).mean() + F.relu(1.0 + _chi2_w(f) * f).mean(),
        lambda r, f: -(_chi2_w(f) * f).mean(),
    ),
    "rgan": (lambda r, f: _sp(f - r).mean(), lambda r, f: _sp(r - f).mean()),
    "ragan": (
        lambda r, f: _sp(f.mean() - r).mean() + _sp(f - r.mean()).mean(),
        lambda r, f: _sp(r.mean() - f).mean() + _sp(r - f.mean()).mean(),
    ),
}


def _lib_halves(name: str) -> tuple[Half, Half]:
    loss = losses.get(name)
    return (lambda r, f: loss.discriminator(r, f), lambda r, f: loss.generator(f, r))


def _inputs(batch: int, seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(batch, generator=gen).requires_grad_(True)
    fake = torch.randn(batch, generator=gen).requires_grad_(True)
    return real, fake


def _forward_backward(fn: Half, real: Tensor, fake: Tensor) -> tuple[Tensor, ...]:
    out = fn(real, fake)
    grads = torch.autograd.grad(out, (real, fake), allow_unused=True)
    return (out.detach(),) + tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, (real, fake)))


def check_agreement(name: str, batch: int) -> float:
    """Largest relative difference between lib and bare (values and gradients); raises if > 1e-4."""
    real, fake = _inputs(batch, seed=1)
    worst = 0.0
    for half, lib, bare in zip(("D", "G"), _lib_halves(name), BARE[name]):
        for a, b in zip(_forward_backward(lib, real, fake), _forward_backward(bare, real, fake)):
            scale = float(b.abs().max()) + 1e-6
            diff = float((a - b).abs().max()) / scale
            if not diff <= 1e-4:
                raise AssertionError(f"{name} {half}: library and bare expression differ by {diff:.2e} (relative)")
            worst = max(worst, diff)
    return worst


def _time_calls(fn: Half, real: Tensor, fake: Tensor, calls: int) -> float:
    # CPU time of this thread: with one torch thread every op and the backward pass run here, and
    # time spent descheduled while other processes use the cores does not count.
    start = time.thread_time()
    for _ in range(calls):
        out = fn(real, fake)
        torch.autograd.grad(out, (real, fake), allow_unused=True)
    return (time.thread_time() - start) / calls


def paired_ratio(lib: Half, bare: Half, batch: int, repeats: int, calls: int) -> dict[str, float]:
    """Median over ``repeats`` interleaved pairs of (lib time / bare time), and the median times."""
    real, fake = _inputs(batch, seed=2)
    for _ in range(3):  # warm-up (allocator, dispatch caches)
        _time_calls(lib, real, fake, calls)
        _time_calls(bare, real, fake, calls)
    ratios, t_lib, t_bare = [], [], []
    for rep in range(repeats):
        if rep % 2 == 0:
            a = _time_calls(lib, real, fake, calls)
            b = _time_calls(bare, real, fake, calls)
        else:
            b = _time_calls(bare, real, fake, calls)
            a = _time_calls(lib, real, fake, calls)
        ratios.append(a / b)
        t_lib.append(a)
        t_bare.append(b)
    return {
        "ratio": statistics.median(ratios),
        "ratio_q1": statistics.quantiles(ratios, n=4)[0],
        "ratio_q3": statistics.quantiles(ratios, n=4)[2],
        "lib_us": 1e6 * statistics.median(t_lib),
        "bare_us": 1e6 * statistics.median(t_bare),
    }


def _write_json(record: dict, target: Path) -> None:
    target.parent.mkdir(exist_ok=True)
    write_json(target, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 4096], help="batch sizes (>= 2)")
    parser.add_argument("--repeats", type=int, default=30, help="interleaved lib/bare pairs per row (>= 4)")
    parser.add_argument("--calls", type=int, default=20, help="calls per timing (>= 1)")
    parser.add_argument("--only", nargs="*", default=None, help="restrict to these registered names")
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON to write (default: benchmarks/results/losses-cpu-<host>.json)")
    args = parser.parse_args()
    if min(args.batches) < 2 or args.repeats < 4 or args.calls < 1:
        parser.error(
            f"--batches={args.batches} (each >= 2), --repeats={args.repeats} (>= 4), --calls={args.calls} (>= 1)"
        )
    names = losses.names() if args.only is None else args.only
    missing = sorted(set(losses.names()) - set(BARE))
    if missing:
        raise SystemExit(f"no bare expression for registered loss(es) {missing}: add them to BARE")
    unknown = sorted(set(names) - set(losses.names()))
    if unknown:
        parser.error(f"--only {unknown}: not registered; registered: {', '.join(losses.names())}")
    torch.set_num_threads(1)

    rows = []
    print(f"{'loss':24s} {'batch':>6s} {'half':>4s} {'lib/bare':>9s} {'IQR':>13s} {'lib us':>9s} {'bare us':>9s}")
    for name in names:
        agree = {b: check_agreement(name, b) for b in args.batches}
        for batch in args.batches:
            for half, lib, bare in zip(("D", "G"), _lib_halves(name), BARE[name]):
                res = paired_ratio(lib, bare, batch, args.repeats, args.calls)
                rows.append({"loss": name, "batch": batch, "half": half, "max_rel_diff": agree[batch], **res})
                print(
                    f"{name:24s} {batch:6d} {half:>4s} {res['ratio']:9.3f} "
                    f"[{res['ratio_q1']:5.2f}, {res['ratio_q3']:5.2f}] {res['lib_us']:9.1f} {res['bare_us']:9.1f}",
                    flush=True,
                )
    worst = max((r for r in rows if r["batch"] == max(args.batches)), key=lambda r: r["ratio"])
    print(f"largest lib/bare at batch {max(args.batches)}: {worst['ratio']:.3f} ({worst['loss']} {worst['half']})")
    record = {
        "what": "median over interleaved pairs of lib/bare thread CPU time, forward + backward, CPU float32, 1 thread",
        "command": command_line("bench_losses.py"),
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source_revision(),
        "host": platform.node() or "host",
        "batches": args.batches,
        "repeats": args.repeats,
        "calls": args.calls,
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    target = args.out or Path(__file__).resolve().parent / "results" / f"losses-cpu-{platform.node() or 'host'}.json"
    _write_json(record, target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
