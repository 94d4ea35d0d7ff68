"""Networks: a small MLP (:mod:`.mlp`), the location-scale generator with a closed-form density, and
one batched ensemble of ``K`` MLPs evaluated with batched matrix products (:mod:`.batched`)."""

from .batched import BatchedMLP
from .mlp import ACTIVATIONS, LocationScale, activation_function, mlp

__all__ = ["ACTIVATIONS", "activation_function", "mlp", "LocationScale", "BatchedMLP"]
