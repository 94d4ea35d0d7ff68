"""Training: the GAN loop and critic training (:mod:`.gan`), critics and classifiers trained as one
batched stack on the f-GAN bound or on scoring rules (:mod:`.critics`), the book's small GAN runs
written once (:mod:`.recipes`), many small GANs trained as one batched ensemble (:mod:`.ensemble`), shared out over
the processes of a torchrun launch (:mod:`.distributed`),
probes of what a generator step follows (:mod:`.probes`), and the image-scale training core with
checkpoints, mixed precision and torchrun (:mod:`.loop`; its constants stay in the module);
:func:`retain_freed_memory` (:mod:`.memory`) keeps freed memory for loops that allocate large tensors."""

from .critics import *  # noqa: F401,F403
from .critics import __all__ as _critics_all
from .distributed import *  # noqa: F401,F403
from .distributed import __all__ as _distributed_all
from .ensemble import *  # noqa: F401,F403
from .ensemble import __all__ as _ensemble_all
from .gan import *  # noqa: F401,F403
from .gan import __all__ as _gan_all
from .memory import retain_freed_memory
from .loop import TrainConfig, Trainer, build_nets, fp32_penalty, latest_checkpoint, save_image_grid, train
from .probes import *  # noqa: F401,F403
from .probes import __all__ as _probes_all
from .recipes import *  # noqa: F401,F403
from .recipes import __all__ as _recipes_all

__all__ = [*_gan_all, *_critics_all, *_recipes_all, *_probes_all, *_ensemble_all,
           "TrainConfig", "Trainer", "train", "build_nets", "fp32_penalty", "latest_checkpoint", "save_image_grid",
           "retain_freed_memory"]
