r"""Divergences as data, and the numerical tools that check them.

- :mod:`.fdiv` -- f-divergences as frozen :class:`FDivergence` objects (f, f*, output activation,
  optimal critic, safe logit ranges) and the f-GAN variational bound.
- :mod:`.gaussian` -- closed forms between Gaussians.
- :mod:`.quadrature` -- one adaptive Gauss--Legendre engine; quadrature of divergences and
  expectations in 1-D; Monte Carlo in any dimension.
- :mod:`.generator` -- Poole et al.'s generator divergences ``f_G`` (what a density-ratio GAN's
  generator descends).
- :mod:`.fitting` -- Gaussians fitted to a 1-D target by exact divergence minimisation.
- :mod:`.scoring` -- proper scoring rules and the f-divergences they bound.

Every public name of the submodules is re-exported here: ``from gan_lib.divergences import
quad_divergence`` works.
"""

from .fdiv import *  # noqa: F401,F403
from .fdiv import __all__ as _fdiv_all
from .gaussian import *  # noqa: F401,F403
from .gaussian import __all__ as _gaussian_all
from .quadrature import *  # noqa: F401,F403
from .quadrature import __all__ as _quadrature_all
from .generator import *  # noqa: F401,F403
from .generator import __all__ as _generator_all
from .fitting import *  # noqa: F401,F403
from .fitting import __all__ as _fitting_all
from .scoring import *  # noqa: F401,F403
from .scoring import __all__ as _scoring_all

__all__ = [*_fdiv_all, *_gaussian_all, *_quadrature_all, *_generator_all, *_fitting_all, *_scoring_all]
