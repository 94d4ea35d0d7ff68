r"""The image-scale training core: one config, one loop, checkpoints that resume bit for bit.

>>> from gan_lib.train.loop import TrainConfig, train
>>> cfg = TrainConfig(loss="hinge", regulariser="spectral_norm", steps=2000, out_dir="runs/sn")
>>> run = train(cfg, images)            # images: (N, C, H, W) float in [-1, 1] or uint8
>>> run.sampler(z)                      # the EMA generator when ema > 0, else the generator

:class:`TrainConfig` is a plain dataclass whose fields are a chapter's papermill parameters;
``TrainConfig.from_dict(d)`` refuses unknown keys and ill-typed values. :class:`Trainer` holds the
networks, optimisers and RNG streams; ``Trainer.train_step()`` is one generator update after
``n_critic`` discriminator updates, and ``Trainer.fit()`` repeats it with logging, sample grids and
checkpoints. ``train(cfg, data)`` is both in one call.

One step, for a loss ``L`` from :func:`gan_lib.losses.get` (both halves minimised):

* ``n_critic`` times: a real batch ``x``, noise ``z``; ``x_f = G(z)`` without gradients;
  ``D`` on ``[x; x_f]`` in one call; ``L_D = L.discriminator(D(x), D(x_f))`` plus the penalty
  (``"gp"``: :func:`~gan_lib.losses.gradient_penalty`, ``"r1"``: :func:`~gan_lib.losses.r1_penalty`,
  weight ``reg_weight``); one optimiser step; ``"clip"`` clamps D's weights to ``±reg_weight``.
  ``"spectral_norm"`` wraps D's layers once at the start.
* the generator: ``L_G = L.generator(D(G(z))[, D(x)])`` with D's parameters frozen; one step; the
  EMA copy moves ``θ_ema ← β θ_ema + (1 - β) θ_G`` (``β = ema``; buffers copied).

Precision: ``"bf16"`` / ``"fp16"`` run the networks under ``torch.autocast`` (weights stay fp32);
the losses are computed in fp32 from the outputs cast up; fp16 uses a ``GradScaler`` per optimiser.
The penalties are computed with autocast *off* on fp32 copies of the inputs (:func:`fp32_penalty`):
the interpolates' critic output, the input gradient, its norm and the penalty's double backward are
fp32. Computed inside the fp16 autocast region instead, the double backward runs in fp16 and, at a
GradScaler's initial scale 2^16, every parameter gradient above 1 overflows to ``inf`` (the step is
skipped and the scale cut until the penalty fits, starving the loss's own gradients); under bf16
the 8-bit mantissa puts percent errors on ``(‖∇‖ - 1)^2`` near ``‖∇‖ = 1`` (both tested).

Randomness: the data order (a fresh permutation per epoch, tail dropped), the noise and the
penalties' interpolation weights each have their own ``torch.Generator`` seeded from ``seed``.
Checkpoints (``out_dir/ckpt-<step>.pt``, every ``checkpoint_every`` steps and at the end; the last
``keep_last`` kept) hold the config, networks, EMA, optimisers, scalers, the logged history and
every RNG state (these generators, torch CPU / CUDA, NumPy, Python) with the position in the data
order. Each is written to a hidden temporary file, flushed to disk, then renamed (``os.replace``),
so a run killed while writing leaves the previous checkpoint as the newest. With ``resume=True``
the run continues from the newest checkpoint, and on the CPU ends with bit-for-bit the weights of
an uninterrupted run. SIGINT / SIGTERM finish the current step, write a checkpoint and raise
``KeyboardInterrupt``.

Several processes: launched by ``torchrun`` (``WORLD_SIZE`` set), the trainer joins the process
group (gloo on CPU, nccl on CUDA), wraps both networks in ``DistributedDataParallel`` and each
rank takes its slice of the global batch ``batch_size``. Every rank draws the global batch's data
indices and noise from the same generators and keeps its slice, so the union over ranks is the
single-process batch and, for a loss that is a mean of per-sample terms and networks without batch
norm across the batch (``g_batch_norm=False``), the update equals the single-process one up to
float rounding. Losses with batch statistics (``ragan``, ``kl_hinge``), generator batch norm and
the gradient penalty's interpolation weights (drawn per rank) differ from the single-process run.
Several nodes resume from a checkpoint only when ``out_dir`` is on a file system they share.
``python -m gan_lib.train.loop config.json data.pt`` runs one config on a saved tensor (under
``torchrun`` too).

A fresh run (``resume=False``) refuses an ``out_dir`` that holds checkpoints of an earlier run.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import logging
import math
import os
import random
import re
import signal
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from gan_lib import losses
from gan_lib.files import TEMP_MARK, atomic_open, write_text
from gan_lib.losses.regularisers import apply_spectral_norm, clip_weights_, gradient_penalty, r1_penalty
from gan_lib.nets.conv import image_nets
from gan_lib.nets.mlp import mlp
from gan_lib.validation import boolean, integer_number, is_real, one_of, real_number

__all__ = [
    "TrainConfig",
    "Trainer",
    "train",
    "build_nets",
    "latest_checkpoint",
    "save_image_grid",
    "fp32_penalty",
    "REGULARISERS",
    "PRECISIONS",
    "OPTIMISERS",
    "NETS",
    "LOG_FORMATS",
    "COMPILE_BACKENDS",
    "RESUMABLE_CHANGES",
]

logger = logging.getLogger(__name__)

REGULARISERS: tuple[str, ...] = ("none", "gp", "r1", "spectral_norm", "clip")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
OPTIMISERS: tuple[str, ...] = ("adam", "rmsprop")
NETS: tuple[str, ...] = ("dcgan", "resnet", "mlp")
LOG_FORMATS: tuple[str, ...] = ("csv", "jsonl")
COMPILE_BACKENDS: tuple[str, ...] = ("inductor", "aot_eager", "eager")
#: Config fields a resumed run may change; any other difference from the checkpoint's config is refused.
RESUMABLE_CHANGES: tuple[str, ...] = (
    "steps", "resume", "progress", "out_dir", "checkpoint_every", "keep_last", "sample_every", "log_every",
)
_CKPT = re.compile(r"^ckpt-(\d+)\.pt$")


def _device_name(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise ValueError("must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return value


def _betas(value: Any) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(is_real(b) and 0 <= b < 1 for b in value):
        raise ValueError("must be two real numbers in [0, 1), e.g. (0.5, 0.999)")
    return (float(value[0]), float(value[1]))


def _positive(value: Any) -> float:
    if not (real_number(value) > 0):
        raise ValueError("must be a finite real number > 0")
    return float(value)


def _non_negative(value: Any) -> float:
    if not (real_number(value) >= 0):
        raise ValueError("must be a finite real number >= 0")
    return float(value)


def _decay(value: Any) -> float:
    if not (0 <= real_number(value) < 1):
        raise ValueError("must be a real number in [0, 1) (0 turns the EMA off)")
    return float(value)


def _options(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError("must be a dict of option name -> value")
    return dict(value)


def _int(lo: int) -> Callable[[Any], int]:
    return lambda v: integer_number(v, lo)


def _text(value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError("must be a path (a string; '' writes nothing)")
    return os.fspath(value)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "loss": one_of(*losses.names()),
    "loss_options": _options,
    "regulariser": one_of(*REGULARISERS),
    "reg_weight": _non_negative,
    "n_critic": _int(1),
    "nets": one_of(*NETS),
    "z_dim": _int(1),
    "g_width": _int(1),
    "d_width": _int(1),
    "g_batch_norm": boolean,
    "optimiser": one_of(*OPTIMISERS),
    "lr_g": _positive,
    "lr_d": _positive,
    "betas": _betas,
    "batch_size": _int(1),
    "steps": _int(1),
    "ema": _decay,
    "precision": one_of(*PRECISIONS),
    "compile": boolean,
    "compile_backend": one_of(*COMPILE_BACKENDS),
    "channels_last": boolean,
    "device": _device_name,
    "seed": lambda v: integer_number(v, 0, 2**63 - 1),
    "out_dir": _text,
    "log_format": one_of(*LOG_FORMATS),
    "log_every": _int(1),
    "sample_every": _int(0),
    "checkpoint_every": _int(0),
    "keep_last": _int(1),
    "resume": boolean,
    "progress": boolean,
}


@dataclass
class TrainConfig:
    """Every knob of a run; the fields are a chapter's papermill parameters (validated on creation).

    Game: ``loss`` (a name of :func:`gan_lib.losses.names`) with ``loss_options``; ``regulariser``
    one of :data:`REGULARISERS` with ``reg_weight`` (``gp``: λ, ``r1``: γ, ``clip``: c; unused by
    ``none`` and ``spectral_norm``); ``n_critic`` discriminator steps per generator step.
    Networks (when :class:`Trainer` builds them, :func:`build_nets`): ``nets`` ``"dcgan"`` /
    ``"resnet"`` for images, ``"mlp"`` for flat data; ``z_dim``, ``g_width``, ``d_width``,
    ``g_batch_norm``. Optimisation: ``optimiser`` ``"adam"`` (``betas``) or ``"rmsprop"`` (torch's
    defaults besides the rate), ``lr_g``, ``lr_d``, global ``batch_size``, ``steps`` generator
    steps, ``ema`` decay of the generator's average (0: off). Speed: ``precision``, ``compile``
    (``torch.compile`` with ``compile_backend``), ``channels_last``, ``device`` (``"auto"`` picks
    CUDA when there is one). Output (nothing is written when ``out_dir`` is ``""``): ``log_format``
    (``metrics.csv`` / ``metrics.jsonl``) every ``log_every`` steps, a PNG grid of 64 samples every
    ``sample_every`` steps (0: never), a checkpoint every ``checkpoint_every`` steps (0: never) and
    at the end, the last ``keep_last`` kept; ``resume`` continues from the newest checkpoint;
    ``progress`` shows a tqdm bar.
    """

    loss: str = "hinge"
    loss_options: dict[str, Any] = field(default_factory=dict)
    regulariser: str = "none"
    reg_weight: float = 10.0
    n_critic: int = 1
    nets: str = "dcgan"
    z_dim: int = 128
    g_width: int = 64
    d_width: int = 64
    g_batch_norm: bool = True
    optimiser: str = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 64
    steps: int = 1000
    ema: float = 0.0
    precision: str = "fp32"
    compile: bool = False
    compile_backend: str = "inductor"
    channels_last: bool = False
    device: str = "cpu"
    seed: int = 0
    out_dir: str = ""
    log_format: str = "csv"
    log_every: int = 1
    sample_every: int = 0
    checkpoint_every: int = 0
    keep_last: int = 3
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name, check in _CHECKS.items():
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, check(value))
            except ValueError as err:
                raise ValueError(f"TrainConfig.{name}={value!r} is not allowed: {err}") from None
        try:
            losses.get(self.loss, **self.loss_options)
        except ValueError as err:
            raise ValueError(f"TrainConfig.loss_options={self.loss_options!r} is not allowed: {err}") from None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The fields, in order (a notebook picks its parameters with
        ``TrainConfig.from_dict({k: globals()[k] for k in TrainConfig.field_names() if k in globals()})``)."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """A config from a mapping (e.g. a notebook's parameters): unknown keys are refused by name."""
        names = cls.field_names()
        unknown = [k for k in d if k not in names]
        if unknown:
            raise ValueError(f"TrainConfig has no field {unknown[0]!r}; allowed fields: {', '.join(names)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what checkpoints store)."""
        return asdict(self)


def build_nets(config: TrainConfig, sample_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator ``config.nets`` names, for samples of shape ``sample_shape``.

    Images ``(C, H, W)`` with ``H == W`` take ``"dcgan"`` or ``"resnet"``
    (:func:`gan_lib.nets.image_nets`); flat data ``(d,)`` takes ``"mlp"`` (two hidden layers).
    Every discriminator returns shape ``(n,)``.
    """
    shape = tuple(sample_shape)
    if config.nets == "mlp":
        if len(shape) != 1:
            raise ValueError(f"nets='mlp' needs flat samples of shape (d,); got {shape} (use 'dcgan' or 'resnet' for images)")
        return mlp(config.z_dim, shape[0], config.g_width), nn.Sequential(mlp(shape[0], 1, config.d_width), nn.Flatten(0))
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"nets={config.nets!r} needs square images of shape (C, H, H); got {shape} (use 'mlp' for flat data)")
    return image_nets(config.nets, image_size=shape[1], channels=shape[0], z_dim=config.z_dim, g_width=config.g_width,
                      d_width=config.d_width, batch_norm=config.g_batch_norm)


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint ``ckpt-<step>.pt`` in ``out_dir`` (temporary files ignored), or None."""
    found = [(int(m.group(1)), p) for p in Path(out_dir).glob("ckpt-*.pt") if (m := _CKPT.match(p.name))]
    return max(found)[1] if found else None


def save_image_grid(images: Tensor, path: str | os.PathLike, nrow: int = 8, padding: int = 2, scale: int | None = None) -> Path:
    """Write ``images`` ``(n, C, H, W)`` in ``[-1, 1]`` (C = 1 or 3) as one PNG grid, ``nrow`` per row.

    ``scale`` repeats pixels (default: enough for cells of at least 32 pixels). Written atomically.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (n, 1 or 3, H, W); got {tuple(images.shape)}")
    from PIL import Image

    n, c, h, w = images.shape
    scale = scale or max(1, math.ceil(32 / h))
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    x = x.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    ch, cw = h * scale + padding, w * scale + padding
    grid = torch.full((c, rows * ch + padding, cols * cw + padding), 255, dtype=torch.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, padding + r * ch: padding + r * ch + h * scale, padding + q * cw: padding + q * cw + w * scale] = x[i]
    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if c == 1 else array)
    path = Path(path)
    with atomic_open(path, "wb") as f:
        image.save(f, format="PNG")
    return path


def fp32_penalty(regulariser: str, critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, weight: float,
                 generator: torch.Generator | None = None) -> Tensor | None:
    r"""The discriminator penalty of ``regulariser`` computed in fp32 with autocast off, or None.

    ``"gp"``: :func:`~gan_lib.losses.gradient_penalty` (``weight`` = λ, interpolation weights from
    ``generator``); ``"r1"``: :func:`~gan_lib.losses.r1_penalty` (``weight`` = γ); other
    regularisers have no penalty. ``real`` and ``fake`` are cast to fp32 and the critic runs in fp32
    (its weights are fp32 under autocast), so the input gradient, its norm, and the penalty's own
    backward pass are fp32 whatever autocast region the call sits in. Called inside an fp16
    autocast region, the same penalty's double backward runs in fp16, and under a GradScaler's
    initial scale 2^16 any parameter gradient above 1 overflows to ``inf``; under bf16 the 8-bit
    mantissa makes ``(‖∇‖ - 1)^2`` wrong by percents near ``‖∇‖ = 1`` (tests/test_train_loop.py).
    """
    if regulariser not in ("gp", "r1"):
        return None
    device = real.device.type
    with torch.autocast(device, enabled=False):
        if regulariser == "gp":
            return gradient_penalty(critic, real.float(), fake.float(), weight, generator=generator)
        return r1_penalty(critic, real.float(), weight)


class _EpochOrder:
    """Indices of the data in a fresh random order each epoch; the tail shorter than a batch is dropped."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.rng = n, torch.Generator().manual_seed(seed)
        self.perm, self.pos = torch.randperm(n, generator=self.rng), 0

    def take(self, k: int) -> Tensor:
        if self.pos + k > self.n:
            self.perm, self.pos = torch.randperm(self.n, generator=self.rng), 0
        self.pos += k
        return self.perm[self.pos - k: self.pos]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, s: Mapping[str, Any]) -> None:
        self.rng.set_state(s["rng"])
        self.perm, self.pos = s["perm"].clone(), int(s["pos"])


@contextlib.contextmanager
def _stop_flag() -> Iterator[list[int]]:
    """``[signum]`` once SIGINT or SIGTERM arrived (0 before); a second signal interrupts at once."""
    flag = [0]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = signum

    for s in previous:
        signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _optimiser(config: TrainConfig, params: Iterable[Tensor], lr: float) -> torch.optim.Optimizer:
    params = list(params)
    if config.optimiser == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    try:  # the fused kernel where this torch has one for these parameters, else the default
        return torch.optim.Adam(params, lr=lr, betas=config.betas, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=config.betas)


Callback = Callable[["Trainer", dict[str, float]], None]


class Trainer:
    """A GAN run: networks, optimisers, scalers, EMA, RNG streams, history (see the module docstring).

    ``data`` is a tensor ``(N, ...)`` of real samples (float, images in ``[-1, 1]``, or ``uint8``
    images mapped to ``[-1, 1]`` batch by batch); it is moved to the device once. ``gen`` / ``disc``
    replace the networks :func:`build_nets` would build (``disc`` must return shape ``(n,)``).
    ``callbacks`` are called as ``cb(trainer, record)`` at every logged step; ``record`` has
    ``step``, ``d_loss``, ``g_loss`` (and ``penalty`` with ``gp`` / ``r1``), averaged over ranks.
    """

    def __init__(self, config: TrainConfig | Mapping[str, Any], data: Tensor, *, gen: nn.Module | None = None,
                 disc: nn.Module | None = None, callbacks: Iterable[Callback] = ()) -> None:
        cfg = self.config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        if not isinstance(data, Tensor) or data.ndim < 2 or not (data.is_floating_point() or data.dtype == torch.uint8):
            raise TypeError("data must be a float or uint8 tensor of shape (N, ...) with N samples")
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want = "cuda" if cfg.device == "auto" and torch.cuda.is_available() else ("cpu" if cfg.device == "auto" else cfg.device)
        if want == "cuda":
            want = f"cuda:{local_rank}"
        self.device = torch.device(want)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"TrainConfig.device={cfg.device!r} but torch sees no CUDA device; use 'cpu' or 'auto'")
        self._owns_group = self.world > 1 and not dist.is_initialized()
        if self._owns_group:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.rank = dist.get_rank() if self.world > 1 else 0
        if cfg.batch_size % self.world or len(data) < cfg.batch_size:
            raise ValueError(f"batch_size={cfg.batch_size} must be a multiple of the {self.world} processes and <= the {len(data)} samples")
        self.local_batch = cfg.batch_size // self.world
        self.loss = losses.get(cfg.loss, **cfg.loss_options)
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        if gen is None or disc is None:
            built = build_nets(cfg, tuple(data.shape[1:]))
            gen = built[0] if gen is None else gen
            disc = built[1] if disc is None else disc
        if cfg.regulariser == "spectral_norm":
            apply_spectral_norm(disc)
        fmt = torch.channels_last if cfg.channels_last and data.ndim == 4 else torch.preserve_format
        self.memory_format = fmt
        self.gen, self.disc = gen.to(self.device, memory_format=fmt), disc.to(self.device, memory_format=fmt)
        self.data = data.to(self.device)
        self.ema = copy.deepcopy(self.gen).eval().requires_grad_(False) if cfg.ema > 0 else None
        self.opt_g = _optimiser(cfg, self.gen.parameters(), cfg.lr_g)
        self.opt_d = _optimiser(cfg, self.disc.parameters(), cfg.lr_d)
        fp16 = cfg.precision == "fp16"
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=fp16)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        self._autocast = (lambda: torch.autocast(self.device.type, dtype=dtype)) if dtype else contextlib.nullcontext
        self.order = _EpochOrder(len(data), cfg.seed)
        self.noise_rng = torch.Generator(self.device).manual_seed(cfg.seed + 1)
        self.penalty_rng = torch.Generator(self.device).manual_seed(cfg.seed + 2 + 1000 * self.rank)
        self.fixed_z = torch.randn(64, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 3)).to(self.device)
        # the callables a step uses: DDP-wrapped (several processes) and compiled (compile=True)
        G, D, D_frozen = self.gen, self.disc, self.disc
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            G = nn.parallel.DistributedDataParallel(G, device_ids=ids)
            D = nn.parallel.DistributedDataParallel(D, device_ids=ids)
        if cfg.compile:
            G, D, D_frozen = (torch.compile(m, backend=cfg.compile_backend) for m in (G, D, D_frozen))
        self._G, self._D, self._D_frozen = G, D, D_frozen
        self.callbacks = tuple(callbacks)
        self.step, self.history = 0, []
        self.out_dir = Path(cfg.out_dir) if cfg.out_dir else None
        if self.out_dir is not None and self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if cfg.resume:
            self.load_latest()
        elif self.out_dir is not None:
            if latest_checkpoint(self.out_dir) is not None:
                raise ValueError(f"out_dir={cfg.out_dir!r} holds checkpoints of an earlier run; pass resume=True to "
                                 f"continue it, or choose another out_dir")
            if self.rank == 0:
                self._rewrite_log()  # no rows from an earlier run that left no checkpoint

    # ---------------------------------------------------------------------------------------
    def sampler(self, z: Tensor) -> Tensor:
        """Samples from the EMA generator (``ema > 0``) or the generator, in eval mode, no gradients."""
        g = self.ema if self.ema is not None else self.gen
        was_training = g.training
        with torch.no_grad():
            g.eval()
            try:
                return g(z.to(self.device))
            finally:
                g.train(was_training)

    def _real(self) -> Tensor:
        idx = self.order.take(self.config.batch_size)[self.rank * self.local_batch:(self.rank + 1) * self.local_batch]
        x = self.data[idx.to(self.device)]
        if x.dtype == torch.uint8:
            x = x.float().div_(127.5).sub_(1.0)
        return x.contiguous(memory_format=self.memory_format)

    def _noise(self) -> Tensor:
        z = torch.randn(self.config.batch_size, self.config.z_dim, generator=self.noise_rng, device=self.device)
        return z[self.rank * self.local_batch:(self.rank + 1) * self.local_batch]

    def train_step(self) -> dict[str, Tensor]:
        """``n_critic`` discriminator steps, then one generator step (and the EMA); returns the losses (tensors)."""
        cfg, b = self.config, self.local_batch
        self.disc.requires_grad_(True)
        for _ in range(cfg.n_critic):
            x_real, z = self._real(), self._noise()
            with torch.no_grad(), self._autocast():
                x_fake = self._G(z)
            with self._autocast():
                d_out = self._D(torch.cat([x_real, x_fake.to(x_real.dtype)]))
            d_real, d_fake = d_out.float().split(b)
            d_loss = self.loss.discriminator(d_real, d_fake)
            penalty = fp32_penalty(cfg.regulariser, self.disc, x_real, x_fake, cfg.reg_weight, self.penalty_rng)
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(d_loss if penalty is None else d_loss + penalty).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()
            if cfg.regulariser == "clip":
                clip_weights_(self.disc, cfg.reg_weight)
        self.disc.requires_grad_(False)
        z = self._noise()
        with self._autocast():
            d_fake = self._D_frozen(self._G(z)).float()
            d_real = None
            if self.loss.requires_real_in_generator:
                with torch.no_grad():
                    d_real = self._D_frozen(self._real()).float()
        g_loss = self.loss.generator(d_fake, d_real)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(g_loss).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        if self.ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(self.ema.parameters()), list(self.gen.parameters()), 1.0 - cfg.ema)
                for e, g in zip(self.ema.buffers(), self.gen.buffers()):
                    e.copy_(g)
        self.step += 1
        out = {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}
        if penalty is not None:
            out["penalty"] = penalty.detach()
        return out

    def fit(self) -> "Trainer":
        """Train until ``config.steps``: log, draw sample grids, write checkpoints, call callbacks."""
        cfg, main = self.config, self.rank == 0
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"{cfg.loss}/{cfg.regulariser}", disable=not (cfg.progress and main),
                   mininterval=1.0)
        with _stop_flag() as stop, bar:
            while self.step < cfg.steps:
                out = self.train_step()
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    record = self._record(out)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k != "step"}, refresh=False)
                    for cb in self.callbacks:
                        cb(self, record)
                if main and self.out_dir is not None and cfg.sample_every and self.step % cfg.sample_every == 0 \
                        and self.data.ndim == 4 and self.data.shape[1] in (1, 3):
                    save_image_grid(self.sampler(self.fixed_z), self.out_dir / f"samples-{self.step:08d}.png")
                stopping = self._agree(stop[0])
                if self.out_dir is not None and (stopping or self.step == cfg.steps or (
                        cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)):
                    self.save_checkpoint()
                if stopping:
                    raise KeyboardInterrupt(f"stopped by signal {stopping} after step {self.step}"
                                            + (f"; checkpoint in {self.out_dir}" if self.out_dir else ""))
        return self

    def _agree(self, signum: int) -> int:
        """The largest signal number seen by any rank (so every rank stops after the same step)."""
        if self.world == 1:
            return signum
        t = torch.tensor([signum], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def _record(self, out: dict[str, Tensor]) -> dict[str, float]:
        values = torch.stack([v.float() for v in out.values()])
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        record = {"step": self.step, **dict(zip(out, values.tolist()))}
        self.history.append(record)
        if self.rank == 0 and self.out_dir is not None:
            path = self.out_dir / f"metrics.{self.config.log_format}"
            new = not path.exists()
            with open(path, "a", newline="") as f:
                if self.config.log_format == "jsonl":
                    f.write(json.dumps(record) + "\n")
                else:
                    writer = csv.DictWriter(f, fieldnames=list(record))
                    if new:
                        writer.writeheader()
                    writer.writerow(record)
        return record

    # ---------------------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
            "python": random.getstate(),
            "noise": self.noise_rng.get_state(),
            "penalty": self.penalty_rng.get_state(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: config, step, history, weights, optimisers, scalers, RNG states
        of every rank (gathered on all ranks) and the data order."""
        rng = [self._rng_state()]
        if self.world > 1:
            rng = [None] * self.world
            dist.all_gather_object(rng, self._rng_state())
        return {
            "config": self.config.to_dict(), "step": self.step, "world_size": self.world, "history": list(self.history),
            "gen": self.gen.state_dict(), "disc": self.disc.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
            "data_order": self.order.state_dict(), "rng": rng,
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``ckpt-<step>.pt`` atomically (rank 0), keep the newest ``keep_last``; returns its path."""
        if self.out_dir is None:
            raise ValueError("save_checkpoint needs config.out_dir (it is '')")
        state = self.state_dict()  # collective under several processes
        if self.rank != 0:
            return None
        path = self.out_dir / f"ckpt-{self.step:08d}.pt"
        with atomic_open(path, "wb", fsync=True) as f:
            torch.save(state, f)
        found = sorted((int(m.group(1)), p) for p in self.out_dir.glob("ckpt-*.pt") if (m := _CKPT.match(p.name)))
        for _, old in found[:-self.config.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def load_latest(self) -> Path | None:
        """Continue from the newest checkpoint in ``out_dir`` (None and a fresh start when there is none)."""
        if self.out_dir is None:
            raise ValueError("resume=True needs config.out_dir (it is '')")
        path = latest_checkpoint(self.out_dir)
        if path is None:
            logger.info("no checkpoint in %s: starting from step 0", self.out_dir)
            return None
        s = torch.load(path, map_location="cpu", weights_only=True)
        saved, now = s["config"], self.config.to_dict()
        saved["betas"] = tuple(saved["betas"])
        changed = [k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
        if changed or s["world_size"] != self.world:
            what = ", ".join(f"{k}={saved.get(k)!r} -> {now[k]!r}" for k in changed) or f"world size {s['world_size']} -> {self.world}"
            raise ValueError(f"cannot resume from {path}: {what}; only {', '.join(RESUMABLE_CHANGES)} may change")
        self.gen.load_state_dict(s["gen"])
        self.disc.load_state_dict(s["disc"])
        if self.ema is not None:
            self.ema.load_state_dict(s["ema"])
        for name in ("opt_g", "opt_d", "scaler_g", "scaler_d"):
            getattr(self, name).load_state_dict(s[name])
        self.order.load_state_dict(s["data_order"])
        r = s["rng"][self.rank]
        torch.set_rng_state(r["torch"])
        if r["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(r["cuda"], self.device)
        kind, keys, pos, has_gauss, cached = r["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        random.setstate(r["python"])
        self.noise_rng.set_state(r["noise"])
        self.penalty_rng.set_state(r["penalty"])
        self.step, self.history = int(s["step"]), list(s["history"])
        if self.rank == 0:
            self._rewrite_log()
            for tmp in self.out_dir.glob(f".ckpt-*.{TEMP_MARK}-*"):
                tmp.unlink(missing_ok=True)
        logger.info("resumed from %s at step %d", path, self.step)
        return path

    def _rewrite_log(self) -> None:
        """The metrics file as of the checkpoint (rows a killed run logged after it are dropped)."""
        path = self.out_dir / f"metrics.{self.config.log_format}"
        if not self.history:
            path.unlink(missing_ok=True)
            return
        buf = io.StringIO()
        if self.config.log_format == "jsonl":
            buf.writelines(json.dumps(r) + "\n" for r in self.history)
        else:
            writer = csv.DictWriter(buf, fieldnames=list(self.history[0]))
            writer.writeheader()
            writer.writerows(self.history)
        write_text(path, buf.getvalue(), fsync=True)

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False


def train(config: TrainConfig | Mapping[str, Any], data: Tensor, **kwargs: Any) -> Trainer:
    """``Trainer(config, data, **kwargs).fit()``, leaving the process group afterwards; returns the trainer."""
    trainer = Trainer(config, data, **kwargs)
    try:
        return trainer.fit()
    finally:
        trainer.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m gan_lib.train.loop CONFIG.json DATA.pt [key=json-value ...]`` (also under torchrun)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gan_lib.train.loop", description=main.__doc__)
    parser.add_argument("config", help="JSON file of TrainConfig fields")
    parser.add_argument("data", help="a tensor (N, ...) saved with torch.save")
    parser.add_argument("overrides", nargs="*", help="field=value, the value in JSON (e.g. steps=100 resume=true)")
    args = parser.parse_args(argv)
    d = json.loads(Path(args.config).read_text())
    for item in args.overrides:
        key, _, value = item.partition("=")
        d[key] = json.loads(value)
    train(TrainConfig.from_dict(d), torch.load(args.data, weights_only=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
