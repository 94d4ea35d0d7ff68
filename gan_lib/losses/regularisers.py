r"""Discriminator regularisers: gradient penalties, weight clipping and spectral normalisation.

These are not entries of the loss registry: they act on the discriminator network (or its
inputs), not on its outputs, and combine with any loss. The penalties return a scalar to *add* to
the discriminator loss; ``clip_weights_`` and ``apply_spectral_norm`` change the network.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["gradient_penalty", "r1_penalty", "clip_weights_", "apply_spectral_norm", "input_gradients"]

Critic = Callable[[Tensor], Tensor]


def input_gradients(critic: Critic, x: Tensor, create_graph: bool = True) -> Tensor:
    """``grad_x sum_i critic(x)_i`` at ``x`` (a leaf that requires grad), one gradient per sample.

    A critic whose output does not depend on its input gets zero gradients.
    """
    out = critic(x)
    if not isinstance(out, Tensor) or not out.is_floating_point():
        raise TypeError("the critic must return a floating-point tensor")
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=create_graph, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    return grad


def _check_batch(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch (first dimension = samples); got shape {tuple(x.shape)}")


def gradient_penalty(
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    weight: float = 10.0,
    target: float = 1.0,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""WGAN-GP penalty ``\lambda\,\mathbb{E}_{\hat x}[(\|\nabla_x C(\hat x)\|_2 - K)^2]`` (Gulrajani et al. 2017).

    ``\hat x = \epsilon x_r + (1 - \epsilon) x_f`` with one ``\epsilon \sim U[0, 1]`` per sample
    (drawn from ``generator`` when given); ``\lambda`` = ``weight``, ``K`` = ``target``. ``real`` and
    ``fake`` are detached (the penalty regularises the critic); the gradient is taken with
    ``create_graph=True`` so the penalty can be differentiated w.r.t. the critic's parameters.
    The norm is over all non-batch dimensions.
    """
    _check_batch("real", real)
    _check_batch("fake", fake)
    if real.shape != fake.shape:
        raise ValueError(
            f"gradient_penalty interpolates real and fake samples pairwise, so they must have the same shape; "
            f"got real {tuple(real.shape)} and fake {tuple(fake.shape)}"
        )
    if weight < 0:
        raise ValueError(f"weight={weight} must be >= 0")
    eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = torch.rand(eps_shape, generator=generator, dtype=real.dtype, device=real.device)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    grad = input_gradients(critic, x_hat, create_graph=True)
    norms = torch.linalg.vector_norm(grad.reshape(grad.shape[0], -1), ord=2, dim=1)
    return weight * (norms - target).square().mean()


def r1_penalty(discriminator: Critic, real: Tensor, gamma: float = 10.0) -> Tensor:
    r"""R1 penalty ``\tfrac{\gamma}{2}\,\mathbb{E}_P[\|\nabla_x D(x)\|_2^2]`` on real data (Mescheder et al. 2018).

    ``D`` is the raw discriminator output (logit). ``real`` is detached; the gradient is taken with
    ``create_graph=True``.
    """
    _check_batch("real", real)
    if gamma < 0:
        raise ValueError(f"gamma={gamma} must be >= 0")
    x = real.detach().requires_grad_(True)
    grad = input_gradients(discriminator, x, create_graph=True)
    return 0.5 * gamma * grad.reshape(grad.shape[0], -1).square().sum(dim=1).mean()


def clip_weights_(module: nn.Module, clip: float = 0.01) -> nn.Module:
    r"""Clamp every parameter of ``module`` to ``[-c, c]`` in place (WGAN weight clipping, Arjovsky et al. 2017).

    Returns ``module``.
    """
    if not clip > 0:
        raise ValueError(f"clip={clip} must be > 0")
    with torch.no_grad():
        for param in module.parameters():
            param.clamp_(-clip, clip)
    return module


_SN_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    r"""Spectral normalisation ``W / \sigma_{\max}(W)`` on every Linear / Conv layer (Miyato et al. 2018).

    Wraps each ``nn.Linear`` and convolution (``Conv1d/2d/3d`` and their transposes) found in
    ``module`` (itself included) with ``torch.nn.utils.parametrizations.spectral_norm``; layers
    already parametrised are left alone, so applying it twice is harmless. Returns ``module``.
    """
    layers = [m for m in module.modules() if isinstance(m, _SN_LAYERS)]
    for layer in layers:
        if parametrize.is_parametrized(layer, "weight"):
            continue
        spectral_norm(layer)
    return module
