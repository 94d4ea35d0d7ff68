"""gan_lib: GAN losses built from distributional divergences and distances.

The companion library of *ganbook*; one subpackage per idea:

- :mod:`gan_lib.divergences` -- f-divergences as data (f, f*, output activation, optimal critic),
  Gaussian closed forms, quadrature and Monte Carlo, Poole et al.'s generator divergences, Gaussian
  fits by exact divergence minimisation, proper scoring rules.
- :mod:`gan_lib.losses` -- the loss registry (``gan_lib.losses.REGISTRY`` / ``gan_lib.losses.get``),
  one module per family, and the regularisers.
- :mod:`gan_lib.nets` -- a small MLP, the location-scale generator, a batched ensemble of MLPs.
- :mod:`gan_lib.data` -- distributions with known densities.
- :mod:`gan_lib.metrics` -- mode coverage, bin masses, errors of estimated density ratios.
- :mod:`gan_lib.train` -- the GAN training loop; critics and classifiers trained as one stack.
- :mod:`gan_lib.files` -- the atomic writer everything uses (a file appears whole or not at all).
- :mod:`gan_lib.pipeline` -- the book pipeline (``ganbook``) and display helpers; needs the
  ``book`` extra and is never imported by the rest of the library.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
