"""Small networks for the book's low-dimensional experiments: an MLP and a location-scale generator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ACTIVATIONS", "activation_function", "mlp", "LocationScale"]

_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "leaky_relu_0.01": lambda: nn.LeakyReLU(0.01),
                "tanh": nn.Tanh, "elu": nn.ELU, "silu": nn.SiLU}
_FUNCTIONS = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "leaky_relu_0.01": lambda x: F.leaky_relu(x, 0.01),
    "tanh": torch.tanh,
    "elu": F.elu,
    "silu": F.silu,
}
#: Names of the hidden-layer activations: ``"leaky_relu"`` has slope 0.2 (the book's), ``"leaky_relu_0.01"``
#: slope 0.01 (``nn.LeakyReLU()``'s default, which some published code uses).
ACTIVATIONS: tuple[str, ...] = tuple(_ACTIVATIONS)


def activation_function(name: str):
    """The activation ``name`` (one of :data:`ACTIVATIONS`) as an elementwise function."""
    if name not in _FUNCTIONS:
        raise ValueError(f"activation={name!r} is not known; choose one of {sorted(_FUNCTIONS)}")
    return _FUNCTIONS[name]


def mlp(in_dim: int, out_dim: int, hidden: int = 64, depth: int = 2, activation: str = "leaky_relu") -> nn.Sequential:
    """A fully connected network ``in_dim -> hidden (x depth) -> out_dim`` with no output activation."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not known; choose one of {sorted(_ACTIVATIONS)}")
    for name, v in (("in_dim", in_dim), ("out_dim", out_dim), ("hidden", hidden)):
        if v < 1:
            raise ValueError(f"{name}={v} must be >= 1")
    if depth < 0:
        raise ValueError(f"depth={depth} must be >= 0")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), _ACTIVATIONS[activation]()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class LocationScale(nn.Module):
    """The generator ``G(z) = mu + sigma * z`` with ``z ~ N(0, I)``: its density is known in closed form.

    ``sigma`` is stored as ``log_sigma`` so that it stays positive during training.
    """

    def __init__(self, dim: int = 1, mu: float = 0.0, sigma: float = 1.0) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"sigma={sigma} must be > 0")
        self.mu = nn.Parameter(torch.full((dim,), float(mu)))
        self.log_sigma = nn.Parameter(torch.full((dim,), float(sigma)).log())

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mu + self.sigma * z
