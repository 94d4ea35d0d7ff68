r"""``K`` independent MLPs evaluated at once: one batched matrix product per layer.

:class:`BatchedMLP` holds the weights of ``K`` networks ``in_dim -> width_k (x depth) -> out_dim``
as ``(K, fan_in, fan_out)`` tensors, so that a forward pass is ``depth + 1`` calls of
``torch.baddbmm``. Members may have different widths: each is padded to the widest with zero
weights that a mask keeps at zero (no gradient reaches them, so they stay zero under any optimiser).
Members share no parameter, so the gradient of ``sum_k loss_k(output[k])`` with respect to member
``k`` is the gradient of ``loss_k`` alone, and one Adam over the stack takes the steps ``K``
separate Adams would.

``fused=True`` evaluates the same function through a hand-written forward and backward
(:class:`torch.autograd.Function`) that is cheaper on the CPU for the ReLU family at equal widths:
activations are applied in place and their slope is read back from the stored outputs, products
with a side of one or two (out of a critic's output layer, into a 2-D network's input layer) are
taken in the orientation in which ``bmm`` is fast, and only the gradients asked for are computed.
The results agree with the plain path to float rounding. Second derivatives (an input gradient
penalty, ``create_graph=True``) differentiate a recomputation through the plain path, so they are
exact but cost one more forward pass.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .mlp import activation_function, mlp

__all__ = ["BatchedMLP"]

_FUSED_SLOPES = {"leaky_relu": 0.2, "leaky_relu_0.01": 0.01, "relu": 0.0}  # activations the fused path handles: max(a, slope a)
# Hidden activations (K * n * width) from which the fused path is taken. Below, its extra Python
# work costs more than it saves: on 2 CPU cores (width 100, a critic step on 2n = 512 rows, a
# generator step on 256) it was 0.8-0.9x the plain path's speed at K = 1 and 2 (n = 256), about
# even at K = 4, and 1.1-1.3x faster from K = 8 on (1.2-1.35x for a critic step at K = 40).
_FUSED_MIN_ELEMENTS = 2**17


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

    ``fused=True`` uses the hand-written forward and backward of the module docstring (for
    the ``"leaky_relu"`` activations and ``"relu"`` at equal widths, and batches whose hidden activations hold at
    least ``2**17`` numbers, where it pays; otherwise the plain path); the attribute ``fused`` may be
    switched at any time.

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
        fused: bool = False,
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
        if not isinstance(fused, bool):
            raise TypeError(f"fused={fused!r} must be True or False")
        self.fused = fused
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
        if (self.fused and not padded and self.activation in _FUSED_SLOPES
                and k * h.shape[1] * self.widths[0] >= _FUSED_MIN_ELEMENTS):
            out = _FusedStack.apply(h, _FUSED_SLOPES[self.activation], *self.weights, *self.biases)
            return out.squeeze(-1) if self.out_dim == 1 else out
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


def _product(a: Tensor, b: Tensor) -> Tensor:
    """``torch.bmm(a, b)`` for ``(K, n, m) @ (K, m, p)``, as ``(b^T a^T)^T`` when ``p <= 2``.

    With one or two output columns ``bmm`` runs far below its speed on square blocks (on 2 CPU
    cores, (40, 512, 100) @ (40, 100, 1) took 1.4 ms, the transposed product 0.36 ms); the result
    is then a transposed view.
    """
    if b.shape[2] <= 2:
        return torch.bmm(b.transpose(1, 2), a.transpose(1, 2)).transpose(1, 2)
    return torch.bmm(a, b)


def _plain_stack(x: Tensor, slope: float, weights: Sequence[Tensor], biases: Sequence[Tensor]) -> Tensor:
    """The stack through ordinary differentiable ops (what :class:`_FusedStack` computes)."""
    h = x
    for layer, (w, b) in enumerate(zip(weights, biases)):
        h = torch.baddbmm(b, h, w)
        if layer < len(weights) - 1:
            h = torch.nn.functional.leaky_relu(h, slope)
    return h


class _FusedStack(torch.autograd.Function):
    r"""``K`` MLPs ``h_{l+1} = max(a_l, slope a_l)``, ``a_l = h_l W_l + b_l``, with a hand-written backward.

    Forward: ``a_l`` by ``bmm`` and an in-place bias (by the transposed product for an output layer
    of one or two units, :func:`_product`), the activation in place; only the activations ``h_l`` are kept.
    Backward, with ``G = dL/da_l``: ``dW_l = h_l^T G``, ``db_l = sum_n G``, ``dL/dh_l = G W_l^T``,
    and ``dL/da_{l-1} = dL/dh_l`` where ``h_l > 0``, ``slope dL/dh_l`` elsewhere (``h_l > 0`` iff
    ``a_{l-1} > 0`` for ``slope >= 0``). Products with a side of one or two (into a 2-D input
    layer, out of a critic's or a 2-D generator's output layer) are taken in the orientation that
    ``bmm`` runs fast; only the gradients that are asked for are computed.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, slope: float, *params: Tensor) -> Tensor:  # type: ignore[override]
        n_layers = len(params) // 2
        weights, biases = params[:n_layers], params[n_layers:]
        inputs = [x]
        h = x
        for layer in range(n_layers - 1):
            w, b = weights[layer], biases[layer]
            # bmm and the bias in place (baddbmm first copies the broadcast bias into its output: one
            # more pass), except from one or two inputs, where bmm is slow and baddbmm is not
            h = torch.baddbmm(b, h, w) if w.shape[1] <= 2 else torch.bmm(h, w).add_(b)
            torch.nn.functional.leaky_relu_(h, slope)
            inputs.append(h)
        w, b = weights[-1], biases[-1]
        # through one or two output units the product is a transposed view: made contiguous (a small
        # copy) so that callers may .view() the output as they would the plain path's
        out = _product(h, w).add_(b).contiguous() if w.shape[2] <= 2 else torch.baddbmm(b, h, w)
        ctx.slope, ctx.n_layers = slope, n_layers
        ctx.save_for_backward(*params, *inputs)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        n_layers, slope = ctx.n_layers, ctx.slope
        saved = ctx.saved_tensors
        params, inputs = saved[:2 * n_layers], saved[2 * n_layers:]
        weights = params[:n_layers]
        need_x, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[2:]
        if torch.is_grad_enabled():  # create_graph=True: differentiate a recomputation
            wanted = [need_x, *need_p]
            with torch.enable_grad():
                out = _plain_stack(inputs[0], slope, params[:n_layers], params[n_layers:])
            sources = [t for t, w in zip([inputs[0], *params], wanted) if w]
            found = iter(torch.autograd.grad(out, sources, grad, create_graph=True, allow_unused=True))
            got = [next(found) if w else None for w in wanted]
            return (got[0], None, *got[1:])
        grad_w: list[Tensor | None] = [None] * n_layers
        grad_b: list[Tensor | None] = [None] * n_layers
        lowest_w = min((layer for layer in range(n_layers) if need_p[layer]), default=n_layers)
        lowest_b = min((layer for layer in range(n_layers) if need_p[n_layers + layer]), default=n_layers)
        lowest = 0 if need_x else min(lowest_w, lowest_b)
        g = grad.contiguous()  # e.g. a critic's input gradient, a transposed view: bmm copies such operands slowly
        for layer in reversed(range(lowest, n_layers)):
            h, w = inputs[layer], weights[layer]
            if need_p[layer]:
                # dW = h^T G, (K, fan_in, fan_out): h^T G's transpose when fan_out <= 2
                grad_w[layer] = _product(g.transpose(1, 2), h).transpose(1, 2) if w.shape[2] <= 2 \
                    else _product(h.transpose(1, 2), g)
            if need_p[n_layers + layer]:
                grad_b[layer] = g.sum(1, keepdim=True)
            if layer > lowest or need_x:
                # dL/dh = G W^T; through one output unit a broadcast product (bmm is slow with a side of 1)
                g_in = g * w.transpose(1, 2) if w.shape[2] == 1 else _product(g, w.transpose(1, 2))
                if layer > 0:
                    torch.ops.aten.leaky_relu_backward.grad_input(g_in, h, slope, True, grad_input=g_in)
                g = g_in
        return (g if need_x else None, None, *grad_w, *grad_b)
