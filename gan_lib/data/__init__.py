"""Data with known densities. :mod:`.toy`: low-dimensional Gaussians and Gaussian mixtures
(``torch.distributions`` objects with ``log_prob`` and ``sample``)."""

from .toy import *  # noqa: F401,F403
from .toy import __all__ as _toy_all

__all__ = [*_toy_all]
