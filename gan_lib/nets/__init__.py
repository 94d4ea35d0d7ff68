"""Networks: a small MLP (:mod:`.mlp`), the location-scale generator with a closed-form density, and
one batched ensemble of ``K`` MLPs evaluated with batched matrix products (:mod:`.batched`), and
DCGAN / SNGAN-ResNet image generators and discriminators (:mod:`.conv`)."""

from .batched import BatchedMLP
from .conv import IMAGE_NETS, DCGANDiscriminator, DCGANGenerator, ResNetDiscriminator, ResNetGenerator, image_nets
from .mlp import ACTIVATIONS, LocationScale, activation_function, mlp

__all__ = ["ACTIVATIONS", "activation_function", "mlp", "LocationScale", "BatchedMLP",
           "DCGANGenerator", "DCGANDiscriminator", "ResNetGenerator", "ResNetDiscriminator", "IMAGE_NETS", "image_nets"]
