"""Metrics of samples and of estimated density ratios.

- :mod:`.coverage` -- which modes of a mixture a sample covers; bin masses of a 1-D generator.
- :mod:`.binned` -- divergences between two histograms on the same bins (Jensen--Shannon).
- :mod:`.ratio` -- errors of a logit against the true log-ratio; population risk of a scoring rule
  and the divergence it bounds (1-D quadrature).
- :mod:`.samples` -- distances between samples: squared MMD, KDE log-likelihood, exact EMD and 1-D
  Wasserstein-1 (also between quantile functions); modes covered by a sample of a 2-D mixture.
- :mod:`.images` -- image-generator metrics on a stated feature extractor: FID, KID, IS (via
  torchmetrics), improved precision/recall, classification accuracy score; the offline digits
  extractor (a small CNN, not Inception) and the FID Inception from a local weights file.
"""

from .binned import *  # noqa: F401,F403
from .binned import __all__ as _binned_all
from .coverage import *  # noqa: F401,F403
from .coverage import __all__ as _coverage_all
from .ratio import *  # noqa: F401,F403
from .ratio import __all__ as _ratio_all
from .samples import *  # noqa: F401,F403
from .samples import __all__ as _samples_all
from .images import *  # noqa: F401,F403
from .images import __all__ as _images_all

__all__ = [*_coverage_all, *_binned_all, *_ratio_all, *_samples_all, *_images_all]
