"""Kernels per generator step: one member trained alone against the whole grid trained as one ensemble.

On a GPU, small models are launch-bound: a step costs about one launch per operator, whatever the
operator's size. This script counts the operators (``aten`` calls other than views, which launch
nothing) that one generator step of ``train_ensemble`` dispatches, for each member of
``benchmarks/ensemble.py``'s grid trained alone and for the grid trained as one ensemble, on the
CPU, and prints the speed-up that launch-bound execution would predict:
``K * mean(alone) / ensemble``; and, to show what the grid's eight losses add, the same for the
same members all given the grid's first loss. It is a projection for the GPU target of ``ensemble.py``, not a
measurement of it. Steps are counted as the difference between a run of ``--steps`` and one of half
as many, so the set-up of a run cancels out.

    python benchmarks/ensemble_kernels.py [--seeds 5] [--steps 4] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ensemble as bench  # noqa: E402  (the grid, data and sizes of the speed benchmark)

from gan_lib.files import cannot_write, write_json  # noqa: E402
from gan_lib.train import EnsembleConfig, MemberSpec, train_ensemble  # noqa: E402

# a reshape that returns a view of its input without declaring it in its schema: no kernel either
_METADATA_ONLY = {torch.ops.aten._unsafe_view.default}


class _Count(TorchDispatchMode):
    """Calls of each operator that may launch work: views (``func.is_view``) are not counted."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if not (func.is_view or func in _METADATA_ONLY):
            self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(members: list[MemberSpec], x: torch.Tensor | Mapping[str, torch.Tensor], steps: int,
                 config: Callable[[int], EnsembleConfig] | None = None) -> dict[str, float]:
    """Calls of each non-view operator per generator step of ``train_ensemble(members, x, ...)``.

    ``config(s)`` gives the :class:`EnsembleConfig` of an ``s``-step run (default: the speed
    benchmark's sizes); ``x`` is the training data, one tensor or a mapping, as ``train_ensemble``
    takes it."""
    counts = []
    for s in (steps // 2, steps):
        cfg = (config or bench.grid_config)(s)
        mode = _Count()
        with mode:
            train_ensemble(members, x, cfg, progress=False)
        counts.append(mode.ops)
    # operators of the set-up only (zero per step) left out; a fraction would show an uneven step
    per_step = {op: (counts[1][op] - counts[0][op]) / (steps - steps // 2) for op in counts[1]}
    return {op: n for op, n in per_step.items() if n}


def kernels_per_step(members: list[MemberSpec], x: torch.Tensor | Mapping[str, torch.Tensor], steps: int,
                     config: Callable[[int], EnsembleConfig] | None = None) -> float:
    """Non-view operators per generator step of ``train_ensemble(members, x, ...)`` (see :func:`ops_per_step`)."""
    return float(sum(ops_per_step(members, x, steps, config).values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per loss (default 5: the 40-member grid)")
    parser.add_argument("--steps", type=int, default=4, help="generator steps counted, even, >= 2 (default 4)")
    parser.add_argument("--out", type=Path, default=None, help="also write the counts to this JSON file")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds={args.seeds} must be >= 1")
    if args.steps < 2 or args.steps % 2:
        parser.error(f"--steps={args.steps} must be an even number >= 2")
    if args.out is not None and (why := cannot_write(args.out)) is not None:  # before the counting, not after
        parser.error(f"--out={str(args.out)!r}: {why}")
    torch.set_num_threads(1)
    x = bench.training_data()
    members = bench.grid(args.seeds)
    alone = {loss: kernels_per_step([next(m for m in members if m.loss == loss)], x, args.steps)
             for loss in bench.LOSSES}  # the seed does not change the count
    ops = ops_per_step(members, x, args.steps)
    together = sum(ops.values())
    projected = len(members) * statistics.mean(alone.values()) / together
    # the same members with one loss for all: what the eight loss groups add
    first = bench.LOSSES[0]
    same = [MemberSpec(first, seed=m.seed, regulariser=m.regulariser, lr_d=m.lr_d, lr_g=m.lr_g) for m in members]
    one_loss = kernels_per_step(same, x, args.steps)
    projected_one_loss = len(members) * alone[first] / one_loss
    for loss, n in alone.items():
        print(f"{loss:>16s} alone: {n:7.0f} kernels per generator step")
    print(f"{len(members):>10d} members as one ensemble: {together:7.0f} kernels per generator step")
    print(f"launch-bound projection of the speed-up: {projected:.1f}x (K x mean alone / ensemble)")
    print(f"the same {len(members)} members all with {first}: {one_loss:.0f} kernels per generator step, "
          f"projection {projected_one_loss:.1f}x")
    if args.out is not None:
        args.out.resolve().parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, {"command": bench.command_line("ensemble_kernels.py"),
                              "members": len(members), "alone": alone, "ensemble": together,
                              "ensemble_ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
                              "projected_speedup": projected,
                              "one_loss": {"loss": first, "ensemble": one_loss,
                                           "projected_speedup": projected_one_loss},
                              "torch": torch.__version__})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    bench.run_main(main, "ensemble_kernels.py")
