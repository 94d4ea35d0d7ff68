"""Training: the GAN loop and critic training (:mod:`.gan`), critics and classifiers trained as one
batched stack on the f-GAN bound or on scoring rules (:mod:`.critics`)."""

from .critics import *  # noqa: F401,F403
from .critics import __all__ as _critics_all
from .gan import *  # noqa: F401,F403
from .gan import __all__ as _gan_all

__all__ = [*_gan_all, *_critics_all]
