"""A training core you can read in one screen.

``train_gan`` alternates ``d_steps`` discriminator updates with one generator update, using any loss
object with ``.discriminator(d_real, d_fake)`` and ``.generator(d_fake, d_real)`` (see
:mod:`gan_lib.losses`). ``train_discriminator`` trains a critic alone between two fixed samplers.
Callbacks receive ``(step, record)`` every ``log_every`` steps; progress is a ``tqdm`` bar.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

__all__ = ["set_seed", "History", "train_gan", "train_discriminator", "LossLike"]

Sampler = Callable[[int], torch.Tensor]
Callback = Callable[[int, dict[str, float]], None]


class LossLike(Protocol):
    def discriminator(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor: ...

    def generator(self, d_fake: torch.Tensor, d_real: torch.Tensor | None = None) -> torch.Tensor: ...


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch.Generator seeded the same way."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an integer >= 0")
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
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r} must be an integer >= 1")


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
    opt = torch.optim.Adam(disc.parameters(), lr=lr)
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
    ``after_d_step(disc)`` runs after each discriminator step (e.g. weight clipping).
    """
    _check_positive(steps=steps, batch_size=batch_size, d_steps=d_steps, log_every=log_every)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr_g, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr_d, betas=betas)
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
        x_real = sample_real(batch_size)
        d_fake = disc(gen(sample_noise(batch_size)))
        with torch.no_grad():
            d_real = disc(x_real)
        g_loss = loss.generator(d_fake, d_real)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if step % log_every == 0 or step == steps:
            record = {"step": step, "d_loss": d_loss.item(), "g_loss": g_loss.item()}
            history.append(record)
            for cb in callbacks:
                cb(step, record)
    return history
