"""Data with known densities.

- :mod:`.toy`: low-dimensional Gaussians and Gaussian mixtures (``torch.distributions`` objects
  with ``log_prob`` and ``sample``).
- :mod:`.two_d`: the 2-D datasets of Song & Ermon (2020) and two mode-collapse mixtures, by name
  (``get(name, **options)``, ``names_2d()``), with exact ``log_prob`` and seeded ``sample``.
- :mod:`.images`: image data sets in ``[-1, 1]`` -- scikit-learn's 8x8 ``digits`` (offline),
  ``mnist`` and ``cifar10`` read from their official files (verified one-time download).
"""

from .toy import *  # noqa: F401,F403
from .toy import __all__ as _toy_all
from .two_d import *  # noqa: F401,F403
from .two_d import __all__ as _two_d_all
from .images import *  # noqa: F401,F403
from .images import __all__ as _images_all

__all__ = [*_toy_all, *_two_d_all, *_images_all]
