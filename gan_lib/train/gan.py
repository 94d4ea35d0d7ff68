"""A training core you can read in one screen.

``train_gan`` alternates ``d_steps`` discriminator updates with one generator update, using any loss
object with ``.discriminator(d_real, d_fake)`` and ``.generator(d_fake, d_real)`` (see
:mod:`gan_lib.losses`); a real batch is drawn for the generator step only when the loss says it
needs one (``requires_real_in_generator``, the relativistic losses). ``train_discriminator`` trains
a critic alone between two fixed samplers. Both use Adam through its fused kernel when torch offers
one for the parameters' device and dtype, and torch's default Adam otherwise. Callbacks receive
``(step, record)`` every ``log_every`` steps; progress is a ``tqdm`` bar.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

__all__ = ["set_seed", "History", "train_gan", "train_discriminator", "LossLike"]

logger = logging.getLogger(__name__)

Sampler = Callable[[int], torch.Tensor]
Callback = Callable[[int, dict[str, float]], None]


class LossLike(Protocol):
    """What ``train_gan`` needs of a loss. A loss whose generator half needs the discriminator's
    outputs on a real batch says so with ``requires_real_in_generator = True`` (absent means False)."""

    def discriminator(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor: ...

    def generator(self, d_fake: torch.Tensor, d_real: torch.Tensor | None = None) -> torch.Tensor: ...


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch.Generator seeded the same way."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
        raise ValueError(f"seed={seed!r} must be an integer with 0 <= seed < 2**64")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class History:
    """What a training run logged: one list per key, aligned with ``step``."""

    records: dict[str, list[float]] = field(default_factory=dict)

    def append(self, record: dict[str, float]) -> None:
        for key, value in record.items():
            self.records.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        return self.records[key]

    def last(self, key: str) -> float:
        return self.records[key][-1]


def _check_positive(**values: Any) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r} must be an integer >= 1")


def _check_rate(**values: Any) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name}={v!r} must be a finite number > 0")


@functools.lru_cache(maxsize=None)
def _fused_adam_works(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether this torch has a fused Adam kernel for parameters of ``dtype`` on ``device`` (one trial step)."""
    try:
        p = torch.zeros(1, device=device, dtype=dtype, requires_grad=True)
        p.grad = torch.ones_like(p)
        torch.optim.Adam([p], fused=True).step()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def _adam(params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused kernel where every parameter's device and dtype have one, else torch's default."""
    params = list(params)
    fused = bool(params) and all(_fused_adam_works(d, t) for d, t in {(p.device, p.dtype) for p in params})
    if not fused:
        logger.debug("fused Adam unavailable for these parameters; using torch's default Adam")
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True if fused else None)


def train_discriminator(
    disc: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    sample_real: Sampler,
    sample_fake: Sampler,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    log_every: int = 50,
    callbacks: Iterable[Callback] = (),
    progress: bool = True,
    desc: str = "critic",
) -> History:
    """Minimise ``loss_fn(disc(x_real), disc(x_fake))`` with Adam for ``steps`` steps."""
    _check_positive(steps=steps, batch_size=batch_size, log_every=log_every)
    _check_rate(lr=lr)
    callbacks = tuple(callbacks)
    opt = _adam(disc.parameters(), lr, (0.9, 0.999))
    history = History()
    for step in tqdm(range(1, steps + 1), desc=desc, disable=not progress, mininterval=1.0):
        loss = loss_fn(disc(sample_real(batch_size)), disc(sample_fake(batch_size)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps:
            record = {"step": step, "loss": loss.item()}
            history.append(record)
            for cb in callbacks:
                cb(step, record)
    return history


def train_gan(
    gen: nn.Module,
    disc: nn.Module,
    loss: LossLike,
    sample_real: Sampler,
    sample_noise: Sampler,
    *,
    steps: int,
    batch_size: int = 256,
    d_steps: int = 1,
    lr_g: float = 1e-3,
    lr_d: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    d_penalty: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    after_d_step: Callable[[nn.Module], None] | None = None,
    log_every: int = 50,
    callbacks: Iterable[Callback] = (),
    progress: bool = True,
    desc: str = "GAN",
) -> History:
    """Alternate ``d_steps`` updates of ``disc`` with one update of ``gen`` for ``steps`` generator steps.

    ``d_penalty(disc, x_real, x_fake)`` is added to the discriminator loss (e.g. a gradient penalty);
    ``after_d_step(disc)`` runs after each discriminator step (e.g. weight clipping). The generator
    step draws a real batch (and evaluates ``disc`` on it without gradients) only when
    ``loss.requires_real_in_generator`` is true.
    """
    _check_positive(steps=steps, batch_size=batch_size, d_steps=d_steps, log_every=log_every)
    _check_rate(lr_g=lr_g, lr_d=lr_d)
    callbacks = tuple(callbacks)
    needs_real = bool(getattr(loss, "requires_real_in_generator", False))
    opt_g = _adam(gen.parameters(), lr_g, betas)
    opt_d = _adam(disc.parameters(), lr_d, betas)
    history = History()
    for step in tqdm(range(1, steps + 1), desc=desc, disable=not progress, mininterval=1.0):
        for _ in range(d_steps):
            x_real = sample_real(batch_size)
            with torch.no_grad():
                x_fake = gen(sample_noise(batch_size))
            d_loss = loss.discriminator(disc(x_real), disc(x_fake))
            if d_penalty is not None:
                d_loss = d_loss + d_penalty(disc, x_real, x_fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            if after_d_step is not None:
                after_d_step(disc)
        if needs_real:
            x_real = sample_real(batch_size)
            with torch.no_grad():
                d_real = disc(x_real)
            g_loss = loss.generator(disc(gen(sample_noise(batch_size))), d_real)
        else:
            g_loss = loss.generator(disc(gen(sample_noise(batch_size))))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if step % log_every == 0 or step == steps:
            record = {"step": step, "d_loss": d_loss.item(), "g_loss": g_loss.item()}
            history.append(record)
            for cb in callbacks:
                cb(step, record)
    return history
