"""One training step of ``gan_lib.train.loop.Trainer`` against a bare hand-written PyTorch step.

    python benchmarks/train_step.py [--quick] [--pairs 11] [--steps 10] [--threads 1] [--out FILE]

Both sides train the same DCGAN pair (``gan_lib.nets.image_nets("dcgan", ...)``) with the hinge
loss, one discriminator step per generator step, fused Adam (lr 2e-4, betas (0.5, 0.999)), the same
batch and the same data-order and noise generators, so they do the same arithmetic: on the CPU
their parameters must stay bit-for-bit equal (else the script exits 1). The bare step writes the
hinge loss as two ``relu`` means and does nothing else a careful hand-written loop would not do.

Timing: after a warm-up, each of ``--pairs`` pairs runs ``--steps`` rounds of one step of each side
(which goes first alternates from round to round), and sums each side's times; the summary is the
median over pairs of the ratio library / bare, in wall time and in the thread's CPU time (on a
shared machine the second is the number to read). Images/s is ``batch x steps / wall time``.

On the CPU: fp32 eager (full: 32x32x3 images, widths 16, batch 32, about a minute on one thread;
``--quick``: 8x8x1, widths 16, batch 32, about 10 s). With CUDA, also 32x32x3 at widths 64, batch
128 in three modes: eager fp32, bf16 autocast, and bf16 + ``torch.compile`` + channels_last,
library and bare side by side (on the GPU the parameters are compared, not required equal).
Writes ``benchmarks/results/train_step.json`` (``train_step-quick.json`` with ``--quick``)
atomically and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensemble import command_line, cpu_model, run_main, source_revision  # noqa: E402  (shared with the other benchmarks)

from gan_lib.files import cannot_write, write_json
from gan_lib.nets import image_nets
from gan_lib.train.loop import Trainer, TrainConfig

LR, BETAS, SEED = 2e-4, (0.5, 0.999), 0


class BareStep:
    """The hand-written step: the same nets, loss, optimiser and random streams as the library's."""

    def __init__(self, cfg: TrainConfig, data: torch.Tensor) -> None:
        dev = torch.device(cfg.device)
        fmt = torch.channels_last if cfg.channels_last else torch.preserve_format
        torch.manual_seed(cfg.seed)
        g, d = image_nets("dcgan", image_size=data.shape[-1], channels=data.shape[1], z_dim=cfg.z_dim,
                          g_width=cfg.g_width, d_width=cfg.d_width)
        self.g, self.d = g.to(dev, memory_format=fmt), d.to(dev, memory_format=fmt)
        self.G, self.D = (torch.compile(m) for m in (self.g, self.d)) if cfg.compile else (self.g, self.d)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=LR, betas=BETAS, fused=True)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=LR, betas=BETAS, fused=True)
        self.data, self.b, self.z_dim, self.fmt, self.dev = data.to(dev), cfg.batch_size, cfg.z_dim, fmt, dev
        self.order = torch.Generator().manual_seed(cfg.seed)
        self.perm, self.pos = torch.randperm(len(data), generator=self.order), 0
        self.noise = torch.Generator(dev).manual_seed(cfg.seed + 1)
        bf16 = cfg.precision == "bf16"
        self.amp = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def real(self) -> torch.Tensor:
        if self.pos + self.b > len(self.perm):
            self.perm, self.pos = torch.randperm(len(self.perm), generator=self.order), 0
        self.pos += self.b
        return self.data[self.perm[self.pos - self.b:self.pos].to(self.dev)].contiguous(memory_format=self.fmt)

    def step(self) -> None:
        x = self.real()
        z = torch.randn(self.b, self.z_dim, generator=self.noise, device=self.dev)
        with torch.no_grad(), self.amp():
            fake = self.G(z)
        with self.amp():
            out = self.D(torch.cat([x, fake.to(x.dtype)]))
        d_real, d_fake = out.float().split(self.b)
        d_loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        self.d.requires_grad_(False)
        z = torch.randn(self.b, self.z_dim, generator=self.noise, device=self.dev)
        with self.amp():
            g_loss = -self.D(self.G(z)).float().mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.d.requires_grad_(True)


#: Peers' published throughput, theirs, for the GPU comparison (StudioGAN's CIFAR-10 benchmark, as
#: quoted in the issue that asked for this benchmark): DCGAN 200k generator steps in 5.2 h at batch 64
#: on one TITAN RTX; SNGAN about 3.6 generator steps/s with 5 critic steps per generator step.
PUBLISHED = {
    "StudioGAN DCGAN (TITAN RTX, batch 64)": {"steps_per_s": 200_000 / (5.2 * 3600), "batch": 64},
    "StudioGAN SNGAN (TITAN RTX, batch 64, 5 critic steps)": {"steps_per_s": 3.6, "batch": 64},
}


def run_mode(label: str, cfg: TrainConfig, data: torch.Tensor, pairs: int, steps: int) -> dict:
    lib, bare = Trainer(cfg, data), BareStep(cfg, data)
    cuda = cfg.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def timed(step) -> tuple[float, float]:
        sync()
        t, c = time.perf_counter(), time.thread_time()
        step()
        sync()
        return time.perf_counter() - t, time.thread_time() - c

    for _ in range(3):  # warm-up (and compilation), the same number of steps on both sides
        lib.train_step()
        bare.step()
    rows = []
    for i in range(pairs):  # a pair: `steps` rounds of one step of each side, the order alternating
        total = {"lib": [0.0, 0.0], "bare": [0.0, 0.0]}
        for j in range(steps):
            sides = [("lib", lib.train_step), ("bare", bare.step)]
            for name, fn in sides if (i + j) % 2 == 0 else sides[::-1]:
                wall, cpu = timed(fn)
                total[name][0] += wall
                total[name][1] += cpu
        (lib_s, lib_c), (bare_s, bare_c) = total["lib"], total["bare"]
        rows.append({"lib_s": lib_s, "bare_s": bare_s, "ratio": lib_s / bare_s, "cpu_ratio": lib_c / bare_c})
    mine = [*lib.gen.state_dict().values(), *lib.disc.state_dict().values()]
    ref = [*bare.g.state_dict().values(), *bare.d.state_dict().values()]
    diff = max((a.float() - b.float()).abs().max().item() for a, b in zip(mine, ref))
    images = cfg.batch_size * steps
    summary = {
        "mode": label, "device": cfg.device, "image": list(data.shape[1:]), "batch": cfg.batch_size,
        "widths": cfg.g_width, "median_ratio": statistics.median(r["ratio"] for r in rows),
        "median_cpu_ratio": statistics.median(r["cpu_ratio"] for r in rows),
        "min_ratio": min(r["ratio"] for r in rows), "max_ratio": max(r["ratio"] for r in rows),
        "lib_images_per_s": statistics.median(images / r["lib_s"] for r in rows),
        "bare_images_per_s": statistics.median(images / r["bare_s"] for r in rows),
        "max_abs_param_diff": diff, "bit_equal": diff == 0.0,
    }
    print(f"{label:28s} ratio {summary['median_ratio']:6.3f} (cpu {summary['median_cpu_ratio']:6.3f}, "
          f"{summary['min_ratio']:.3f}-{summary['max_ratio']:.3f})  images/s lib {summary['lib_images_per_s']:9.1f} "
          f"bare {summary['bare_images_per_s']:9.1f}  max |diff| {diff:.1e}", flush=True)
    return {"summary": summary, "pairs": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small images and few pairs (about 10 s)")
    parser.add_argument("--pairs", type=int, default=None, help="interleaved pairs per mode (default 11, quick 7)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed run (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU, >= 1")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/train_step[-quick].json)")
    args = parser.parse_args(argv)
    pairs = args.pairs if args.pairs is not None else (7 if args.quick else 11)
    steps = args.steps if args.steps is not None else 10
    for name, v in (("pairs", pairs), ("steps", steps), ("threads", args.threads)):
        if v < 1:
            parser.error(f"--{name}={v} must be >= 1")
    out = args.out or Path(__file__).parent / "results" / ("train_step-quick.json" if args.quick else "train_step.json")
    if (why := cannot_write(out)) is not None:  # before the measurement, not after
        parser.error(f"--out={str(out)!r}: {why}")
    source = source_revision()
    torch.set_num_threads(args.threads)
    size, ch, width, batch = (8, 1, 16, 32) if args.quick else (32, 3, 16, 32)
    common = dict(loss="hinge", n_critic=1, z_dim=64, lr_g=LR, lr_d=LR, betas=BETAS, seed=SEED, progress=False)
    data = torch.rand((1024, ch, size, size), generator=torch.Generator().manual_seed(1)) * 2 - 1
    modes = [run_mode("cpu fp32 eager", TrainConfig(g_width=width, d_width=width, batch_size=batch, **common),
                      data, pairs, steps)]
    if torch.cuda.is_available():
        cifar = torch.rand((4096, 3, 32, 32), generator=torch.Generator().manual_seed(1)) * 2 - 1
        gpu = dict(common, device="cuda", g_width=64, d_width=64, batch_size=128)
        for label, extra in (("cuda fp32 eager", {}), ("cuda bf16", dict(precision="bf16")),
                             ("cuda bf16+compile+channels_last", dict(precision="bf16", compile=True, channels_last=True))):
            modes.append(run_mode(label, TrainConfig(**gpu, **extra), cifar, pairs, steps))
    record = {"args": {**vars(args), "out": str(out), "pairs": pairs, "steps": steps},
              "command": command_line("train_step.py", argv),
              "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": source,
              "torch": torch.__version__, "python": platform.python_version(), "cpu_model": cpu_model(),
              "host": platform.node(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
              "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
              "modes": [m["summary"] for m in modes], "pairs": {m["summary"]["mode"]: m["pairs"] for m in modes},
              "published_theirs": PUBLISHED}
    if torch.cuda.is_available():
        for m in modes[1:]:
            sm = m["summary"]
            print(f"{sm['mode']:>34}: {sm['lib_images_per_s'] / sm['batch']:7.2f} generator steps/s at batch {sm['batch']} (ours)")
        for name, ref in PUBLISHED.items():
            print(f"{name:>34}: {ref['steps_per_s']:7.2f} generator steps/s at batch {ref['batch']} (theirs, published)")
    out.resolve().parent.mkdir(parents=True, exist_ok=True)
    write_json(out, record)
    print(f"wrote {out}")
    cpu = modes[0]["summary"]
    if not cpu["bit_equal"]:
        print("the library step and the bare step disagree on the CPU: they are not doing the same work", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main, "train_step.py")
