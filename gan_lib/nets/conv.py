r"""Convolutional generators and discriminators for square images (8x8 digits, 32x32 CIFAR-10).

Two families, each a generator / discriminator pair parametrised by ``image_size`` (a power of two,
at least 8), ``channels`` and a base ``width`` (small widths make the tests fast):

* :class:`DCGANGenerator` / :class:`DCGANDiscriminator` -- the "standard CNN" of Miyato et al.
  (2018, table 3), itself the DCGAN layout of Radford et al. (2016): the generator maps ``z`` by a
  linear layer to a ``4 x 4`` feature map and doubles the resolution with stride-2 transposed
  convolutions (batch norm, ReLU) until ``image_size``, then a ``3 x 3`` convolution and ``tanh``;
  the discriminator alternates ``3 x 3`` and stride-2 ``4 x 4`` convolutions (LeakyReLU 0.1)
  down to ``4 x 4`` and ends with a linear layer.
* :class:`ResNetGenerator` / :class:`ResNetDiscriminator` -- the SNGAN ResNets for CIFAR-10
  (Miyato et al. 2018, table 4; blocks of Gulrajani et al. 2017): generator blocks
  ``BN-ReLU-up-conv3-BN-ReLU-conv3`` with a ``1 x 1`` convolution on the upsampled shortcut; the
  discriminator's first block is the "optimised" block (conv-ReLU-conv-pool, shortcut pool-conv1),
  then blocks that halve the resolution down to ``8 x 8`` and two that keep it, ReLU, a sum over
  positions and a linear layer. At ``image_size=32``, ``width=256`` (G) and ``width=128`` (D) this
  is the SNGAN CIFAR-10 pair.

Every discriminator returns one raw output (logit / critic value) per image, shape ``(n,)``, and
takes ``spectral_norm=True`` to wrap its linear and convolution layers with spectral
normalisation (:func:`gan_lib.losses.apply_spectral_norm`). Discriminators have no batch norm, so
each sample's output depends on that sample alone (what gradient penalties and data-parallel
training assume). The generators' batch norm couples the samples of a batch (``batch_norm=False``
removes it); images are in ``[-1, 1]`` (``tanh``), shape ``(n, channels, image_size, image_size)``.
Layers keep PyTorch's default initialisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lib.losses.regularisers import apply_spectral_norm
from gan_lib.validation import integer_number

__all__ = [
    "DCGANGenerator",
    "DCGANDiscriminator",
    "ResNetGenerator",
    "ResNetDiscriminator",
    "IMAGE_NETS",
    "image_nets",
]


def _levels(image_size: int, lowest: int) -> int:
    """``log2(image_size / lowest)`` after checking ``image_size`` is a power of two >= 8."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size={image_size!r} must be a power of two >= 8 (8, 16, 32, 64, ...)")
    return int(math.log2(image_size // lowest))


def _check(**values: int) -> None:
    for name, v in values.items():
        try:
            integer_number(v, 1)
        except ValueError as err:
            raise ValueError(f"{name}={v!r} {err}") from None


class DCGANGenerator(nn.Module):
    """``z (n, z_dim) -> images (n, channels, image_size, image_size)`` in ``[-1, 1]``.

    Feature maps: ``width * 2^L`` channels at ``4 x 4``, halved at each of the ``L = log2(image_size/4)``
    upsamplings (``width`` channels at full resolution).
    """

    def __init__(self, z_dim: int = 128, image_size: int = 32, channels: int = 3, width: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        _check(z_dim=z_dim, channels=channels, width=width)
        levels = _levels(image_size, 4)
        self.z_dim, self.image_size, self.channels = z_dim, image_size, channels
        top = width * 2**levels
        self.project = nn.Linear(z_dim, top * 16)
        self.top = top
        norm = nn.BatchNorm2d if batch_norm else (lambda c: nn.Identity())
        layers: list[nn.Module] = [norm(top), nn.ReLU()]
        c = top
        for _ in range(levels):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), norm(c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.Conv2d(c, channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.project(z).view(-1, self.top, 4, 4))


class DCGANDiscriminator(nn.Module):
    """``images (n, channels, image_size, image_size) -> raw outputs (n,)``; no batch norm."""

    def __init__(self, image_size: int = 32, channels: int = 3, width: int = 64, spectral_norm: bool = False) -> None:
        super().__init__()
        _check(channels=channels, width=width)
        levels = _levels(image_size, 4)
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(levels):
            c = width * 2**i
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.LeakyReLU(0.1)]
            layers += [nn.Conv2d(c, c, 4, stride=2, padding=1), nn.LeakyReLU(0.1)]
            c_in = c
        c = width * 2**levels
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.LeakyReLU(0.1), nn.Flatten()]
        layers.append(nn.Linear(c * 16, 1))
        self.body = nn.Sequential(*layers)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).squeeze(1)


class _GBlock(nn.Module):
    """``x -> conv3(ReLU(BN(conv3(up(ReLU(BN(x))))))) + conv1(up(x))``: doubles the resolution."""

    def __init__(self, c_in: int, c_out: int, batch_norm: bool) -> None:
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else (lambda c: nn.Identity())
        self.bn1, self.conv1 = norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn2, self.conv2 = norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _DBlock(nn.Module):
    """Residual discriminator block; ``first`` is SNGAN's optimised first block (no ReLU before conv1)."""

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or down) else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.shortcut is None:
            return h + x
        if self.first:  # pool, then 1x1 conv (cheaper; SNGAN's optimised block)
            return h + self.shortcut(F.avg_pool2d(x, 2) if self.down else x)
        s = self.shortcut(x)
        return h + (F.avg_pool2d(s, 2) if self.down else s)


class ResNetGenerator(nn.Module):
    """SNGAN's ResNet generator: ``z -> (width, 4, 4)``, ``log2(image_size/4)`` up-blocks of ``width``
    channels, BN-ReLU-conv3-tanh."""

    def __init__(self, z_dim: int = 128, image_size: int = 32, channels: int = 3, width: int = 256, batch_norm: bool = True) -> None:
        super().__init__()
        _check(z_dim=z_dim, channels=channels, width=width)
        levels = _levels(image_size, 4)
        self.z_dim, self.image_size, self.channels, self.width = z_dim, image_size, channels, width
        self.project = nn.Linear(z_dim, width * 16)
        self.blocks = nn.Sequential(*[_GBlock(width, width, batch_norm) for _ in range(levels)])
        norm = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.out = nn.Sequential(norm, nn.ReLU(), nn.Conv2d(width, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return self.out(self.blocks(self.project(z).view(-1, self.width, 4, 4)))


class ResNetDiscriminator(nn.Module):
    """SNGAN's ResNet discriminator: an optimised first block, down-blocks to ``8 x 8``, two blocks
    at ``8 x 8``, ReLU, sum over positions, linear. Spectral norm on by default (as in SNGAN)."""

    def __init__(self, image_size: int = 32, channels: int = 3, width: int = 128, spectral_norm: bool = True) -> None:
        super().__init__()
        _check(channels=channels, width=width)
        downs = _levels(image_size, 8)
        blocks: list[nn.Module] = [_DBlock(channels, width, down=downs > 0, first=True)]
        blocks += [_DBlock(width, width, down=True) for _ in range(downs - 1)]
        blocks += [_DBlock(width, width, down=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(width, 1)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(F.relu(self.blocks(x)).sum(dim=(2, 3))).squeeze(1)


#: Names accepted by :func:`image_nets`.
IMAGE_NETS: tuple[str, ...] = ("dcgan", "resnet")


def image_nets(
    arch: str,
    *,
    image_size: int,
    channels: int,
    z_dim: int = 128,
    g_width: int = 64,
    d_width: int = 64,
    spectral_norm: bool = False,
    batch_norm: bool = True,
) -> tuple[nn.Module, nn.Module]:
    """A generator and a discriminator of family ``arch`` (``"dcgan"`` or ``"resnet"``) for the given images."""
    if arch not in IMAGE_NETS:
        raise ValueError(f"arch={arch!r} is not known; allowed: {', '.join(repr(a) for a in IMAGE_NETS)}")
    if arch == "dcgan":
        return (
            DCGANGenerator(z_dim, image_size, channels, g_width, batch_norm),
            DCGANDiscriminator(image_size, channels, d_width, spectral_norm),
        )
    return (
        ResNetGenerator(z_dim, image_size, channels, g_width, batch_norm),
        ResNetDiscriminator(image_size, channels, d_width, spectral_norm),
    )
