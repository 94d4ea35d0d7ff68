r"""Many small GANs trained at once: ``K`` independent members as one batched computation.

Member ``k`` is a generator ``G_k: R^{z} -> R^d`` and a critic ``D_k: R^d -> R`` (MLPs
``z -> width (x depth) -> d`` and ``d -> width (x depth) -> 1`` with LeakyReLU, slope 0.2 by default), trained on its
own data with its own loss (any name of :func:`gan_lib.losses.names`, with options), its own
regulariser, its own learning rates and its own seed. The ``K`` generators are one
:class:`gan_lib.nets.BatchedMLP`, the ``K`` critics another, so every layer of every member is one
``torch.baddbmm`` call; the members share no parameter, so the gradient of the sum of the members'
losses with respect to member ``k`` is the gradient of member ``k``'s loss alone.

The protocol is Song & Ermon's (2020, ``song2020bridging``) for their 2-D experiments: batches of
``batch_size`` of the ``N`` training points (the last one smaller), drawn in a new order every epoch
(``shuffle=True``, the default) or, as their released code does, in the data's own order every epoch
(``shuffle=False``); for each batch, ``n_critic`` critic steps with fresh noise ``z ~ N(0, I)`` on the
same real batch, then one generator step. Their networks use LeakyReLU's default slope 0.01:
``EnsembleConfig(activation="leaky_relu_0.01")``; their critic scores the real and then the generated
batch in two calls: ``EnsembleConfig(separate_critic_calls=True)``. The optimiser is RMSprop (``alpha = 0.99``,
``eps = 1e-8``, their choice) or Adam, written here over the stacked ``(K, ...)`` tensors
(:class:`StackedRMSprop`, :class:`StackedAdam`) so that each member has its own learning rate; both
take exactly the steps of ``torch.optim``'s single-tensor implementations.

Regularisers of the critic, one per member:

* ``"gp"``: ``lambda E[(||grad D(x_hat)|| - 1)^2]``, ``x_hat = e x_real + (1 - e) x_fake``,
  ``e ~ U[0, 1]`` per sample (Gulrajani et al. 2017), ``lambda`` = ``reg_weight``;
* ``"r1"``: ``(gamma / 2) E_P[||grad D(x)||^2]`` on the real batch (Mescheder et al. 2018),
  ``gamma`` = ``reg_weight``;
* ``"spectral_norm"``: every critic weight divided by its largest singular value, estimated by one
  power iteration per call of the critic in training (one per critic step, or two with
  ``separate_critic_calls=True``; one per generator step) with a persistent vector per layer, as
  ``torch.nn.utils.parametrizations.spectral_norm`` does (Miyato et al. 2018);
* ``"clip"``: every critic parameter clamped to ``[-clip, clip]`` after each critic step
  (Arjovsky et al. 2017).

Reproducibility: every random draw of member ``k`` comes from its own ``torch.Generator`` seeded
with its ``seed``, in this order: the generator's layers (weight then bias, as ``nn.Linear`` draws
them: uniform in ``+-1/sqrt(fan_in)``), the critic's layers, the spectral-norm vectors (per layer
``u`` then ``v``, standard normal, normalised; 15 power iterations follow the cast to ``dtype``); then,
per epoch, one ``randperm(N)`` (unless ``shuffle=False``); per generator step
``randn(n_critic + 1, n, z)`` (slice ``j`` the noise of critic step ``j``, the last the generator's),
then for ``"gp"`` ``rand(n_critic, n, 1)``. On the CPU the noise is the same as ``n_critic + 1``
draws of ``randn(n, z)`` when ``n * z`` is a multiple of 16 (torch fills normals in blocks of 16). A
member's trajectory therefore does not depend on which members share the ensemble: training it
alone, or in any other company, gives the same numbers (up to float rounding of the batched
products).

Losses whose terms share batch statistics (``kl_hinge``, ``chi2_hinge``, ``ragan``) are evaluated
once per group of members that share them, mapped over the members' ``(n,)`` rows of the group's
``(K_g, n)`` outputs with ``torch.func.vmap`` (the same values as member by member, in one call);
every other loss once per group on the ``(K_g, n)`` outputs with ``reduction="none"``, and the
per-sample terms of all those groups averaged together (one mean per term for the ensemble).
With ``EnsembleConfig(compile_losses=True)`` the losses of all groups go through ``torch.compile``
instead, each evaluated on every row and each member's own row kept, so that the groups' operators
fuse into a few kernels (on a GPU, where these small models are launch-bound, that is most of what
several losses add to a step; ``benchmarks/ensemble.py --compile-losses`` times it).

>>> members = [MemberSpec(loss, seed=s, regulariser="spectral_norm")
...            for loss in ("hinge", "kl_hinge") for s in range(4)]
>>> result = train_ensemble(members, x_train, EnsembleConfig(epochs=500))   # x_train: (5000, 2)
>>> result.sample(5000).shape            # (8, 5000, 2): member k's samples are row k
>>> result.history.g_loss.shape          # (logged steps, 8)
>>> gen, critic = result.member(3)       # plain nn.Sequential copies
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import operator
import time
import types
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from tqdm import tqdm

from gan_lib import losses as _losses
from gan_lib.losses.registry import LossTerms
from gan_lib.nets import ACTIVATIONS, BatchedMLP
from gan_lib.validation import (boolean, integer_number, is_integer, is_real, named, one_of, real_number,
                                 seed_number)

__all__ = [
    "REGULARISERS",
    "OPTIMISERS",
    "MemberSpec",
    "EnsembleConfig",
    "EnsembleHistory",
    "EnsembleResult",
    "StackedRMSprop",
    "StackedAdam",
    "train_ensemble",
    "concat_results",
]

REGULARISERS: tuple[str, ...] = ("none", "gp", "r1", "spectral_norm", "clip")
"""Critic regularisers a member may use (module docstring)."""

OPTIMISERS: tuple[str, ...] = ("rmsprop", "adam")
"""Optimisers of :class:`EnsembleConfig` (the same for both networks and every member)."""

_SN_EPS = 1e-12  # torch.nn.utils.parametrizations.spectral_norm's eps
_SN_INIT_ITERATIONS = 15  # power iterations at initialisation, as torch's spectral_norm does

Data = Union[Tensor, Sequence[Tensor], Mapping[str, Tensor]]


# ----------------------------------------------------------------------------------------------
# Specifications
# ----------------------------------------------------------------------------------------------


class _ReadOnlyOptions(dict):
    """A spec's loss options: a ``dict`` that refuses changes (the spec is frozen and was validated
    with these options). Compares as the dict it holds; copies (``copy``, ``dataclasses.asdict``)
    and pickles as a plain ``dict``, so that what leaves a spec is ordinary data.

    Only :meth:`_wrap` makes one: calling the class, as ``dataclasses.asdict``, ``copy`` and
    ``fromkeys`` do, gives a plain ``dict``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        return dict(*args, **kwargs)

    @classmethod
    def _wrap(cls, options: Mapping[str, Any]) -> "_ReadOnlyOptions":
        out = dict.__new__(cls)
        dict.update(out, options)
        return out

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"MemberSpec.loss_options {dict(self)!r} cannot be changed: make a new spec, "
                        f"e.g. dataclasses.replace(spec, loss_options={{...}})")

    __init__ = __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:  # pickles, copies and deep-copies (all go through it) as a plain dict
        return (dict, (dict(self),))


@dataclass(frozen=True)
class MemberSpec:
    """One member of an ensemble.

    Attributes:
        loss: a registered loss name (:func:`gan_lib.losses.names`), e.g. ``"non_saturating"``,
            ``"hinge"``, ``"kl_hinge"``, ``"fgan_kl"``.
        seed: seed of the member's own ``torch.Generator`` (every random draw of the member).
        loss_options: options of the loss (``gan_lib.losses.get(loss, **loss_options)``); kept as a
            read-only copy (a dict that refuses changes).
        regulariser: one of :data:`REGULARISERS`.
        reg_weight: ``lambda`` of ``"gp"``, ``gamma`` of ``"r1"`` (ignored otherwise), >= 0.
        clip: the clipping bound ``c`` of ``"clip"`` (ignored otherwise), > 0.
        lr_d, lr_g: learning rates of the critic and the generator, > 0.
        dataset: key of the member's training set when ``data`` is a mapping; ``None`` otherwise.
        label: free text carried along (e.g. for tables); not used in training.
    """

    loss: str
    seed: int
    # left out of the hash (a dict has none), so that specs can be set members and keys; equality compares it
    loss_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    regulariser: str = "none"
    reg_weight: float = 10.0
    clip: float = 0.01
    lr_d: float = 2e-4
    lr_g: float = 2e-4
    dataset: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.loss, str):
            raise TypeError(f"loss={self.loss!r} must be a registered loss name (a str)")
        if not isinstance(self.loss_options, Mapping):
            raise TypeError(f"loss_options={self.loss_options!r} must be a dict of the loss's options")
        # a read-only copy: a later change to the caller's dict, or to the spec's, would otherwise get
        # past this validation
        bad_keys = [k for k in self.loss_options if not isinstance(k, str)]
        if bad_keys:
            allowed = sorted(_losses.get(self.loss).options)  # an unknown loss name raises first, naming it
            raise ValueError(f"loss_options key {bad_keys[0]!r} of loss {self.loss!r} is not an option name (a str); "
                             f"allowed options: {', '.join(allowed) or 'none'}")
        object.__setattr__(self, "loss_options", _ReadOnlyOptions._wrap(self.loss_options))
        _losses.get(self.loss, **self.loss_options)  # unknown name / option -> ValueError naming it
        if not is_integer(self.seed) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed={self.seed!r} must be an integer with 0 <= seed < 2**63")
        named("regulariser", self.regulariser, one_of(*REGULARISERS))
        named("reg_weight", self.reg_weight, real_number)
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight={self.reg_weight!r} must be >= 0")
        for name in ("clip", "lr_d", "lr_g"):
            value = getattr(self, name)
            named(name, value, real_number)
            if not value > 0:
                raise ValueError(f"{name}={value!r} must be > 0")
        if self.dataset is not None and not isinstance(self.dataset, str):
            raise TypeError(f"dataset={self.dataset!r} must be None or a key (str) of the data mapping")
        # numpy scalars (accepted above) stored as Python numbers: a saved state then loads with weights_only
        object.__setattr__(self, "seed", int(self.seed))
        for name in ("reg_weight", "clip", "lr_d", "lr_g"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def __reduce__(self) -> tuple[Any, ...]:
        # copies and pickles go through the constructor: the copy is validated and its options read-only
        return (MemberSpec, tuple(getattr(self, f.name) for f in dataclasses.fields(self)))

    def make_loss(self) -> _losses.GANLoss:
        """The member's :class:`gan_lib.losses.GANLoss`."""
        return _losses.get(self.loss, **dict(self.loss_options))


@dataclass(frozen=True)
class EnsembleConfig:
    """Protocol shared by every member (defaults: Song & Ermon's 2-D experiments).

    Attributes:
        batch_size: real points per batch (the last batch of an epoch holds the rest).
        n_critic: critic steps per generator step, each with fresh noise on the same real batch.
        optimiser: ``"rmsprop"`` (``alpha = 0.99``, ``eps = 1e-8``) or ``"adam"`` (``betas``, ``eps = 1e-8``).
        epochs: passes over the training points; or
        steps: generator steps (the epoch scheme runs on across epochs and stops there).
            Give exactly one of ``epochs`` and ``steps``.
        width, depth: hidden width and number of hidden layers of both networks.
        activation: their hidden activation, one of :data:`gan_lib.nets.ACTIVATIONS` (default
            ``"leaky_relu"``, slope 0.2; ``"leaky_relu_0.01"`` is ``nn.LeakyReLU()``'s slope).
        shuffle: draw the batches in a new order every epoch (default ``True``); ``False`` takes them
            in the data's own order every epoch, as a ``DataLoader`` without ``shuffle`` does (and
            draws no permutation).
        separate_critic_calls: in a critic step, score the real batch and then the generated batch
            in two calls of the critic, as a loop that computes ``D(x_real)`` and then ``D(x_fake)``
            does (Song & Ermon's released code). For spectral-norm members each call takes its own
            power iteration: two per critic step, the real batch scored with the weights after the
            first and the generated batch with the weights after the second. For the other members
            the numbers are those of one call. Default ``False``: one call on both batches, one
            power iteration per critic step.
        z_dim: dimension of the noise ``z ~ N(0, I)``.
        betas: Adam's ``(beta1, beta2)``.
        log_every: record the members' losses every this many generator steps (and at the last).
        device: where to train (``"cpu"``, ``"cuda:0"``, ...); each member's generator lives there.
        dtype: ``"float32"`` or ``"float64"`` (initial values are drawn in float32 and then cast,
            so both start from the same networks).
        compile_losses: evaluate the members' losses (all loss groups, forward and backward) as one
            ``torch.compile``d function per step kind (critic, generator), so that the groups'
            element-wise operations fuse into a few kernels. On a GPU, where these small models are
            launch-bound, that is what a step of several losses costs beyond a step of one. The
            first steps of each batch size compile (seconds; Inductor needs Triton on a GPU and a
            C++ compiler on the CPU); the numbers equal the eager ones up to float rounding.
            Default ``False``.
    """

    batch_size: int = 256
    n_critic: int = 5
    optimiser: str = "rmsprop"
    epochs: int | None = None
    steps: int | None = None
    width: int = 100
    depth: int = 2
    activation: str = "leaky_relu"
    shuffle: bool = True
    separate_critic_calls: bool = False
    z_dim: int = 2
    betas: tuple[float, float] = (0.5, 0.999)
    log_every: int = 50
    device: str = "cpu"
    dtype: str = "float32"
    compile_losses: bool = False

    def __post_init__(self) -> None:
        for name, lo in (("batch_size", 1), ("n_critic", 1), ("width", 1), ("depth", 1), ("z_dim", 1),
                         ("log_every", 1)):
            named(name, getattr(self, name), lambda v, lo=lo: integer_number(v, lo))
        named("optimiser", self.optimiser, one_of(*OPTIMISERS))
        named("activation", self.activation, one_of(*ACTIVATIONS))
        named("dtype", self.dtype, one_of("float32", "float64"))
        for name in ("shuffle", "separate_critic_calls"):
            named(name, getattr(self, name), boolean)
            object.__setattr__(self, name, bool(getattr(self, name)))
        if not isinstance(self.compile_losses, (bool, np.bool_)):
            raise ValueError(f"compile_losses={self.compile_losses!r} must be True or False")
        object.__setattr__(self, "compile_losses", bool(self.compile_losses))
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(
                f"give exactly one of epochs and steps; got epochs={self.epochs!r}, steps={self.steps!r}"
            )
        for name in ("epochs", "steps"):
            if getattr(self, name) is not None:
                named(name, getattr(self, name), lambda v: integer_number(v, 1))
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else ()
        if len(betas) != 2 or not all(is_real(b) and 0 <= b < 1 for b in betas):
            raise ValueError(f"betas={self.betas!r} must be two real numbers in [0, 1)")
        object.__setattr__(self, "betas", tuple(float(b) for b in betas))  # a list would leave the config unhashable
        for name in ("batch_size", "n_critic", "width", "depth", "z_dim", "log_every", "epochs", "steps"):
            if getattr(self, name) is not None:  # numpy integers (accepted above) as Python ints
                object.__setattr__(self, name, int(getattr(self, name)))
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device={self.device!r} is not a torch device name ('cpu', 'cuda:0', ...)") from None
        # stored as its name, so that a config given torch.device('cpu') equals one given 'cpu'
        object.__setattr__(self, "device", str(device))

    def total_steps(self, n_points: int) -> int:
        """Generator steps of a run on ``n_points`` training points."""
        if self.steps is not None:
            return int(self.steps)
        return int(self.epochs) * math.ceil(n_points / self.batch_size)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Optimisers over stacked parameters with one learning rate per member
# ----------------------------------------------------------------------------------------------


def _stacked_params(params: Sequence[Tensor], optimiser: str) -> list[Tensor]:
    params = list(params)
    if not params:
        raise ValueError(f"{optimiser}: params is empty; give the stacked (K, ...) parameters")
    for i, p in enumerate(params):
        if not isinstance(p, Tensor) or not p.is_floating_point() or p.ndim < 1:
            raise TypeError(f"{optimiser}: params[{i}] must be a floating-point tensor of shape (K, ...); "
                            f"got {type(p).__name__}{'' if not isinstance(p, Tensor) else f' {p.dtype} {tuple(p.shape)}'}")
    k = {p.shape[0] for p in params}
    if len(k) > 1:
        raise ValueError(f"{optimiser}: params must share their first (member) dimension; got {sorted(k)}")
    return params


def _hyper(optimiser: str, name: str, value: Any, low: float, high: float, high_open: bool = True) -> float:
    """``value`` as a float in ``[low, high)`` (or ``[low, high]``); else a ValueError naming it."""
    if not is_real(value) or isinstance(value, bool):
        raise ValueError(f"{optimiser}: {name}={value!r} must be a real number")
    v = float(value)
    ok = math.isfinite(v) and low <= v and (v < high if high_open else v <= high)
    if not ok:
        raise ValueError(f"{optimiser}: {name}={value!r} must be in [{low:g}, {high:g}{')' if high_open else ']'}")
    return v


def _checked_grads(grads: Sequence[Tensor], params: Sequence[Tensor], optimiser: str) -> list[Tensor]:
    grads = list(grads)
    if len(grads) != len(params):
        raise ValueError(f"{optimiser}.step: got {len(grads)} gradients for {len(params)} parameters")
    for i, (g, p) in enumerate(zip(grads, params)):
        if not isinstance(g, Tensor) or g.shape != p.shape:
            shape = tuple(g.shape) if isinstance(g, Tensor) else type(g).__name__
            raise ValueError(f"{optimiser}.step: the gradient of parameter {i} has shape {shape}; "
                             f"the parameter has shape {tuple(p.shape)}")
    return grads


def _lr_column(lr: Sequence[float] | Tensor, k: int, like: Tensor) -> Tensor:
    if isinstance(lr, (str, bytes, bool)) or (isinstance(lr, Tensor) and lr.dtype == torch.bool) or (
            isinstance(lr, Sequence) and any(isinstance(x, (bool, str, bytes)) for x in lr)):
        raise ValueError(f"lr must hold {k} finite numbers > 0 (one per member); got {lr!r}")
    try:
        lr_t = torch.as_tensor(lr, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"lr must hold {k} finite numbers > 0 (one per member); got {lr!r}") from None
    if lr_t.numel() != k or not bool(torch.isfinite(lr_t).all()) or not bool((lr_t > 0).all()):
        raise ValueError(f"lr must hold {k} finite numbers > 0 (one per member); got {lr_t.tolist()}")
    return lr_t


class StackedRMSprop:
    r"""RMSprop over ``(K, ...)`` parameters with learning rate ``lr[k]`` for member ``k``.

    ``v <- alpha v + (1 - alpha) g^2``, ``p <- p - lr g / (sqrt(v) + eps)`` (Tieleman & Hinton 2012),
    in the order of operations of ``torch.optim.RMSprop`` (no momentum, not centred), so member
    ``k`` takes the steps ``torch.optim.RMSprop(lr=lr[k])`` takes on it alone.
    """

    def __init__(self, params: Sequence[Tensor], lr: Sequence[float] | Tensor, alpha: float = 0.99,
                 eps: float = 1e-8) -> None:
        self.params = _stacked_params(params, "StackedRMSprop")
        self.alpha = _hyper("StackedRMSprop", "alpha", alpha, 0.0, 1.0)
        self.eps = _hyper("StackedRMSprop", "eps", eps, 0.0, math.inf)
        self.set_lr(lr)
        self.square_avg = [torch.zeros_like(p) for p in self.params]

    def set_lr(self, lr: Sequence[float] | Tensor) -> None:
        """Set the per-member learning rates (``K`` numbers > 0)."""
        p0 = self.params[0]
        lr64 = _lr_column(lr, p0.shape[0], p0)
        # torch casts the Python scalar -lr to the parameter's dtype; so do we
        self._neg_lr = (-lr64).to(dtype=p0.dtype, device=p0.device)
        self._neg_lr_views = [self._neg_lr.view(-1, *([1] * (p.ndim - 1))) for p in self.params]

    @torch.no_grad()
    def step(self, grads: Sequence[Tensor]) -> None:
        """One step with the gradients ``grads`` (one per parameter, same shapes).

        The elementwise operations of the per-parameter loop, each applied to every parameter at
        once (``torch._foreach_*``: the same arithmetic, one call instead of one per parameter).
        """
        grads = _checked_grads(grads, self.params, "StackedRMSprop")
        torch._foreach_mul_(self.square_avg, self.alpha)
        torch._foreach_addcmul_(self.square_avg, grads, grads, value=1 - self.alpha)
        avg = torch._foreach_sqrt(self.square_avg)
        torch._foreach_add_(avg, self.eps)
        update = torch._foreach_mul(grads, self._neg_lr_views)
        torch._foreach_div_(update, avg)
        torch._foreach_add_(self.params, update)

    def state_dict(self) -> dict[str, Any]:
        return {"square_avg": [v.clone() for v in self.square_avg]}


class StackedAdam:
    r"""Adam over ``(K, ...)`` parameters with learning rate ``lr[k]`` for member ``k``.

    ``m <- beta1 m + (1 - beta1) g``, ``v <- beta2 v + (1 - beta2) g^2``,
    ``p <- p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`` (Kingma & Ba 2015), in the
    order of operations of ``torch.optim.Adam``'s single-tensor implementation.
    """

    def __init__(self, params: Sequence[Tensor], lr: Sequence[float] | Tensor,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = _stacked_params(params, "StackedAdam")
        if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) != 2:
            raise ValueError(f"StackedAdam: betas={betas!r} must be two numbers (beta1, beta2), each in [0, 1)")
        self.beta1 = _hyper("StackedAdam", "betas[0]", betas[0], 0.0, 1.0)
        self.beta2 = _hyper("StackedAdam", "betas[1]", betas[1], 0.0, 1.0)
        self.eps = _hyper("StackedAdam", "eps", eps, 0.0, math.inf)
        self.t = 0
        self.set_lr(lr)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def set_lr(self, lr: Sequence[float] | Tensor) -> None:
        """Set the per-member learning rates (``K`` numbers > 0)."""
        p0 = self.params[0]
        self._lr64 = _lr_column(lr, p0.shape[0], p0)

    @torch.no_grad()
    def step(self, grads: Sequence[Tensor]) -> None:
        """One step with the gradients ``grads`` (one per parameter, same shapes)."""
        grads = _checked_grads(grads, self.params, "StackedAdam")
        self.t += 1
        bias_correction1 = 1 - self.beta1**self.t
        bias_correction2_sqrt = (1 - self.beta2**self.t) ** 0.5
        p0 = self.params[0]
        # -lr / (1 - beta1^t) in double precision, then cast, as torch does with its Python scalar
        neg_step = (-(self._lr64 / bias_correction1)).to(dtype=p0.dtype, device=p0.device)
        # the per-parameter loop's operations, each over every parameter at once (torch._foreach_*)
        torch._foreach_lerp_(self.exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, value=1 - self.beta2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        update = torch._foreach_mul(self.exp_avg, [neg_step.view(-1, *([1] * (p.ndim - 1))) for p in self.params])
        torch._foreach_div_(update, denom)
        torch._foreach_add_(self.params, update)

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "exp_avg": [m.clone() for m in self.exp_avg],
                "exp_avg_sq": [v.clone() for v in self.exp_avg_sq]}


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


@dataclass
class EnsembleHistory:
    """Losses logged every ``log_every`` generator steps: ``d_loss`` and ``g_loss`` are ``(L, K)``.

    ``d_loss`` is the loss half of the last critic step of that generator step (without the
    regulariser's penalty, which is ``penalty``, zero for members without one); ``g_loss`` the
    generator's loss. Column ``k`` is member ``k``.
    """

    step: np.ndarray
    d_loss: np.ndarray
    g_loss: np.ndarray
    penalty: np.ndarray


@dataclass
class EnsembleResult:
    """What :func:`train_ensemble` returns.

    Attributes:
        members: the :class:`MemberSpec` of each member, in order.
        config: the :class:`EnsembleConfig`.
        generator: the ``K`` generators (a :class:`gan_lib.nets.BatchedMLP`, ``(K, n, z) -> (K, n, d)``).
        critic: the ``K`` critics' raw weights (for spectral-norm members, *before* normalisation;
            use :meth:`critic_values` or :meth:`member` for the normalised critic).
        sn_u, sn_v: per critic layer, the ``(K, fan_out)`` and ``(K, fan_in)`` power-iteration
            vectors (meaningful for spectral-norm members only).
        history: the logged losses (:class:`EnsembleHistory`).
        steps: generator steps taken; seconds: wall time of the training loop.
        snapshots: copies of the generators after the generator steps named in ``train_ensemble``'s
            ``snapshot_steps`` (step -> :class:`gan_lib.nets.BatchedMLP`); :meth:`sample` draws from them
            with ``step=``.
    """

    members: tuple[MemberSpec, ...]
    config: EnsembleConfig
    generator: BatchedMLP
    critic: BatchedMLP
    sn_u: list[Tensor]
    sn_v: list[Tensor]
    history: EnsembleHistory
    steps: int
    seconds: float
    snapshots: dict[int, BatchedMLP] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def spectral(self) -> Tensor:
        """``(K,)`` booleans: which members normalise their critic's weights."""
        return torch.tensor([m.regulariser == "spectral_norm" for m in self.members])

    @torch.no_grad()
    def critic_weights(self) -> list[Tensor]:
        """Critic weights as the members use them (copies): divided by ``sigma`` for spectral-norm members."""
        weights = [w.detach().clone() for w in self.critic.weights]
        flags = self.spectral.tolist()
        return _effective_weights(weights, self.sn_u, self.sn_v, flags, power_iteration=False,
                                  mask=_spectral_mask(flags, weights[0].device))

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = 0, generator: torch.Generator | None = None,
               step: int | None = None) -> Tensor:
        """``n`` samples of every member, ``(K, n, d)``, from one noise draw ``(n, z)`` fed to all.

        The noise comes from ``generator`` when given, else from a generator seeded with ``seed``,
        else (``seed=None``) from torch's global generator for the device. ``step``: sample the
        generators as they were after that generator step (one of :attr:`snapshots`, or
        :attr:`steps` for the final ones); ``None`` = the final generators.
        """
        named("n", n, lambda v: integer_number(v, 0))
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator={generator!r} must be a torch.Generator or None; for a seed, pass seed=")
        net = self.generator
        if step is not None and step != self.steps:
            if step not in self.snapshots:
                raise ValueError(f"step={step!r} has no snapshot; available: {sorted(self.snapshots) + [self.steps]}")
            net = self.snapshots[step]
        dev = self.generator.weights[0].device
        if generator is None and seed is not None:
            named("seed", seed, seed_number)
            generator = torch.Generator(device=dev).manual_seed(int(seed))
        z = torch.randn(n, self.config.z_dim, generator=generator, device=dev, dtype=self.generator.weights[0].dtype)
        return net(z)

    @torch.no_grad()
    def critic_values(self, x: Tensor) -> Tensor:
        """Raw critic outputs of every member, ``(K, n)``, at ``x`` (``(n, d)`` shared or ``(K, n, d)``;
        a tensor, or an array or nested list of numbers)."""
        params = _param_dict(self.critic_weights(), list(self.critic.biases))
        w0 = self.critic.weights[0]
        x = x.to(w0) if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64)).to(w0)
        return functional_call(self.critic, params, (x,))

    def member(self, k: int) -> tuple[nn.Sequential, nn.Sequential]:
        """Member ``k`` as plain networks ``(generator, critic)`` (:func:`gan_lib.nets.mlp`, copies).

        A spectral-norm member's critic holds its normalised weights ``W / sigma`` (the function
        it computes), with ``sigma`` from the stored power-iteration vectors.
        """
        if not is_integer(k) or not 0 <= k < len(self):
            raise IndexError(f"member {k!r} does not exist; the ensemble has {len(self)}")
        gen = self.generator.member(int(k))
        crit = self.critic.member(int(k))
        if self.members[k].regulariser == "spectral_norm":
            weights = self.critic_weights()
            linears = [m for m in crit if isinstance(m, nn.Linear)]
            with torch.no_grad():
                for lin, w in zip(linears, weights):
                    lin.weight.copy_(w[k].T)
        return gen, crit

    def state_dict(self) -> dict[str, Any]:
        """Everything, snapshots included, as tensors and plain Python values: for ``torch.save`` or sending.

        The specs and the config are plain dicts and the history is tensors, so the saved file
        loads with ``torch.load``'s default ``weights_only=True``. :meth:`from_state_dict`
        rebuilds the result.
        """
        def bank(b: BatchedMLP) -> dict[str, list[Tensor]]:
            return {"weights": [w.detach().clone() for w in b.weights], "biases": [x.detach().clone() for x in b.biases]}

        def plain(v: Any) -> Any:  # numpy scalars as Python numbers (torch.load(weights_only=True) refuses them)
            return v.item() if isinstance(v, np.generic) else v

        def spec(m: MemberSpec) -> dict[str, Any]:
            out = {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}
            out["loss_options"] = {str(k): plain(v) for k, v in m.loss_options.items()}
            return out

        return {
            "members": [spec(m) for m in self.members], "config": dataclasses.asdict(self.config),
            "generator": bank(self.generator), "critic": bank(self.critic),
            "sn_u": [u.clone() for u in self.sn_u], "sn_v": [v.clone() for v in self.sn_v],
            "history": {name: torch.from_numpy(np.array(value)) for name, value in dataclasses.asdict(self.history).items()},
            "steps": self.steps, "seconds": self.seconds,
            "snapshots": {int(step): bank(net) for step, net in self.snapshots.items()},
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "EnsembleResult":
        """The result saved by :meth:`state_dict` (also one saved before the specs were plain dicts)."""
        def bank(saved: Mapping[str, list[Tensor]]) -> BatchedMLP:
            w = saved["weights"]
            out = BatchedMLP(w[0].shape[1], [w[0].shape[2]] * w[0].shape[0], depth=len(w) - 1,
                             activation=config.activation, out_dim=w[-1].shape[2],
                             generator=torch.Generator().manual_seed(0), fused=True).to(w[0])
            with torch.no_grad():
                for p, x in zip([*out.weights, *out.biases], [*w, *saved["biases"]]):
                    p.copy_(x)
            return out

        def spec(m: Any) -> MemberSpec:
            # rebuilt through the constructor either way: a spec pickled by an older version may hold
            # options that are a plain (mutable, unvalidated) dict
            fields = {f.name: getattr(m, f.name) for f in dataclasses.fields(MemberSpec)} if isinstance(m, MemberSpec) else m
            return MemberSpec(**{**fields, "loss_options": dict(fields.get("loss_options", {}))})

        config = state["config"]
        if not isinstance(config, EnsembleConfig):
            config = EnsembleConfig(**{**config, "betas": tuple(config["betas"])})
        # copies throughout, as for the networks: a later change to ``state`` leaves the result as it is
        history = {name: np.array(value.numpy() if isinstance(value, Tensor) else value)
                   for name, value in state["history"].items()}
        return cls(members=tuple(spec(m) for m in state["members"]), config=config,
                   generator=bank(state["generator"]), critic=bank(state["critic"]),
                   sn_u=[u.clone() for u in state["sn_u"]], sn_v=[v.clone() for v in state["sn_v"]],
                   history=EnsembleHistory(**history),
                   steps=int(state["steps"]), seconds=float(state["seconds"]),
                   snapshots={int(step): bank(saved) for step, saved in state.get("snapshots", {}).items()})

    def to(self, device: str | torch.device) -> "EnsembleResult":
        """This result with its tensors on ``device`` (networks, snapshots included, moved in place)."""
        self.generator.to(device)
        self.critic.to(device)
        for net in self.snapshots.values():
            net.to(device)
        self.sn_u = [u.to(device) for u in self.sn_u]
        self.sn_v = [v.to(device) for v in self.sn_v]
        return self


def concat_results(results: Sequence[EnsembleResult],
                   positions: Sequence[Sequence[int]] | None = None) -> EnsembleResult:
    """Join results of one config into one ensemble; ``positions[i]`` are the places of ``results[i]``'s members.

    Without ``positions`` the members are appended in order. The positions must cover ``0..K-1``
    once each. The joined result's ``seconds`` is the largest of the parts' (they ran in parallel);
    its snapshots are those of the steps every part kept.
    """
    results = list(results)
    if not results:
        raise ValueError("results is empty; give at least one EnsembleResult")
    for i, r in enumerate(results):
        if not isinstance(r, EnsembleResult):
            raise TypeError(f"results[{i}] is a {type(r).__name__}; expected an EnsembleResult")
    sizes = [len(r) for r in results]
    if positions is None:
        starts = np.cumsum([0] + sizes)
        positions = [list(range(starts[i], starts[i + 1])) for i in range(len(results))]
    def place(i: Any) -> int:
        if isinstance(i, (bool, np.bool_)) or (isinstance(i, Tensor) and i.dtype == torch.bool):
            raise ValueError(f"positions must be integers; got {i!r}")
        try:
            return operator.index(i)  # ints, numpy and 0-d torch integers; not floats
        except TypeError:
            raise ValueError(f"positions must be integers; got {i!r}") from None

    positions = [[place(i) for i in p] for p in positions]
    if [len(p) for p in positions] != sizes:
        raise ValueError(f"positions have lengths {[len(p) for p in positions]}; the results have {sizes} members")
    order = [i for p in positions for i in p]
    total = sum(sizes)
    if sorted(order) != list(range(total)):
        raise ValueError(f"positions must cover 0..{total - 1} once each; got {positions}")
    cfg = results[0].config
    for i, r in enumerate(results[1:], start=1):
        if r.config != cfg:
            differ = [f"{f.name} ({getattr(cfg, f.name)!r} vs {getattr(r.config, f.name)!r})"
                      for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(r.config, f.name)]
            raise ValueError(f"results to join must come from the same EnsembleConfig; results[0] and results[{i}] "
                             f"differ in {', '.join(differ)}")
        if r.steps != results[0].steps:
            raise ValueError(f"results to join must have trained the same number of steps; results[0] trained "
                             f"{results[0].steps}, results[{i}] trained {r.steps}")
    dims = [r.generator.out_dim for r in results]
    if len(set(dims)) > 1:
        raise ValueError(f"results to join must model data of one dimension; their data dimensions are {dims}")
    inv = torch.empty(total, dtype=torch.long)
    inv[torch.tensor(order)] = torch.arange(total)

    def join(tensors: Sequence[Tensor]) -> Tensor:
        return torch.cat([t.to(tensors[0].device) for t in tensors]).index_select(0, inv.to(tensors[0].device))

    def join_bank(banks: Sequence[BatchedMLP]) -> BatchedMLP:
        b0 = banks[0]
        out = BatchedMLP(b0.in_dim, [b0.widths[0]] * total, depth=b0.depth, activation=b0.activation,
                         out_dim=b0.out_dim, generator=torch.Generator().manual_seed(0), fused=True).to(b0.weights[0])
        with torch.no_grad():
            for layer in range(b0.depth + 1):
                out.weights[layer].copy_(join([b.weights[layer] for b in banks]))
                out.biases[layer].copy_(join([b.biases[layer] for b in banks]))
        return out

    members = [None] * total
    for r, pos in zip(results, positions):
        for m, i in zip(r.members, pos):
            members[i] = m
    hist = [r.history for r in results]
    inv_np = inv.numpy()
    history = EnsembleHistory(
        step=hist[0].step.copy(),
        d_loss=np.concatenate([h.d_loss for h in hist], axis=1)[:, inv_np],
        g_loss=np.concatenate([h.g_loss for h in hist], axis=1)[:, inv_np],
        penalty=np.concatenate([h.penalty for h in hist], axis=1)[:, inv_np],
    )
    n_layers = len(results[0].sn_u)
    return EnsembleResult(
        members=tuple(members),  # type: ignore[arg-type]
        config=cfg,
        generator=join_bank([r.generator for r in results]),
        critic=join_bank([r.critic for r in results]),
        sn_u=[join([r.sn_u[i] for r in results]) for i in range(n_layers)],
        sn_v=[join([r.sn_v[i] for r in results]) for i in range(n_layers)],
        history=history,
        steps=results[0].steps,
        seconds=max(r.seconds for r in results),
        snapshots={s: join_bank([r.snapshots[s] for r in results])
                   for s in sorted(set.intersection(*(set(r.snapshots) for r in results)))},
    )


# ----------------------------------------------------------------------------------------------
# Pieces of the training step
# ----------------------------------------------------------------------------------------------


def _param_dict(weights: Sequence[Tensor], biases: Sequence[Tensor]) -> dict[str, Tensor]:
    out = {f"weights.{i}": w for i, w in enumerate(weights)}
    out.update({f"biases.{i}": b for i, b in enumerate(biases)})
    return out


def _normalise(x: Tensor) -> Tensor:
    """``x / max(||x||, eps)`` along the last dimension (``torch.nn.functional.normalize``)."""
    return F.normalize(x, dim=-1, eps=_SN_EPS)


@torch.no_grad()
def _power_iteration_(w: Tensor, u: Tensor, v: Tensor, iterations: int = 1) -> None:
    """In place, per member: ``u <- normalise(W v)``, ``v <- normalise(W^T u)`` with ``W = w[k]^T``."""
    for _ in range(iterations):
        u.copy_(_normalise(torch.bmm(v.unsqueeze(1), w).squeeze(1)))
        # (u^T w^T)^T rather than w u: bmm runs a single-column product ~8x slower than a single row
        v.copy_(_normalise(torch.bmm(u.unsqueeze(1), w.transpose(1, 2)).squeeze(1)))


def _spectral_mask(spectral: Sequence[bool], device: torch.device | str) -> Tensor | None:
    """The members' spectral-norm flags as a ``(K, 1, 1)`` tensor on ``device``; ``None`` when all or
    none are set (then :func:`_effective_weights` needs no mask)."""
    if all(spectral) or not any(spectral):
        return None
    return torch.tensor(list(spectral), device=device).view(-1, 1, 1)


def _effective_weights(weights: list[Tensor], sn_u: list[Tensor], sn_v: list[Tensor], spectral: Sequence[bool],
                       power_iteration: bool, mask: Tensor | None, copies: bool = False) -> list[Tensor]:
    """``W / sigma(W)`` for spectral-norm members, ``W`` for the others; ``sigma = u^T W v``.

    ``spectral``: one Python boolean per member, so that choosing the path reads nothing back from
    the device (on a GPU, ``bool(tensor)`` waits for all the work queued before it). ``mask``:
    ``_spectral_mask(spectral, device)``, made once by the caller (a copy to the device).
    ``copies``: ``sigma`` from copies of ``u`` and ``v``, for a caller that takes another power
    iteration (which updates them in place) before differentiating this one's result.
    """
    if not sn_u or not any(spectral):
        return weights
    everyone = all(spectral)
    out = []
    for w, u, v in zip(weights, sn_u, sn_v):
        if power_iteration:
            _power_iteration_(w.detach(), u, v)
        if copies:
            u, v = u.clone(), v.clone()
        sigma = (torch.bmm(v.unsqueeze(1), w) * u.unsqueeze(1)).sum(-1, keepdim=True)  # (K, 1, 1) = u^T W v
        out.append(w / (sigma if everyone else torch.where(mask, sigma, torch.ones_like(sigma))))  # type: ignore[arg-type]
    return out


def _draw(gens: Sequence[torch.Generator], shape: tuple[int, ...], like: Tensor, uniform: bool = False) -> Tensor:
    out = torch.empty((len(gens), *shape), device=like.device, dtype=like.dtype)
    for row, g in zip(out.unbind(0), gens):  # one call for the K row views
        if uniform:
            row.uniform_(0.0, 1.0, generator=g)
        else:
            row.normal_(0.0, 1.0, generator=g)
    return out


class _LossGroup:
    """Members sharing one loss (same name and options): ``positions`` in the ensemble."""

    def __init__(self, loss: _losses.GANLoss, positions: list[int]) -> None:
        self.loss = loss
        self.positions = positions
        self.per_member = loss.batch_statistics
        self.vmapped: bool | None = None  # per-member losses: None = not tried yet, then whether vmap works
        self.key: Any = loss.name  # the loss's name and options (set by _group_losses)

    def _batched(self, half: str, first: Tensor, second: Tensor | None) -> Tensor:
        """``(K_g,)`` values of a batch-statistic loss's ``half``, one per row of the ``(K_g, n)`` inputs.

        The loss's own row-wise form when it has one (``GANLoss.has_rows``: one call, as cheap as a
        per-sample loss); else ``torch.func.vmap`` over the rows (one vectorised call instead of
        ``K_g``, but about half a millisecond of overhead per call with its backward); a loss whose
        operations vmap cannot batch falls back, once and for good, to a loop over the members.
        """
        args = (first,) if second is None else (first, second)
        if self.loss.has_rows:
            return getattr(self.loss, f"{half}_rows")(*args)
        fn = getattr(self.loss, half)
        if self.vmapped is not False:
            try:
                values = torch.func.vmap(fn)(*args)
            except (RuntimeError, ValueError, TypeError):  # RuntimeError covers vmap's unsupported operators
                if self.vmapped:
                    raise
                self.vmapped = False
            else:
                self.vmapped = True
                return values
        return torch.stack([fn(*(a[j] for a in args)) for j in range(len(self.positions))])

    def discriminator(self, dr: Tensor, df: Tensor) -> Tensor | tuple[Tensor, ...]:
        """The group's members' losses from their ``(K_g, n)`` critic outputs: ``(K_g,)`` values, or
        per-sample terms ``(real, fake)``, each ``(K_g, n)``, whose row means add up to them
        (:func:`_reduce_groups` takes the means of all groups at once)."""
        if self.per_member:
            return self._batched("discriminator", dr, df)
        terms = self.loss.discriminator(dr, df, reduction="none")
        if isinstance(terms, LossTerms):
            return (terms.real, terms.fake)
        return terms.mean(-1)

    def generator(self, df: Tensor, dr: Tensor | None) -> Tensor | tuple[Tensor, ...]:
        """The group's members' losses (``dr``: outputs on real data, or ``None``): ``(K_g,)`` values,
        or the ``(K_g, n)`` per-sample terms whose row means they are, as a 1-tuple."""
        rel = self.loss.requires_real_in_generator
        if self.per_member:
            return self._batched("generator", df, dr if rel else None)
        return (self.loss.generator(df, dr if rel else None, reduction="none"),)


    @staticmethod
    def row_values(part: Tensor | tuple[Tensor, ...]) -> Tensor:
        """``(K_g,)`` values from what :meth:`discriminator` or :meth:`generator` gave: per-sample
        terms averaged over their rows and added, as :func:`_reduce_groups` does."""
        if not isinstance(part, tuple):
            return part
        out = part[0].mean(-1)
        for t in part[1:]:
            out = out + t.mean(-1)
        return out


def _reduce_groups(parts: Sequence[Tensor | tuple[Tensor, ...]]) -> Tensor:
    """The members' losses in the groups' order, from what each :class:`_LossGroup` gave.

    A group gives ``(K_g,)`` values or a tuple of per-sample terms, each ``(K_g, n)``, whose row means
    add up to its values. The terms of all such groups are joined and averaged at once: one mean per
    term for the whole ensemble (and one in the backward pass) instead of one per group, which on a
    GPU is one launch instead of one per loss. A row's mean does not depend on the rows beside it (up
    to float rounding: a long row alone may be split across threads differently).
    """
    termed = [p for p in parts if isinstance(p, tuple)]
    if not termed:
        return torch.cat(parts) if len(parts) > 1 else parts[0]  # type: ignore[arg-type]

    def joined(i: int) -> Tensor:
        return torch.cat([t[i] for t in termed]) if len(termed) > 1 else termed[0][i]

    means = joined(0).mean(-1)
    for i in range(1, len(termed[0])):
        means = means + joined(i).mean(-1)
    if len(termed) == len(parts):
        return means
    pieces = iter(means.split([t[0].shape[0] for t in termed]))
    return torch.cat([next(pieces) if isinstance(p, tuple) else p for p in parts])


def _group_losses(members: Sequence[MemberSpec]) -> list[_LossGroup]:
    """Groups of members with the same loss (name and options), in order of first appearance."""
    found: dict[Any, list[int]] = {}
    objects: dict[Any, _losses.GANLoss] = {}
    for k, m in enumerate(members):
        loss = m.make_loss()
        key = (loss.name, tuple(sorted((kk, repr(vv)) for kk, vv in loss.options.items())))
        found.setdefault(key, []).append(k)
        objects.setdefault(key, loss)
    groups = [_LossGroup(objects[key], pos) for key, pos in found.items()]
    for g, key in zip(groups, found):
        g.key = key
    return groups


class _GroupSplit:
    """Rows of a ``(K, ...)`` tensor as the loss groups' ``(K_g, ...)`` parts, in the groups' order.

    One gather into the groups' concatenated order (none when the members already come group by
    group, as in a grid built loss by loss) and one ``split`` into views: two autograd nodes for
    all groups instead of a gather and a scatter per group. ``order[k]`` is the place of member
    ``k`` in that concatenation (to put per-group results back in the members' order).
    """

    def __init__(self, groups: Sequence[_LossGroup], device: torch.device) -> None:
        concat = [k for g in groups for k in g.positions]
        self.identity = concat == list(range(len(concat)))
        self.index = torch.tensor(concat, dtype=torch.long, device=device)
        self.sizes = [len(g.positions) for g in groups]
        self.order = torch.empty_like(self.index)
        self.order[self.index] = torch.arange(len(concat), device=device)

    def __call__(self, x: Tensor | None) -> Sequence[Tensor | None]:
        if x is None:
            return [None] * len(self.sizes)
        return (x if self.identity else x.index_select(0, self.index)).split(self.sizes)


def _loss_functions(groups: Sequence[_LossGroup], split: _GroupSplit) -> tuple[Callable[[Tensor], Tensor],
                                                                               Callable[[Tensor, Tensor | None], Tensor]]:
    """``critic_losses(out)``: the members' critic losses, in the groups' order, from the critics'
    ``(K, 2n)`` outputs (real batch, then fakes); ``generator_losses(d_fake, d_real)``: their
    generator losses from the ``(K, n)`` outputs on the fakes (and on the real batch, or ``None``)."""

    def critic_losses(out: Tensor) -> Tensor:
        n = out.shape[1] // 2
        return _reduce_groups([g.discriminator(dr, df) for g, dr, df in
                               zip(groups, split(out[:, :n]), split(out[:, n:]))])

    def generator_losses(d_fake: Tensor, d_real: Tensor | None) -> Tensor:
        return _reduce_groups([g.generator(df, dr) for g, df, dr in zip(groups, split(d_fake), split(d_real))])

    return critic_losses, generator_losses


def _full_width_loss_functions(groups: Sequence[_LossGroup], split: _GroupSplit, k: int,
                               device: torch.device) -> tuple[Callable[[Tensor], Tensor],
                                                              Callable[[Tensor, Tensor | None], Tensor]]:
    """:func:`_loss_functions` for ``torch.compile``: every group's loss is evaluated on all ``K`` rows
    and each member's row taken from its own group's result, rather than on the group's rows alone.

    Evaluated so, the groups' losses share one iteration space, and Inductor fuses them (and their
    backward) into a few kernels, where eager PyTorch would launch each group's operators on the
    whole batch: ``len(groups)`` times the element-wise work of one loss, which costs nothing
    beside the launches on a GPU. The rows of other members are replaced by zeros before a group
    sees them (a critic value at which every loss is finite), so that a value out of another loss's
    range (``exp`` of a large WGAN critic value) cannot give that row ``inf`` and, through the
    selection's backward (``0 * inf``), a NaN gradient. Results in the groups' order, as
    :func:`_loss_functions` gives them.
    """
    masks = [None if len(g.positions) == k else
             torch.zeros(k, 1, dtype=torch.bool, device=device).index_fill_(
                 0, torch.tensor(g.positions, device=device), True) for g in groups]

    def own_rows(mask: Tensor | None, x: Tensor | None) -> Tensor | None:
        return x if mask is None or x is None else torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def chosen(values: Sequence[Tensor]) -> Tensor:
        out = values[0]
        for v, mask in zip(values[1:], masks[1:]):
            out = torch.where(mask.squeeze(1), v, out)  # type: ignore[union-attr]
        return out if split.identity else out.index_select(0, split.index)

    def critic_losses(out: Tensor) -> Tensor:
        n = out.shape[1] // 2
        values = []
        for g, mask in zip(groups, masks):
            x = own_rows(mask, out)
            values.append(g.row_values(g.discriminator(x[:, :n], x[:, n:])))  # type: ignore[index]
        return chosen(values)

    def generator_losses(d_fake: Tensor, d_real: Tensor | None) -> Tensor:
        return chosen([g.row_values(g.generator(own_rows(mask, d_fake), own_rows(mask, d_real)))  # type: ignore[arg-type]
                       for g, mask in zip(groups, masks)])

    return critic_losses, generator_losses


# compiled loss functions by (device, groups' losses and positions): the same members in a later run
# (a benchmark's repeats, one member of a grid after another) reuse the compiled code
_COMPILED_LOSSES: "OrderedDict[Any, tuple[Callable[..., Tensor], ...]]" = OrderedDict()
_COMPILED_KEEP = 64
_compiled_made = itertools.count()


def _own_code(fn: Callable[..., Tensor], name: str) -> Callable[..., Tensor]:
    """``fn`` with a code object of its own: ``torch.compile`` keeps its compiled versions (and their
    guards) per code object, at most ``recompile_limit`` (8) of them; closures of one ``def`` would
    share that limit, and a ninth set of members would silently run uncompiled."""
    code = fn.__code__.replace(co_name=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


def _explained(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``fn`` (compiled), with a failure of ``torch.compile`` itself (no C++ compiler or Python
    headers on the CPU, no Triton on a GPU, an operator it cannot trace) said in plain words."""

    def call(*args: Any) -> Tensor:
        try:
            return fn(*args)
        except torch._dynamo.exc.TorchDynamoException as err:
            raise RuntimeError(
                f"compile_losses=True: torch.compile could not compile the members' loss functions "
                f"({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else 'no message'}). "
                f"It needs a C++ compiler and the Python headers on the CPU, Triton on a GPU; "
                f"or train with EnsembleConfig(compile_losses=False), which computes the same losses") from err

    return call


def _loss_key(g: _LossGroup) -> Any:
    """A group's loss for the cache: its name and options, and the registered loss they name
    (``id`` of its registry entry, kept alive by the cache), so that a loss registered anew under
    the same name is compiled anew."""
    return g.key, id(_losses.registry._SPECS.get(g.loss.name))


def _compiled_loss_functions(groups: Sequence[_LossGroup], split: _GroupSplit, k: int,
                             device: torch.device) -> tuple[Callable[..., Tensor], ...]:
    """:func:`_full_width_loss_functions` through ``torch.compile`` (``EnsembleConfig.compile_losses``)."""
    if device.type == "cuda" and device.index is None:  # "cuda" means the current device, which may change
        device = torch.device("cuda", torch.cuda.current_device())
    key = (str(device), k, tuple((_loss_key(g), tuple(g.positions)) for g in groups))
    found = _COMPILED_LOSSES.get(key)
    if found is None:
        i = next(_compiled_made)
        fns = tuple(_explained(torch.compile(_own_code(fn, f"{fn.__name__}_{i}"), dynamic=False, fullgraph=True))
                    for fn in _full_width_loss_functions(groups, split, k, device))
        # the registry entries go with them, so that the ids in the key cannot be reused meanwhile
        found = (*fns, [_losses.registry._SPECS.get(g.loss.name) for g in groups])
        _COMPILED_LOSSES[key] = found
        while len(_COMPILED_LOSSES) > _COMPILED_KEEP:
            _COMPILED_LOSSES.popitem(last=False)
    _COMPILED_LOSSES.move_to_end(key)
    return found[:2]


class _Subset:
    """A subset of the critics (e.g. those with an input-gradient penalty) evaluated on their own.

    ``fused``: evaluate through the hand-written backward (:class:`gan_lib.nets.BatchedMLP`); the
    penalties' second derivatives take the plain path, which they would otherwise recompute.
    """

    def __init__(self, bank: BatchedMLP, positions: list[int], device: torch.device, fused: bool) -> None:
        self.positions = positions
        self.everyone = positions == list(range(len(bank)))
        self.index = torch.tensor(positions, dtype=torch.long, device=device)
        self.shell = BatchedMLP(
            bank.in_dim, [bank.widths[0]] * len(positions), depth=bank.depth, activation=bank.activation,
            out_dim=bank.out_dim, generator=torch.Generator().manual_seed(0), fused=fused).to(device)

    def take(self, x: Tensor) -> Tensor:
        return x if self.everyone else x.index_select(0, self.index)

    def __call__(self, weights: Sequence[Tensor], biases: Sequence[Tensor], x: Tensor) -> Tensor:
        params = _param_dict([self.take(w) for w in weights], [self.take(b) for b in biases])
        return functional_call(self.shell, params, (x,))


def _column(values: Sequence[float], like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _resolve_data(members: Sequence[MemberSpec], data: Data, device: torch.device,
                  dtype: torch.dtype) -> tuple[Tensor, bool]:
    """Training sets as one ``(K, N, d)`` tensor (or ``(N, d)`` when shared) and whether they are shared."""

    def check(name: str, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (N, d); got {type(x).__name__}")
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (N, d) with N >= 1")
        if not x.is_floating_point():
            raise ValueError(f"{name} has dtype {x.dtype}; it must hold finite floating-point numbers")
        out = x.to(device=device, dtype=dtype)
        if not bool(torch.isfinite(out).all()):  # one pass over the data when it is fine; why it is not, after
            if not bool(torch.isfinite(x).all()):
                bad = int((~torch.isfinite(x)).sum())
                raise ValueError(f"{name} must hold finite floating-point numbers; {bad} of its {x.numel()} values are nan or inf")
            big = float(x.abs().max())  # finite in a wider dtype, beyond the range of the training one
            raise ValueError(f"{name} holds values up to {big:.3g} in absolute value, beyond the range of "
                             f"{dtype} (largest {torch.finfo(dtype).max:.3g}) in which the members train")
        return out

    named = [m.dataset for m in members]
    if isinstance(data, Tensor):
        if any(n is not None for n in named):
            raise ValueError(f"members name datasets {sorted({n for n in named if n})} but data is one tensor; "
                             f"pass a dict dataset -> tensor, or leave MemberSpec.dataset as None")
        return check("data", data), True
    if isinstance(data, Mapping):
        unnamed = [k for k, n in enumerate(named) if n is None]
        if unnamed:
            raise ValueError(f"data is a mapping dataset -> tensor but members {unnamed} name no dataset "
                             f"(MemberSpec.dataset=None); give each member one of the keys {sorted(map(str, data))}")
        missing = sorted({str(n) for n in named if n not in data})
        if missing:
            raise ValueError(f"dataset(s) {missing} are not keys of data; keys: {sorted(map(str, data))}")
        sets = [check(f"data[{n!r}]", data[n]) for n in named]
    elif isinstance(data, Sequence) and not isinstance(data, str):
        if len(data) != len(members):
            raise ValueError(f"data is a list of {len(data)} tensors for {len(members)} members; give one per member")
        sets = [check(f"data[{k}]", x) for k, x in enumerate(data)]
    else:
        raise TypeError(f"data must be a tensor (N, d), a list of K tensors or a dict dataset -> tensor; "
                        f"got {type(data).__name__}")
    shapes = {tuple(x.shape) for x in sets}
    if len(shapes) != 1:
        raise ValueError(f"the members' training sets have shapes {sorted(shapes)}; they must have the same "
                         f"number of points and dimension (the members share the batch schedule)")
    return torch.stack(sets), False


def _checked_inputs(members: Sequence[MemberSpec], data: Data, config: EnsembleConfig,
                    snapshot_steps: Sequence[int], device: torch.device | None = None) -> tuple[Tensor, bool, set[int]]:
    """What :func:`train_ensemble` checks before it trains (``run_grid`` checks it on every rank):
    the members, the config, the data (on ``device``, default the config's; see
    :func:`_resolve_data`) and the snapshot steps. Returns the data, whether it is shared, and the
    snapshot steps as a set."""
    if not members:
        raise ValueError("members is empty; give at least one MemberSpec")
    for i, m in enumerate(members):
        if not isinstance(m, MemberSpec):
            raise TypeError(f"members[{i}] is a {type(m).__name__}; expected a MemberSpec")
    if not isinstance(config, EnsembleConfig):
        raise TypeError(f"config must be an EnsembleConfig; got {type(config).__name__}")
    wanted = torch.device(config.device)
    if wanted.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"config.device={config.device!r}, but this torch ({torch.__version__}) sees no CUDA device; "
                         f"use device='cpu'")
    x_all, shared = _resolve_data(members, data, wanted if device is None else device,
                                  getattr(torch, config.dtype))
    total = config.total_steps(x_all.shape[-2])
    if isinstance(snapshot_steps, (str, bytes)) or not isinstance(snapshot_steps, Sequence):
        raise TypeError(f"snapshot_steps={snapshot_steps!r} must be a sequence of generator steps")
    for s in snapshot_steps:
        named("snapshot step", s, lambda v: integer_number(v, 1, total))
    return x_all, shared, {int(s) for s in snapshot_steps}


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------


def _init_members(members: Sequence[MemberSpec], cfg: EnsembleConfig, d: int,
                  gens: Sequence[torch.Generator]) -> tuple[BatchedMLP, BatchedMLP, list[Tensor], list[Tensor]]:
    """The stacked networks and spectral-norm vectors, member ``k`` drawn from ``gens[k]`` alone."""
    k = len(members)
    blank = torch.Generator().manual_seed(0)
    generator = BatchedMLP(cfg.z_dim, [cfg.width] * k, cfg.depth, cfg.activation, out_dim=d, generator=blank, fused=True)
    critic = BatchedMLP(d, [cfg.width] * k, cfg.depth, cfg.activation, out_dim=1, generator=blank, fused=True)
    dims = [d] + [cfg.width] * cfg.depth + [1]
    f32 = torch.float32   # the draws are made in float32 whatever torch's default dtype, then cast to cfg.dtype
    sn_u = [torch.zeros(k, dims[i + 1], dtype=f32) for i in range(cfg.depth + 1)]
    sn_v = [torch.zeros(k, dims[i], dtype=f32) for i in range(cfg.depth + 1)]
    with torch.no_grad():
        for i, (m, g) in enumerate(zip(members, gens)):
            # the draws of BatchedMLP(in, [width], depth, out, generator=g), generator then critic,
            # straight into row i (nn.Linear's uniform(+-1/sqrt(fan_in)), weight then bias per layer)
            for bank in (generator, critic):
                for layer in range(cfg.depth + 1):
                    w, b = bank.weights[layer], bank.biases[layer]
                    bound = torch.tensor(float(w.shape[1]), dtype=f32).rsqrt()
                    w[i].copy_((torch.rand(w.shape[1:], generator=g, dtype=f32) * 2 - 1) * bound)
                    b[i].copy_((torch.rand(b.shape[1:], generator=g, dtype=f32) * 2 - 1) * bound)
            if m.regulariser == "spectral_norm":
                for layer in range(cfg.depth + 1):
                    u = torch.randn(dims[layer + 1], generator=g, dtype=f32)
                    v = torch.randn(dims[layer], generator=g, dtype=f32)
                    sn_u[layer][i] = _normalise(u)
                    sn_v[layer][i] = _normalise(v)
    return generator, critic, sn_u, sn_v


def train_ensemble(
    members: Sequence[MemberSpec],
    data: Data,
    config: EnsembleConfig,
    progress: bool = True,
    desc: str = "ensemble",
    snapshot_steps: Sequence[int] = (),
) -> EnsembleResult:
    r"""Train every member of ``members`` at once (module docstring); return an :class:`EnsembleResult`.

    ``data``: one ``(N, d)`` tensor shared by all members, a list of ``K`` such tensors (one per
    member), or a mapping ``name -> tensor`` with each member naming its set in
    ``MemberSpec.dataset``. All sets need the same ``N`` and ``d`` (the members share the batch
    schedule). ``progress`` shows a ``tqdm`` bar over generator steps. ``snapshot_steps``: generator
    steps (in ``1..total``) after which a copy of the generators is kept in
    :attr:`EnsembleResult.snapshots` (e.g. for a convergence curve from a single run).
    """
    members = tuple(members)
    x_all, shared, keep = _checked_inputs(members, data, config, snapshot_steps)
    device = torch.device(config.device)
    dtype = getattr(torch, config.dtype)
    k = len(members)
    n_points, d = x_all.shape[-2], x_all.shape[-1]
    total = config.total_steps(n_points)
    snapshots: dict[int, BatchedMLP] = {}
    bsz, z_dim = config.batch_size, config.z_dim

    gens = [torch.Generator(device="cpu").manual_seed(int(m.seed)) for m in members]
    generator, critic, sn_u, sn_v = _init_members(members, config, d, gens)
    if device.type != "cpu":
        # the training draws of a member come from a generator on the device, seeded with its seed
        gens = [torch.Generator(device=device).manual_seed(int(m.seed)) for m in members]
    generator, critic = generator.to(device=device, dtype=dtype), critic.to(device=device, dtype=dtype)
    sn_u = [u.to(device=device, dtype=dtype) for u in sn_u]
    sn_v = [v.to(device=device, dtype=dtype) for v in sn_v]
    for layer in range(config.depth + 1):  # torch's spectral_norm starts from 15 power iterations
        _power_iteration_(critic.weights[layer].detach(), sn_u[layer], sn_v[layer], _SN_INIT_ITERATIONS)

    regs = [m.regulariser for m in members]
    spectral = [r == "spectral_norm" for r in regs]  # Python booleans: no device sync to decide on them
    any_sn = any(spectral)
    sn_mask = _spectral_mask(spectral, device)
    gp_pos = [i for i, r in enumerate(regs) if r == "gp"]
    r1_pos = [i for i, r in enumerate(regs) if r == "r1"]
    pen_pos = gp_pos + r1_pos
    pen_subset = _Subset(critic, pen_pos, device, fused=False) if pen_pos else None
    pen_weight = _column([members[i].reg_weight if regs[i] == "gp" else 0.5 * members[i].reg_weight
                          for i in pen_pos], x_all)
    n_gp = len(gp_pos)
    gp_gens = [gens[i] for i in gp_pos]
    clip_pos = [i for i, r in enumerate(regs) if r == "clip"]
    clip_bound = _column([members[i].clip if r == "clip" else math.inf for i, r in enumerate(regs)], x_all)
    groups = _group_losses(members)
    split_groups = _GroupSplit(groups, device)
    order = split_groups.order
    if config.compile_losses and any(g.per_member and not g.loss.has_rows for g in groups):
        raise ValueError(
            f"compile_losses=True needs losses with a row-wise form (GANLoss.has_rows); "
            f"{sorted(g.loss.name for g in groups if g.per_member and not g.loss.has_rows)} have none: "
            f"train them with compile_losses=False")
    critic_losses, generator_losses = (_compiled_loss_functions(groups, split_groups, k, device) if config.compile_losses
                                       else _loss_functions(groups, split_groups))
    rel_pos = sorted(i for g in groups if g.loss.requires_real_in_generator for i in g.positions)
    rel_subset = _Subset(critic, rel_pos, device, fused=True) if rel_pos else None

    d_params = [*critic.weights, *critic.biases]
    g_params = [*generator.weights, *generator.biases]
    lr_d = [m.lr_d for m in members]
    lr_g = [m.lr_g for m in members]
    if config.optimiser == "rmsprop":
        opt_d: StackedRMSprop | StackedAdam = StackedRMSprop(d_params, lr_d)
        opt_g: StackedRMSprop | StackedAdam = StackedRMSprop(g_params, lr_g)
    else:
        opt_d = StackedAdam(d_params, lr_d, betas=config.betas)
        opt_g = StackedAdam(g_params, lr_g, betas=config.betas)

    def d_forward(x: Tensor) -> Tensor:
        """The critic's values at ``x`` in training: a power iteration first for spectral norm."""
        if not any_sn:
            return critic(x)
        w = _effective_weights(list(critic.weights), sn_u, sn_v, spectral, True, sn_mask,
                               copies=config.separate_critic_calls)
        return functional_call(critic, _param_dict(w, list(critic.biases)), (x,))

    log_steps: list[int] = []
    log_d: list[Tensor] = []
    log_g: list[Tensor] = []
    log_p: list[Tensor] = []
    zeros_k = torch.zeros(k, device=device, dtype=dtype)
    step = 0
    start = time.perf_counter()
    bar = tqdm(total=total, desc=desc, disable=not progress, mininterval=1.0)
    try:
        while step < total:
            if not config.shuffle:   # the data's own order, every epoch (no draw)
                x_epoch = x_all.unsqueeze(0).expand(k, n_points, d) if shared else x_all
            else:
                perm = torch.stack([torch.randperm(n_points, generator=g, device=g.device) for g in gens])
                if shared:
                    x_epoch = x_all[perm]
                else:
                    x_epoch = torch.gather(x_all, 1, perm.unsqueeze(-1).expand(k, n_points, d))
            for begin in range(0, n_points, bsz):
                if step >= total:
                    break
                x_real = x_epoch[:, begin:begin + bsz].contiguous()
                n = x_real.shape[1]
                # the generator step's noise, one draw per member (on a GPU one launch each, not
                # n_critic + 1): the critic steps' z, the generator's z, then the gp's mixing weights
                z_all = _draw(gens, (config.n_critic + 1, n, z_dim), x_all)
                eps_all = _draw(gp_gens, (config.n_critic, n, 1), x_all, uniform=True) if n_gp else None
                # ---- critic steps
                for j in range(config.n_critic):
                    z = z_all[:, j]
                    eps = eps_all[:, j] if eps_all is not None else None
                    with torch.no_grad():
                        x_fake = generator(z)
                    if config.separate_critic_calls:  # a power iteration per call (spectral norm)
                        out = torch.cat([d_forward(x_real), d_forward(x_fake)], dim=1)
                    else:
                        out = d_forward(torch.cat([x_real, x_fake], dim=1))
                    d_vec = critic_losses(out)
                    d_total = d_vec.sum()
                    pen_vec = None
                    if pen_subset is not None:
                        x_pen_parts = []
                        if n_gp:
                            sub_real = x_real.index_select(0, pen_subset.index[:n_gp])
                            sub_fake = x_fake.index_select(0, pen_subset.index[:n_gp])
                            x_pen_parts.append(eps * sub_real + (1.0 - eps) * sub_fake)
                        if r1_pos:
                            x_pen_parts.append(x_real.index_select(0, pen_subset.index[n_gp:]))
                        x_pen = torch.cat(x_pen_parts).requires_grad_(True)
                        out_pen = pen_subset(list(critic.weights), list(critic.biases), x_pen)
                        (grad_x,) = torch.autograd.grad(out_pen.sum(), x_pen, create_graph=True)
                        norms = torch.linalg.vector_norm(grad_x, dim=-1)  # (K_p, n)
                        gp_part = (norms[:n_gp] - 1.0).square().mean(-1)
                        r1_part = norms[n_gp:].square().mean(-1)
                        pen_vec = pen_weight * torch.cat([gp_part, r1_part])
                        d_total = d_total + pen_vec.sum()
                    grads = torch.autograd.grad(d_total, d_params)
                    opt_d.step(grads)
                    if clip_pos:
                        with torch.no_grad():
                            for p in d_params:
                                bound = clip_bound.view(-1, *([1] * (p.ndim - 1)))
                                p.clamp_(-bound, bound)
                # ---- generator step (the critic's weights are constants here)
                fake = generator(z_all[:, config.n_critic])
                with torch.no_grad():
                    w_now = _effective_weights(list(critic.weights), sn_u, sn_v, spectral, True, sn_mask) if any_sn else None
                # the critic's parameters are constants here: detached, so that no gradient of theirs is formed
                d_fake = functional_call(critic, _param_dict([w.detach() for w in (w_now or critic.weights)],
                                                             [b.detach() for b in critic.biases]), (fake,))
                d_real_g = None
                if rel_subset is not None:
                    with torch.no_grad():
                        d_real_g = torch.zeros(k, n, device=device, dtype=dtype)
                        d_real_g[rel_subset.index] = rel_subset(
                            list(critic.weights) if w_now is None else w_now, list(critic.biases),
                            rel_subset.take(x_real))
                g_vec = generator_losses(d_fake, d_real_g)
                grads = torch.autograd.grad(g_vec.sum(), g_params)
                opt_g.step(grads)
                step += 1
                bar.update(1)
                if step in keep:
                    snapshots[step] = copy.deepcopy(generator)
                if step % config.log_every == 0 or step == total:
                    log_steps.append(step)
                    log_d.append(d_vec.detach()[order])
                    log_g.append(g_vec.detach()[order])
                    if pen_vec is None:
                        log_p.append(zeros_k)
                    else:
                        full = zeros_k.clone()
                        full[pen_subset.index] = pen_vec.detach()  # type: ignore[union-attr]
                        log_p.append(full)
    finally:
        bar.close()
    seconds = time.perf_counter() - start

    def stacked(rows: list[Tensor]) -> np.ndarray:
        return torch.stack(rows).cpu().numpy() if rows else np.zeros((0, k), dtype=np.float32)

    history = EnsembleHistory(np.asarray(log_steps, dtype=np.int64), stacked(log_d), stacked(log_g), stacked(log_p))
    return EnsembleResult(members, config, generator, critic, sn_u, sn_v, history, total, seconds, snapshots)
