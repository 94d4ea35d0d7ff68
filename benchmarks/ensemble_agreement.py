"""Does batching change the training? Each member of an ensemble against the same member trained alone,
on a chosen device.

    python benchmarks/ensemble_agreement.py [--device cpu|cuda[:i]] [--steps S] [--compile-losses] [--out FILE]

``tests/test_ensemble.py`` checks, on the CPU, that member ``k`` of a mixed ensemble follows a
hand-written PyTorch loop. On a GPU the batched products may use other kernels than the products
of one member, so this script repeats the comparison where it runs: a mixed ensemble of 9 members
(8 losses; no regulariser, spectral norm, gradient penalty, R1 and clipping; RMSprop and Adam; two
datasets) trained with ``train_ensemble`` on ``--device``, then each member trained alone with
``train_ensemble([member])`` on the same device. Each member's noise and batch orders come from its
own generator on that device, so the two runs see the same draws and differ only by how the
arithmetic is batched.

It reports, per member, the largest difference between the two runs' parameters (generator and
raw critic weights and biases) over the largest distance the lone run's parameters travelled from
their common start, the largest relative difference of the logged losses, and the tensor where the
parameters differ most: in float64 with RMSprop and with Adam, and in float32 likewise (the 9
members and one more with spectral norm alone). Tolerances: 1e-8 in float64, 1e-4 in float32.

For scale, each member is also trained alone on the data moved up by one unit in the last place
(in the training dtype). How far that carries it, over the same distance
(``one_ulp_data_change_over_distance_moved``), is how far rounding alone carries that member. In
float32 it is also trained alone with its matrix products rounded otherwise: computed in float64
and then rounded to float32 (:class:`WideProducts`; the products' rounding is what batching
changes), giving ``product_rounding_change_over_distance_moved``. A member whose scale, either
of them, reaches the tolerance is trained and reported but not checked, since any two runs that
round differently part that far. In float32 that leaves out, on this CPU, the hinge-type
losses (hinge with clipping, KL- and chi2-hinge, RaGAN), WGAN-GP and, under Adam, the
non-saturating member with spectral norm (the rounding of its products alone moves it by about
1e-3). For WGAN and hinge losses the
loss's gradient with respect to each critic value is the same +-1/n for every sample (the hinge's
while inside the margin), so the bias gradient of a last-hidden-layer unit that stays on one side of the
LeakyReLU's kink over the whole batch cancels between the real and the fake term, leaving rounding
noise that RMSprop and Adam, dividing each gradient by its running size, turn into full-size steps;
for the others the cause has not been traced. In float64 every member is checked. A NaN fails the check.

``--compile-losses`` trains both ways with ``EnsembleConfig(compile_losses=True)`` (the losses
through ``torch.compile``, as ``benchmarks/ensemble.py --compile-losses`` times them): the members'
loss functions are then compiled once for the ensemble and once per member alone, different fused
kernels that must still agree.

Exits 3 if a checked member exceeds its tolerance (2 for bad arguments). ``--out`` writes a JSON
record (temporary file, then renamed) with the command, the machine and every number.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensemble import (command_line, cpu_model, device_argument,  # noqa: E402  (shared with the speed benchmark)
                      float32_matmul_settings, run_main, source_revision)

from gan_lib.files import cannot_write, write_json  # noqa: E402
from gan_lib.train import EnsembleConfig, MemberSpec, train_ensemble  # noqa: E402
from gan_lib.train.ensemble import _init_members  # noqa: E402

MIXED = [
    MemberSpec("non_saturating", seed=11, lr_d=2e-3, lr_g=1e-3, dataset="a"),
    MemberSpec("kl_hinge", seed=12, regulariser="spectral_norm", lr_d=3e-3, lr_g=2e-3, dataset="a"),
    MemberSpec("wgan", seed=13, regulariser="gp", reg_weight=5.0, lr_d=1e-3, dataset="b"),
    MemberSpec("hinge", seed=14, regulariser="clip", clip=0.05, lr_d=4e-3, lr_g=3e-3, dataset="a"),
    MemberSpec("lsgan", seed=15, regulariser="r1", reg_weight=2.0, lr_d=2e-3, dataset="b"),
    MemberSpec("ragan", seed=16, regulariser="spectral_norm", lr_g=5e-3, dataset="b"),
    MemberSpec("fgan_kl", seed=17, loss_options={"clamp": True}, lr_d=1e-3, lr_g=1e-3, dataset="a"),
    MemberSpec("chi2_hinge", seed=18, lr_d=5e-4, lr_g=3e-3, dataset="b"),
    MemberSpec("kl_hinge", seed=19, loss_options={"detach_weights": True}, lr_d=2e-3, dataset="b"),
]
# float32 adds a spectral-norm member the float64 list has only with hinge-type losses
FLOAT32 = MIXED + [MemberSpec("non_saturating", seed=22, regulariser="spectral_norm", lr_d=2e-3, dataset="b")]
TOLERANCE = {"float64": 1e-8, "float32": 1e-4}
NAMES = [f"{net}.{kind}[{layer}]" for net in ("generator", "critic") for layer in range(3) for kind in ("weight", "bias")]


class WideProducts(TorchDispatchMode):
    """Within it, float32 matrix products (the ``aten`` operators ``bmm``, ``baddbmm``, ``mm`` and
    ``addmm``, whatever called them: forward passes, autograd's backward, ``matmul``) are computed in
    float64 and rounded to float32: the same products, rounded once at the end instead of along the
    way. Training a member inside it shows how far a change in the products' rounding alone carries
    that member."""

    OPS = {torch.ops.aten.bmm.default, torch.ops.aten.baddbmm.default, torch.ops.aten.mm.default,
           torch.ops.aten.addmm.default}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if func in self.OPS and tensors and all(t.dtype == torch.float32 for t in tensors):
            wide = [a.double() if isinstance(a, torch.Tensor) else a for a in args]
            return func(*wide, **kwargs).float()
        return func(*args, **kwargs)


def blobs(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """Two Gaussian blobs at (+-2, 0) + shift, sd 0.3, drawn on the CPU (the same points on any device)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0]]) + shift
    return centres[torch.randint(0, 2, (n,), generator=g)] + 0.3 * torch.randn(n, 2, generator=g)


def parameters(result, k: int) -> list[torch.Tensor]:
    """Member ``k``'s generator and raw critic weights and biases, in float64 on the CPU."""
    out = []
    for bank in (result.generator, result.critic):
        for w, b in zip(bank.weights, bank.biases):
            out += [w[k].detach().double().cpu(), b[k].detach().double().cpu()]
    return out


def initial_parameters(specs: list[MemberSpec], cfg: EnsembleConfig) -> list[list[torch.Tensor]]:
    """Each member's weights before training: ``train_ensemble`` draws them on the CPU from a
    generator seeded with the member's seed (its ``_init_members``), whatever the device."""
    gens = [torch.Generator().manual_seed(int(s.seed)) for s in specs]
    generator, critic, _, _ = _init_members(specs, cfg, 2, gens)
    start = SimpleNamespace(generator=generator, critic=critic)  # the two banks, as parameters() reads them
    return [parameters(start, k) for k in range(len(specs))]


def compare(specs: list[MemberSpec], data: dict[str, torch.Tensor], cfg: EnsembleConfig) -> list[dict[str, object]]:
    """Train ``specs`` as one ensemble and one at a time; one row of differences per member."""
    t0 = time.perf_counter()
    together = train_ensemble(specs, data, cfg, progress=False)
    seconds_together = time.perf_counter() - t0
    starts = initial_parameters(specs, cfg)
    # the same data moved by one unit in the last place: how far rounding alone moves each member
    dtype = getattr(torch, cfg.dtype)
    nudged = {name: torch.nextafter(x.to(dtype), torch.full_like(x, float("inf"), dtype=dtype)) for name, x in data.items()}
    rows = []
    for k, spec in enumerate(specs):
        alone = train_ensemble([spec], data, cfg, progress=False)
        got, want = parameters(together, k), parameters(alone, 0)
        other = parameters(train_ensemble([spec], nudged, cfg, progress=False), 0)
        rounded = None
        if dtype == torch.float32:
            with WideProducts():
                rounded = parameters(train_ensemble([spec], data, cfg, progress=False), 0)
        init = [t.to(torch.float64) for t in starts[k]]
        moved = max(float((w - s).abs().max()) for w, s in zip(want, init))
        errors = [float((g - w).abs().max()) for g, w in zip(got, want)]
        err = max(errors)
        where = None if not err > 0 else NAMES[int(np.argmax(errors))] if len(errors) == len(NAMES) else int(np.argmax(errors))
        ulp = max(float((o - w).abs().max()) for o, w in zip(other, want))
        losses_got = np.concatenate([together.history.d_loss[:, k], together.history.g_loss[:, k]])
        losses_want = np.concatenate([alone.history.d_loss[:, 0], alone.history.g_loss[:, 0]])
        loss_err = float(np.max(np.abs(losses_got - losses_want) / np.maximum(np.abs(losses_want), 1e-3)))
        rows.append({"member": k, "loss": spec.loss, "regulariser": spec.regulariser, "dtype": cfg.dtype,
                     "param_error_over_distance_moved": err / moved if moved > 0 else float("inf"),
                     "distance_moved": moved, "loss_relative_error": loss_err,
                     "one_ulp_data_change_over_distance_moved": ulp / moved if moved > 0 else float("inf"),
                     "product_rounding_change_over_distance_moved": None if rounded is None else (
                         max(float((o - w).abs().max()) for o, w in zip(rounded, want)) / moved
                         if moved > 0 else float("inf")),
                     "largest_at": where})
    rows[0]["seconds_ensemble"] = seconds_together
    return rows


def row_over(row: dict[str, object], tol: float) -> bool:
    """Whether a checked row fails: its parameters or its logged losses differ by more than ``tol``
    (a NaN fails)."""
    return bool(row["checked"]) and not (float(row["param_error_over_distance_moved"]) <= tol
                                         and float(row["loss_relative_error"]) <= tol)


def rounding_scale(row: dict[str, object]) -> float:
    """How far rounding alone carries a row's member: the larger of its one-ulp data change and
    its product-rounding change (where measured); NaN if a measured one is NaN."""
    scales = [float(row[key]) for key in ("one_ulp_data_change_over_distance_moved",
                                          "product_rounding_change_over_distance_moved")
              if row.get(key) is not None]
    return float("nan") if any(v != v for v in scales) else max(scales)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=str, default="cpu", help="cpu (default), cuda or cuda:i")
    parser.add_argument("--steps", type=int, default=30, help="generator steps per member (default 30)")
    parser.add_argument("--compile-losses", action="store_true",
                        help="train with EnsembleConfig(compile_losses=True), the ensemble and each member alone")
    parser.add_argument("--out", type=Path, default=None, help="write a JSON record here")
    args = parser.parse_args()
    device = device_argument(parser, args.device)
    if args.steps < 2:
        parser.error(f"--steps={args.steps} must be >= 2")
    if args.out is not None and (why := cannot_write(args.out)) is not None:
        parser.error(f"--out={str(args.out)!r}: {why}")

    matmul_settings = float32_matmul_settings()  # as the measurement starts
    source = source_revision()
    data = {"a": blobs(150, 0), "b": blobs(150, 1, shift=0.5)}
    rows: list[dict[str, object]] = []
    for dtype, optimiser, specs in (("float64", "rmsprop", MIXED), ("float64", "adam", MIXED),
                                    ("float32", "rmsprop", FLOAT32), ("float32", "adam", FLOAT32)):
        common = dict(batch_size=64, n_critic=2, width=16, depth=2, z_dim=2, optimiser=optimiser, betas=(0.5, 0.9),
                      device=str(device), dtype=dtype, compile_losses=args.compile_losses)
        cfg = EnsembleConfig(steps=args.steps, log_every=max(1, args.steps // 5), **common)
        for row in compare(specs, data, cfg):
            row["optimiser"] = optimiser
            # checked unless rounding alone carries the member as far as the tolerance (NaN: checked)
            row["checked"] = not rounding_scale(row) >= TOLERANCE[dtype]
            rows.append(row)

    print(f"{'member':>6s} {'loss':>15s} {'regulariser':>13s} {'dtype':>8s} {'optimiser':>9s}"
          f" {'params err/moved':>17s} {'losses rel err':>15s} {'1-ulp data/moved':>17s} {'products/moved':>15s}"
          f"  largest at")
    failed = 0
    for r in rows:
        tol = TOLERANCE[str(r["dtype"])]
        bad = row_over(r, tol)
        failed += bad
        print(f"{r['member']:6d} {r['loss']:>15s} {str(r['regulariser']):>13s} {r['dtype']:>8s} {r['optimiser']:>9s}"
              f" {r['param_error_over_distance_moved']:17.2e} {r['loss_relative_error']:15.2e}"
              f" {r['one_ulp_data_change_over_distance_moved']:17.2e}"
              f" {'—' if r.get('product_rounding_change_over_distance_moved') is None else format(r['product_rounding_change_over_distance_moved'], '.2e'):>15s}"
              f"  {r['largest_at']}"
              + ("  OVER" if bad else "" if r["checked"] else "  (not checked)"))
    worst = {d: max((max(float(r["param_error_over_distance_moved"]), float(r["loss_relative_error"]))
                     for r in rows if r["dtype"] == d and r["checked"]), default=float("nan"),
                    key=lambda v: float("inf") if v != v else v) for d in TOLERANCE}
    print(f"{device}: largest difference ensemble vs alone: float64 {worst['float64']:.1e} (tolerance "
          f"{TOLERANCE['float64']:.0e}), float32 {worst['float32']:.1e} (tolerance {TOLERANCE['float32']:.0e}); "
          f"{failed} of {sum(bool(r['checked']) for r in rows)} checked rows over")
    if args.out is not None:
        record = {"command": command_line("ensemble_agreement.py"),
                  "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
                  "host": platform.node(), "device": str(device),
                  "python": platform.python_version(),
                  "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
                  "float32_matmul": matmul_settings, "source": source,
                  "steps": args.steps, "compile_losses": args.compile_losses, "tolerance": TOLERANCE, "worst": worst, "rows_over": failed, "rows": rows}
        args.out.resolve().parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, record)
        print(f"wrote {args.out}")
    return 3 if failed else 0


if __name__ == "__main__":
    run_main(main, "ensemble_agreement.py")
