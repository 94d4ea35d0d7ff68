"""The loss registry: every GAN objective of the book, by name, as pure functions of raw outputs.

>>> from gan_lib import losses
>>> loss = losses.get("non_saturating")
>>> d_loss = loss.discriminator(d_real, d_fake)   # minimised by D
>>> g_loss = loss.generator(d_fake)               # minimised by G (relativistic: pass d_real too)
>>> loss.discriminator(d_real, d_fake, reduction="none")          # LossTerms(real, fake)
>>> loss.generator(d_fake, reduction="sum", weights=w)            # sum of w * per-sample loss

``REGISTRY`` maps each name to its :class:`LossSpec` (family, citation, options with defaults,
``formula``); ``names()`` lists them by family; ``table()`` gives one row per loss with the two
halves side by side. Inputs are raw discriminator outputs (logits / critic values), any shape;
losses are mean-reduced unless ``reduction="sum"`` or ``"none"`` is asked for, with optional
per-sample weights (``torch.nn.functional`` / TF-GAN conventions, defined in
:mod:`.registry`). ``P`` is the data, ``Q`` the model.

Families (one module each): :mod:`.minimax` (``minimax``, ``non_saturating``), :mod:`.fgan`
(``fgan_<divergence>``), :mod:`.poole` (``poole_standard``, ``poole_rkl``, ``huszar_kl``,
``poole_kl``, ``poole_alpha``), :mod:`.lsgan` (``lsgan``), :mod:`.ipm` (``wgan``, ``hinge``, ``kl_hinge``, ``chi2_hinge``),
:mod:`.relativistic` (``rgan``, ``ragan``). Regularisers (gradient penalty, R1, weight clipping,
spectral norm) are functions in :mod:`.regularisers`.
"""

from __future__ import annotations

# Importing a family module registers its losses; this order is the order of ``names()``.
from . import minimax  # noqa: F401  isort: skip
from . import fgan  # noqa: F401  isort: skip
from . import poole  # noqa: F401  isort: skip
from . import lsgan  # noqa: F401  isort: skip
from . import ipm  # noqa: F401  isort: skip
from . import relativistic  # noqa: F401  isort: skip
from . import regularisers  # noqa: F401  isort: skip
from .registry import REDUCTIONS, REGISTRY, GANLoss, LossSpec, LossTerms, Option, get, names, table
from .regularisers import apply_spectral_norm, clip_weights_, gradient_penalty, r1_penalty

__all__ = [
    "REGISTRY",
    "REDUCTIONS",
    "GANLoss",
    "LossSpec",
    "LossTerms",
    "Option",
    "get",
    "names",
    "table",
    "gradient_penalty",
    "r1_penalty",
    "clip_weights_",
    "apply_spectral_norm",
]
