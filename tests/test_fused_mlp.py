"""BatchedMLP(fused=True): its hand-written forward and backward against plain nn.Sequential members.

The reference for member ``k`` is ``BatchedMLP.member(k)`` (``nn.Linear`` + activation layers, autograd),
evaluated on member ``k``'s inputs alone; the fused path must give the same outputs, parameter
gradients, input gradients and second derivatives (an input-gradient penalty), and the ensemble trainer
run through it must follow the plain single-model loop of tests/test_ensemble.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gan_lib.nets import BatchedMLP
from gan_lib.nets import batched as batched_module
from gan_lib.train import EnsembleConfig, train_ensemble

sys.path.insert(0, str(Path(__file__).parent))
from test_ensemble import CFG, DATA, MIXED, TOL64, check_against_reference  # noqa: E402


@pytest.fixture(autouse=True)
def always_fused(monkeypatch):
    """Take the fused path at every size (it is otherwise kept for large batches)."""
    monkeypatch.setattr(batched_module, "_FUSED_MIN_ELEMENTS", 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("activation", ["leaky_relu", "leaky_relu_0.01", "relu"])
@pytest.mark.parametrize("in_dim, out_dim, depth", [(2, 1, 2), (1, 2, 1), (3, 3, 0), (2, 2, 3)])
@pytest.mark.parametrize("shared", [True, False])
def test_fused_stack_matches_plain_members(activation, in_dim, out_dim, depth, shared):
    k, n = 3, 17
    gen = torch.Generator().manual_seed(in_dim * 10 + depth)
    bank = BatchedMLP(in_dim, [6] * k, depth, activation, out_dim=out_dim, generator=gen, fused=True).double()
    members = [bank.member(i) for i in range(k)]
    x = torch.randn(n, in_dim, generator=gen, dtype=torch.float64) if shared else \
        torch.randn(k, n, in_dim, generator=gen, dtype=torch.float64)
    x.requires_grad_(True)
    weights = torch.randn(k, n, out_dim, generator=gen, dtype=torch.float64)
    out = bank(x)
    out3 = out.unsqueeze(-1) if out_dim == 1 else out
    grads = torch.autograd.grad((out3 * weights).sum(), [x, *bank.weights, *bank.biases])
    grad_x, grads_p = grads[0], grads[1:]
    want_grad_x = torch.zeros_like(x)
    for i, net in enumerate(members):
        xi = (x if shared else x[i]).detach().clone().requires_grad_(True)
        ref = net(xi)
        torch.testing.assert_close(out3[i], ref, rtol=1e-12, atol=1e-12)
        ref_grads = torch.autograd.grad((ref * weights[i]).sum(), [xi, *net.parameters()])
        if shared:
            want_grad_x += ref_grads[0]
        else:
            want_grad_x[i] = ref_grads[0]
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        for layer, lin in enumerate(linears):
            g_w, g_b = ref_grads[1 + 2 * layer], ref_grads[2 + 2 * layer]
            torch.testing.assert_close(grads_p[layer][i], g_w.T, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(grads_p[depth + 1 + layer][i, 0], g_b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_x, want_grad_x, rtol=1e-12, atol=1e-12)


def test_fused_second_derivatives_of_a_gradient_penalty():
    """d/dtheta of mean_i (||grad_x D(x_i)|| - 1)^2, member by member, against nn.Sequential members."""
    k, n = 3, 9
    gen = torch.Generator().manual_seed(4)
    bank = BatchedMLP(2, [5] * k, 2, generator=gen, fused=True).double()
    x = torch.randn(k, n, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(bank(x).sum(), x, create_graph=True)
    penalty = (gx.norm(dim=-1) - 1).square().mean(-1)  # (k,)
    grads = torch.autograd.grad(penalty.sum(), [*bank.weights, *bank.biases], materialize_grads=True)
    for i in range(k):
        net = bank.member(i)
        xi = x[i].detach().clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(net(xi).sum(), xi, create_graph=True)
        ref = torch.autograd.grad((gi.norm(dim=-1) - 1).square().mean(), list(net.parameters()), materialize_grads=True)
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        for layer in range(len(linears)):
            torch.testing.assert_close(grads[layer][i], ref[2 * layer].T, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(grads[3 + layer][i, 0], ref[2 * layer + 1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("optimiser", ["rmsprop", "adam"])
def test_ensemble_through_the_fused_path_follows_plain_loops(optimiser):
    cfg = EnsembleConfig(optimiser=optimiser, betas=(0.5, 0.9), dtype="float64", **CFG)
    result = train_ensemble(MIXED, DATA, cfg, progress=False)
    check_against_reference(result, MIXED, DATA, cfg, tol=TOL64)  # see TOL64 in test_ensemble.py


@pytest.mark.parametrize("out_dim", [1, 2, 3])
def test_fused_outputs_are_contiguous(out_dim):
    """Callers reshape outputs with .view(), as they may the plain path's."""
    bank = BatchedMLP(2, [6] * 3, 2, out_dim=out_dim, generator=torch.Generator().manual_seed(0), fused=True)
    out = bank(torch.randn(3, 5, 2))
    assert out.is_contiguous()
    assert out.view(-1).shape == (3 * 5 * out_dim,)
