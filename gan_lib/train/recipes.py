"""The book's small GAN runs, each written once: seed every RNG, build a generator and an MLP
discriminator, train them with :func:`~gan_lib.train.gan.train_gan` on noise ``z ~ N(0, I)``.

- :func:`fit_location_scale` -- the 1-D generator ``G(z) = mu + sigma z``, whose density (and so
  every divergence it reaches) is known exactly; it records the path of ``(mu, sigma)``.
- :func:`fit_mlp_gan` -- an MLP generator from noise of the data's dimension.

With the same seed and arguments a run is the same run: the seed is set before any network is built,
so the initial weights, the batches and the noise are reproduced.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from gan_lib.nets import LocationScale, mlp

from .gan import LossLike, set_seed, train_gan

__all__ = ["fit_location_scale", "fit_mlp_gan"]

Sampler = Callable[[int], torch.Tensor]


class _WithSquare(nn.Module):
    """``x -> (x, x^2)`` on the last axis: lets an MLP represent a log density ratio that falls off
    quadratically in the tails (two Gaussians), which ReLU-type units extrapolate only linearly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x * x], dim=-1)


def fit_location_scale(
    loss: LossLike,
    sample_real: Sampler,
    *,
    seed: int,
    steps: int,
    batch_size: int = 256,
    d_steps: int = 1,
    lr_g: float = 1e-3,
    lr_d: float = 1e-3,
    hidden: int = 64,
    depth: int = 2,
    mu: float = 0.0,
    sigma: float = 1.0,
    log_every: int | None = None,
    record_path: bool = True,
    quadratic_features: bool = False,
    progress: bool = False,
    desc: str = "location-scale GAN",
) -> tuple[LocationScale, np.ndarray | None]:
    """Train ``G(z) = mu + sigma z`` (started at ``N(mu, sigma^2)``) against an MLP discriminator
    (``depth`` hidden layers of width ``hidden``) on 1-D data ``sample_real(n) -> (n, 1)``.

    ``d_steps`` discriminator steps per generator step, Adam with ``lr_g`` and ``lr_d``. Returns the
    trained generator and, if ``record_path``, its path: an array of rows ``(step, mu, sigma)``,
    the first at step 0 (the start), then one every ``log_every`` generator steps (default: about
    50 rows) and one at the last step; ``None`` otherwise. With ``quadratic_features`` the
    discriminator reads ``(x, x^2)`` instead of ``x``, so its logit can fall off quadratically in the
    tails like the log ratio of two Gaussians.
    """
    set_seed(seed)
    gen = LocationScale(1, mu, sigma)
    disc = nn.Sequential(_WithSquare(), mlp(2, 1, hidden, depth)) if quadratic_features else mlp(1, 1, hidden, depth)
    path: list[tuple[float, float, float]] = []

    def record(step: int, _: dict[str, float]) -> None:
        path.append((step, gen.mu.item(), gen.sigma.item()))

    if record_path:
        record(0, {})
    train_gan(gen, disc, loss, sample_real, lambda n: torch.randn(n, 1), steps=steps, batch_size=batch_size,
              d_steps=d_steps, lr_g=lr_g, lr_d=lr_d, log_every=max(1, steps // 50) if log_every is None else log_every,
              callbacks=[record] if record_path else [], progress=progress, desc=desc)
    return gen, (np.array(path) if record_path else None)


def fit_mlp_gan(
    loss: LossLike,
    sample_real: Sampler,
    *,
    dim: int,
    seed: int,
    steps: int,
    batch_size: int = 256,
    d_steps: int = 1,
    lr_g: float = 1e-3,
    lr_d: float = 1e-3,
    hidden: int = 64,
    depth: int = 2,
    progress: bool = False,
    desc: str = "MLP GAN",
) -> nn.Module:
    """Train an MLP generator ``R^dim -> R^dim`` (noise ``z ~ N(0, I_dim)``) against an MLP
    discriminator ``R^dim -> R``, both with ``depth`` hidden layers of width ``hidden``, on data
    ``sample_real(n) -> (n, dim)``. Returns the trained generator."""
    set_seed(seed)
    gen = mlp(dim, dim, hidden, depth)
    disc = mlp(dim, 1, hidden, depth)
    train_gan(gen, disc, loss, sample_real, lambda n: torch.randn(n, dim), steps=steps, batch_size=batch_size,
              d_steps=d_steps, lr_g=lr_g, lr_d=lr_d, progress=progress, desc=desc)
    return gen
