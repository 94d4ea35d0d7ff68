r"""``K`` independent MLPs evaluated at once: one batched matrix product per layer.

:class:`BatchedMLP` holds the weights of ``K`` networks ``in_dim -> width_k (x depth) -> out_dim``
as ``(K, fan_in, fan_out)`` tensors, so that a forward pass is ``depth + 1`` calls of
``torch.baddbmm``. Members may have different widths: each is padded to the widest with zero
weights that a mask keeps at zero (no gradient reaches them, so they stay zero under any optimiser).
Members share no parameter, so the gradient of ``sum_k loss_k(output[k])`` with respect to member
``k`` is the gradient of ``loss_k`` alone, and one Adam over the stack takes the steps ``K``
separate Adams would.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn

from .mlp import activation_function, mlp

__all__ = ["BatchedMLP"]


class BatchedMLP(nn.Module):
    """``K = len(widths)`` MLPs with hidden widths ``widths[k]`` and ``depth`` hidden layers.

    ``forward(x)`` takes a shared batch ``(n, in_dim)`` or one batch per member ``(K, n, in_dim)``
    and returns ``(K, n)`` (``out_dim == 1``) or ``(K, n, out_dim)``.

    Initialisation:

    * ``same_init=False`` (default): every member drawn independently as ``nn.Linear`` draws
      (uniform in ``±1/sqrt(fan_in)``, ``fan_in`` the member's own width), from ``generator``;
    * ``same_init=True``: one :func:`gan_lib.nets.mlp` is built with PyTorch's default
      initialisation (the global RNG) and copied into every member, so that members differ only
      by what they are trained on (needs equal widths).

    :meth:`member` hands back member ``k`` as a plain :func:`gan_lib.nets.mlp` with copied weights.
    """

    def __init__(
        self,
        in_dim: int,
        widths: Sequence[int],
        depth: int = 2,
        activation: str = "leaky_relu",
        out_dim: int = 1,
        *,
        same_init: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not isinstance(in_dim, int) or in_dim < 1:
            raise ValueError(f"in_dim={in_dim!r} must be an integer >= 1")
        if not isinstance(out_dim, int) or out_dim < 1:
            raise ValueError(f"out_dim={out_dim!r} must be an integer >= 1")
        if not widths or min(widths) < 1:
            raise ValueError(f"widths={widths} must be a non-empty list of integers >= 1")
        if not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth={depth!r} must be an integer >= 0")
        if same_init and len(set(widths)) != 1:
            raise ValueError(f"same_init=True needs equal widths; got {widths}")
        self._act = activation_function(activation)
        self.in_dim, self.out_dim, self.depth, self.widths = in_dim, out_dim, depth, tuple(widths)
        self.activation = activation
        k, wmax = len(widths), max(widths)
        mask = torch.zeros(k, 1, wmax)
        for i, w in enumerate(widths):
            mask[i, 0, :w] = 1.0
        self.register_buffer("mask", mask, persistent=False)
        dims = [in_dim] + [wmax] * depth + [out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        if same_init:
            template = mlp(in_dim, out_dim, widths[0], depth, activation)
            linears = [m for m in template if isinstance(m, nn.Linear)]
            for lin in linears:
                self.weights.append(nn.Parameter(lin.weight.detach().T.unsqueeze(0).repeat(k, 1, 1).clone()))
                self.biases.append(nn.Parameter(lin.bias.detach().reshape(1, 1, -1).repeat(k, 1, 1).clone()))
            return
        fan_in = torch.tensor([[float(in_dim)] * k] + [[float(w) for w in widths]] * depth)  # (depth+1, K)
        for layer in range(depth + 1):
            bound = fan_in[layer].rsqrt().reshape(k, 1, 1)
            w = (torch.rand(k, dims[layer], dims[layer + 1], generator=generator) * 2 - 1) * bound
            b = (torch.rand(k, 1, dims[layer + 1], generator=generator) * 2 - 1) * bound
            m_in = mask.transpose(1, 2) if layer > 0 else torch.ones(k, dims[0], 1)
            m_out = mask if layer < depth else torch.ones(k, 1, 1)
            self.weights.append(nn.Parameter(w * m_in * m_out))
            self.biases.append(nn.Parameter(b * m_out))

    def __len__(self) -> int:
        return len(self.widths)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.widths)
        if x.ndim == 2 and x.shape[1] == self.in_dim:
            x = x.unsqueeze(0).expand(k, -1, -1)
        if x.ndim != 3 or x.shape[0] != k or x.shape[2] != self.in_dim:
            raise ValueError(
                f"x has shape {tuple(x.shape)}; expected (n, {self.in_dim}) or ({k}, n, {self.in_dim})"
            )
        h = x.to(self.weights[0].dtype)
        padded = len(set(self.widths)) > 1
        for layer in range(self.depth):
            h = self._act(torch.baddbmm(self.biases[layer], h, self.weights[layer]))
            if padded:
                h = h * self.mask
        out = torch.baddbmm(self.biases[-1], h, self.weights[-1])
        return out.squeeze(-1) if self.out_dim == 1 else out

    def member(self, k: int) -> nn.Sequential:
        """Member ``k`` as a standalone :func:`gan_lib.nets.mlp` (a copy: later training does not change it)."""
        if not 0 <= k < len(self.widths):
            raise IndexError(f"member {k} does not exist; the stack has {len(self.widths)}")
        w_k = self.widths[k]
        net = mlp(self.in_dim, self.out_dim, hidden=w_k, depth=self.depth, activation=self.activation)
        net = net.to(self.weights[0].dtype)
        linears = [m for m in net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for layer, lin in enumerate(linears):
                rows = self.in_dim if layer == 0 else w_k
                cols = self.out_dim if layer == self.depth else w_k
                lin.weight.copy_(self.weights[layer][k, :rows, :cols].T)
                lin.bias.copy_(self.biases[layer][k, 0, :cols])
        return copy.deepcopy(net)
