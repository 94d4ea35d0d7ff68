"""gan_lib: GAN losses built from distributional divergences and distances.

The companion library of *ganbook*. Submodules:

- :mod:`gan_lib.divergences` -- f-divergences as data (f, f*, output activation, optimal critic).
- :mod:`gan_lib.losses` -- the loss registry (``gan_lib.losses.REGISTRY`` / ``gan_lib.losses.get``).
- :mod:`gan_lib.toy` -- low-dimensional distributions with known densities.
- :mod:`gan_lib.train` -- a small, readable training core.
- :mod:`gan_lib.params` -- validation of notebook parameters.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
