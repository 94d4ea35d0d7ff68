r"""Two-dimensional distributions with exact densities, for GAN experiments whose answer is known.

The first six are the synthetic data of Song & Ermon (2020, "Bridging the gap between
f-GANs and Wasserstein GANs"), defined as in their released code:

- ``mog``: :math:`\tfrac12 N((-4, 0), 0.5^2 I) + \tfrac12 N((4, 0), 0.5^2 I)`.
- ``banana``: :math:`x_0 \sim N(0, 2^2)`, :math:`x_1 \mid x_0 \sim N(0.2 (x_0^2 - 4), 1)`.
- ``rings``: radius :math:`r = 5 + N(0, 0.2^2)`, angle :math:`a \sim U[0, 2\pi)`, point
  :math:`(r \sin a, r \cos a)`.
- ``square``: uniform on :math:`[-3, 3]^2`.
- ``cosine``: :math:`x_0 \sim U(-4, 4)`, :math:`x_1 \mid x_0 \sim N(3 \cos(2 x_0), 1)`.
- ``funnel``: :math:`x_0 \sim N(0, 2^2)`, :math:`x_1 \mid x_0 \sim N(0, v)` with variance
  :math:`v = \mathrm{clip}(e^{-x_0}, 0, 10)`.

Two mixtures common in the mode-collapse literature complete the set:

- ``ring8``: eight equal-weight Gaussians with means :math:`r(\cos 2\pi k/8, \sin 2\pi k/8)`,
  radius 2 and standard deviation 0.02 by default. The modes are 2 sin(pi/8) * 2 = 1.53 apart,
  about 77 standard deviations, so a generator that bridges two modes puts visible mass where the
  data has none, and "within 3 standard deviations of a mode" is a sharp test of sample quality.
- ``grid25``: 25 equal-weight Gaussians on the grid :math:`\{-4, -2, 0, 2, 4\}^2`, standard
  deviation 0.05 by default (modes 40 standard deviations apart).

:func:`get` returns a :class:`Dataset2D`: ``sample(n, generator)`` draws a float32 ``(n, 2)``
tensor, ``log_prob(x)`` is the exact log-density (float64), ``modes`` gives the means and standard
deviations of a mixture (``None`` for the others) for :func:`gan_lib.metrics.mode_coverage`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import torch
from torch import Tensor

from gan_lib.validation import integer_number, real_number, seed_number

__all__ = ["Modes", "Dataset2D", "get", "names_2d"]

_LOG_2PI = math.log(2.0 * math.pi)


class Modes(NamedTuple):
    """The components of an equal-weight isotropic Gaussian mixture (float64)."""

    means: Tensor  #: ``(K, 2)`` component means
    stds: Tensor  #: ``(K,)`` per-axis standard deviation of each component


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def _normal_logpdf(x: Tensor, mean: Tensor | float, log_std: Tensor | float) -> Tensor:
    """``log N(x; mean, exp(log_std)^2)``, elementwise, with the log-std given (no underflow)."""
    log_std = torch.as_tensor(log_std, dtype=x.dtype)
    diff = x - mean
    z = diff * torch.exp(-log_std)
    z = torch.where(diff == 0, torch.zeros_like(z), z)  # 0 at the mean even where 1/std overflows
    return -0.5 * z**2 - log_std - 0.5 * _LOG_2PI


def _mixture_log_prob(x: Tensor, modes: Modes) -> Tensor:
    """``log (1/K) sum_k N(x; m_k, s_k^2 I)`` for x of shape ``(..., 2)``."""
    diff = x[..., None, :] - modes.means  # (..., K, 2)
    s = modes.stds
    comp = -0.5 * ((diff / s[:, None]) ** 2).sum(-1) - 2.0 * torch.log(s) - _LOG_2PI  # (..., K); no s**2 to underflow
    return torch.logsumexp(comp, dim=-1) - math.log(modes.means.shape[0])


def _mixture_sample(n: int, g: torch.Generator | None, modes: Modes) -> Tensor:
    k = torch.randint(modes.means.shape[0], (n,), generator=g)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return modes.means[k] + modes.stds[k, None] * z


def _uniform(n: int, g: torch.Generator | None, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------
# The distributions: defaults, sampler, log-density, modes
# ------------------------------------------------------------------------------------------------


def _mog_modes(o: Mapping[str, float]) -> Modes:
    c = o["offset"]
    return Modes(torch.tensor([[-c, 0.0], [c, 0.0]], dtype=torch.float64), torch.full((2,), o["std"], dtype=torch.float64))


def _ring8_modes(o: Mapping[str, float]) -> Modes:
    a = 2.0 * math.pi * torch.arange(8, dtype=torch.float64) / 8.0
    means = o["radius"] * torch.stack([torch.cos(a), torch.sin(a)], dim=1)
    return Modes(means, torch.full((8,), o["std"], dtype=torch.float64))


def _grid25_modes(o: Mapping[str, float]) -> Modes:
    axis = o["spacing"] * torch.arange(-2, 3, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    means = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    return Modes(means, torch.full((25,), o["std"], dtype=torch.float64))


def _banana_sample(n: int, g: torch.Generator | None, o: Mapping[str, float]) -> Tensor:
    x0 = 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
    x1 = 0.2 * (x0**2 - 4.0) + torch.randn(n, generator=g, dtype=torch.float64)
    return torch.stack([x0, x1], dim=1)


def _banana_log_prob(x: Tensor, o: Mapping[str, float]) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    value = _normal_logpdf(x0, 0.0, math.log(2.0)) + _normal_logpdf(x1, 0.2 * (x0**2 - 4.0), 0.0)
    # x0 = +-inf: the density is 0 whatever x1 (x1 - 0.2 (x0^2 - 4) would be inf - inf = nan at x1 = +inf)
    return value.masked_fill(torch.isinf(x0) & ~torch.isnan(x1), -math.inf)


def _rings_sample(n: int, g: torch.Generator | None, o: Mapping[str, float]) -> Tensor:
    r = o["radius"] + o["std"] * torch.randn(n, generator=g, dtype=torch.float64)
    a = _uniform(n, g, 0.0, 2.0 * math.pi)
    return torch.stack([r * torch.sin(a), r * torch.cos(a)], dim=1)


def _rings_log_prob(x: Tensor, o: Mapping[str, float]) -> Tensor:
    # A draw with r < 0 lands at distance -r on the opposite side: both radial branches count.
    rho = torch.hypot(x[..., 0], x[..., 1])   # no overflow of x^2 far out, nor underflow near the origin
    R, s = o["radius"], o["std"]
    log_s = math.log(s)
    branches = torch.logaddexp(_normal_logpdf(rho, R, log_s), _normal_logpdf(-rho, R, log_s))
    out = branches - _LOG_2PI - torch.log(rho)
    # +inf at the origin (an integrable 1/rho peak), also where the radial factor underflows to 0 there
    return torch.where(rho == 0, torch.full_like(out, math.inf), out)


def _square_sample(n: int, g: torch.Generator | None, o: Mapping[str, float]) -> Tensor:
    h = o["half_width"]
    return torch.stack([_uniform(n, g, -h, h), _uniform(n, g, -h, h)], dim=1)


def _square_log_prob(x: Tensor, o: Mapping[str, float]) -> Tensor:
    h = o["half_width"]
    inside = (x.abs() <= h).all(dim=-1)
    out = torch.full(inside.shape, -math.inf, dtype=x.dtype)
    out[inside] = -2.0 * math.log(2.0 * h)
    return out


def _cosine_sample(n: int, g: torch.Generator | None, o: Mapping[str, float]) -> Tensor:
    x0 = _uniform(n, g, -4.0, 4.0)
    x1 = 3.0 * torch.cos(2.0 * x0) + torch.randn(n, generator=g, dtype=torch.float64)
    return torch.stack([x0, x1], dim=1)


def _cosine_log_prob(x: Tensor, o: Mapping[str, float]) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    lp = _normal_logpdf(x1, 3.0 * torch.cos(2.0 * x0), 0.0) - math.log(8.0)
    return torch.where(x0.abs() <= 4.0, lp, torch.full_like(lp, -math.inf))


def _funnel_log_var(x0: Tensor) -> Tensor:
    # log clip(exp(-x0), 0, 10) = min(-x0, log 10): exact, and no underflow for large x0
    return torch.clamp(-x0, max=math.log(10.0))


def _funnel_sample(n: int, g: torch.Generator | None, o: Mapping[str, float]) -> Tensor:
    x0 = 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
    x1 = torch.exp(0.5 * _funnel_log_var(x0)) * torch.randn(n, generator=g, dtype=torch.float64)
    return torch.stack([x0, x1], dim=1)


def _funnel_log_prob(x: Tensor, o: Mapping[str, float]) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    lp = _normal_logpdf(x0, 0.0, math.log(2.0)) + _normal_logpdf(x1, 0.0, 0.5 * _funnel_log_var(x0))
    # x0 = +-inf: the density's limit is 0 (the first factor's -x0^2/8 wins over the second's x0/2),
    # where the sum of the two logs would be -inf + inf
    return torch.where(torch.isinf(x0), torch.full_like(lp, -math.inf), lp)


@dataclass(frozen=True)
class _Spec:
    defaults: dict[str, float]
    sample: Callable[[int, torch.Generator | None, Mapping[str, float]], Tensor] | None = None
    log_prob: Callable[[Tensor, Mapping[str, float]], Tensor] | None = None
    modes: Callable[[Mapping[str, float]], Modes] | None = None


_SPECS: dict[str, _Spec] = {
    "mog": _Spec({"offset": 4.0, "std": 0.5}, modes=_mog_modes),
    "banana": _Spec({}, _banana_sample, _banana_log_prob),
    "rings": _Spec({"radius": 5.0, "std": 0.2}, _rings_sample, _rings_log_prob),
    "square": _Spec({"half_width": 3.0}, _square_sample, _square_log_prob),
    "cosine": _Spec({}, _cosine_sample, _cosine_log_prob),
    "funnel": _Spec({}, _funnel_sample, _funnel_log_prob),
    "ring8": _Spec({"radius": 2.0, "std": 0.02}, modes=_ring8_modes),
    "grid25": _Spec({"spacing": 2.0, "std": 0.05}, modes=_grid25_modes),
}

#: Options that must be > 0 (all options are finite real numbers).
_POSITIVE = {"offset", "std", "radius", "half_width", "spacing"}


def names_2d() -> tuple[str, ...]:
    """The names :func:`get` accepts: ``mog, banana, rings, square, cosine, funnel, ring8, grid25``."""
    return tuple(_SPECS)


def _options_text(name: str) -> str:
    d = _SPECS[name].defaults
    return ", ".join(f"{k} (default {v:g})" for k, v in d.items()) if d else "none"


def _generator(generator: Any) -> torch.Generator | None:
    if generator is None:
        return generator
    if isinstance(generator, torch.Generator):
        if generator.device.type != "cpu":
            raise ValueError(
                f"generator is on {generator.device}; the 2-D datasets draw on the CPU: give a CPU "
                "torch.Generator or a seed, and move the samples with .to(device)"
            )
        return generator
    try:
        seed = seed_number(generator)
    except ValueError:
        raise TypeError(
            f"generator={generator!r} not allowed: give None (the global RNG), a torch.Generator or an integer seed in [0, 2**64)"
        ) from None
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class Dataset2D:
    """A 2-D distribution with an exact density; build it with :func:`get`.

    ``name`` is one of :func:`names_2d`; ``options`` holds every option of that distribution
    (the defaults filled in), read-only. Constructing ``Dataset2D(name, options)`` directly
    validates them the same way :func:`get` does.
    """

    name: str
    options: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in _SPECS:
            raise ValueError(f"unknown 2-D dataset {self.name!r}; allowed: {', '.join(_SPECS)}")
        spec = _SPECS[self.name]
        given = dict(self.options)
        unknown = sorted(set(given) - set(spec.defaults))
        if unknown:
            raise ValueError(
                f"dataset {self.name!r} has no option(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {_options_text(self.name)}"
            )
        full: dict[str, float] = {}
        for key, default in spec.defaults.items():
            value = given.get(key, default)
            try:
                v = real_number(value)
            except ValueError:
                v = math.nan
            if not math.isfinite(v) or (key in _POSITIVE and not v > 0):
                raise ValueError(f"dataset {self.name!r}: {key}={value!r} not allowed; it must be a finite real number > 0")
            full[key] = v
        object.__setattr__(self, "options", MappingProxyType(full))

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.options.items())))

    def __reduce__(self) -> tuple[Any, tuple[str, dict[str, float]]]:
        # a read-only mapping does not pickle; rebuild from a plain dict (copy, pickle, workers)
        return (Dataset2D, (self.name, dict(self.options)))

    @property
    def modes(self) -> Modes | None:
        """Means ``(K, 2)`` and standard deviations ``(K,)`` of a mixture (float64); ``None`` otherwise."""
        spec = _SPECS[self.name]
        return None if spec.modes is None else spec.modes(self.options)

    def sample(self, n: int, generator: torch.Generator | int | None = None, *, seed: int | None = None) -> Tensor:
        """``n`` independent draws as a float32 ``(n, 2)`` tensor (drawn in float64, then rounded).

        ``generator``: ``None`` uses torch's global RNG; a ``torch.Generator`` is advanced; an
        integer seed makes the draw reproducible on its own. ``seed=s`` is the same as
        ``generator=s`` (the keyword :meth:`gan_lib.train.EnsembleResult.sample` takes); give one
        of the two.
        """
        if seed is not None:
            if generator is not None:
                raise TypeError(f"give generator= or seed=, not both (generator={generator!r}, seed={seed!r})")
            generator = seed
        try:
            count = integer_number(n, lo=0)
        except ValueError:
            raise ValueError(f"n={n!r} not allowed; the number of samples must be an integer >= 0") from None
        g = _generator(generator)
        spec = _SPECS[self.name]
        if spec.modes is not None:
            x = _mixture_sample(count, g, spec.modes(self.options))
        else:
            assert spec.sample is not None
            x = spec.sample(count, g, self.options)
        out = x.to(torch.float32)
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"{self.name} with options {dict(self.options)} draws points beyond float32's range "
                             f"(|x| > {torch.finfo(torch.float32).max:.3g}); choose smaller options")
        return out.reshape(count, 2)

    def log_prob(self, x: Any) -> Tensor:
        """The exact log-density at ``x`` of shape ``(..., 2)`` (tensor or array); float64, shape ``(...)``.

        ``-inf`` outside the support (``square``, ``cosine``); ``rings`` is ``+inf`` at the origin,
        where its density has an integrable ``1/|x|`` peak (of height ``~exp(-312)/|x|``).
        """
        try:
            t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"log_prob needs real-valued points of shape (..., 2); got {x!r:.60} ({err})") from None
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"log_prob needs real-valued points; got dtype {t.dtype}")
        t = t.detach().to(torch.float64)
        if t.ndim == 0 or t.shape[-1] != 2:
            raise ValueError(f"log_prob needs points of shape (..., 2); got shape {tuple(t.shape)}")
        spec = _SPECS[self.name]
        if spec.modes is not None:
            out = _mixture_log_prob(t, spec.modes(self.options))
        else:
            assert spec.log_prob is not None
            out = spec.log_prob(t, self.options)
        return torch.where(t.isnan().any(dim=-1), torch.full_like(out, math.nan), out)


def get(name: str, **options: float) -> Dataset2D:
    """The 2-D dataset ``name`` (one of :func:`names_2d`) with ``options`` overriding its defaults.

    Options (all finite reals > 0): ``mog`` -- ``offset`` (means at ``(+-offset, 0)``, 4) and
    ``std`` (0.5); ``rings`` -- ``radius`` (5) and ``std`` (0.2); ``square`` -- ``half_width`` (3);
    ``ring8`` -- ``radius`` (2) and ``std`` (0.02); ``grid25`` -- ``spacing`` (2: means at
    ``spacing * {-2, ..., 2}``) and ``std`` (0.05); ``banana``, ``cosine``, ``funnel`` -- none.
    Unknown names or options raise ``ValueError`` listing what is allowed.
    """
    return Dataset2D(name, options)
