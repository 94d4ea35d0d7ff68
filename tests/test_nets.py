"""Tests of gan_lib.nets: the MLP, the location-scale generator, and the batched ensemble of MLPs.

References: torch's own ``nn.Linear`` networks (members of the batched stack must equal plain MLPs,
and one optimiser on the stack must take the steps of one optimiser per member), the uniform
distribution ``nn.Linear`` initialises from, and sample moments of ``mu + sigma z``.
"""

from __future__ import annotations

import math

import pytest
import torch

from gan_lib import nets
from gan_lib.divergences import scoring
from gan_lib.nets import BatchedMLP
from gan_lib.train import stacked_loss


# --- members trained together equal members trained alone -------------------------------


@pytest.mark.parametrize("activation", ["silu", "leaky_relu", "leaky_relu_0.01", "tanh"])
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_stack_members_equal_a_plain_mlp_with_the_same_seed(activation: str, depth: int) -> None:
    torch.manual_seed(5)
    ref = nets.mlp(2, 1, 16, depth, activation)
    torch.manual_seed(5)
    stack = BatchedMLP(2, [16] * 3, depth, activation, same_init=True)
    x = torch.randn(11, 2)
    out = stack(x)
    assert out.shape == (3, 11)
    for k in range(3):
        torch.testing.assert_close(out[k], ref(x)[:, 0], rtol=1e-6, atol=1e-6)


def test_stack_without_same_init_has_different_members_and_member_matches_column() -> None:
    torch.manual_seed(0)
    stack = BatchedMLP(1, [8] * 4, 2, "silu")
    x = torch.linspace(-3, 3, 50).unsqueeze(-1)
    out = stack(x)
    assert not torch.allclose(out[0], out[1])
    for k in range(4):
        member = stack.member(k)
        assert isinstance(member, torch.nn.Sequential)
        torch.testing.assert_close(member(x)[:, 0], out[k], rtol=1e-6, atol=1e-6)
    with pytest.raises(IndexError):
        stack.member(4)


def test_stack_rejects_bad_shapes_and_sizes() -> None:
    stack = BatchedMLP(1, [4, 4])
    with pytest.raises(ValueError, match="shape"):
        stack(torch.zeros(5))
    with pytest.raises(ValueError, match="widths"):
        BatchedMLP(1, [])
    with pytest.raises(ValueError, match="shape"):
        BatchedMLP(2, [4])(torch.randn(5, 3))
    with pytest.raises(ValueError, match="equal widths"):
        BatchedMLP(1, [4, 8], same_init=True)


def test_adam_on_stack_equals_separate_adam_per_rule() -> None:
    """Disjoint parameters: one optimiser on the stack == one optimiser per network."""
    rules = ["bernoulli", "hinge", "exponential"]
    torch.manual_seed(3)
    stack = BatchedMLP(1, [8] * len(rules), 2, "silu", same_init=True).double()
    singles = [stack.member(k) for k in range(len(rules))]
    opt = torch.optim.Adam(stack.parameters(), lr=1e-2)
    opts = [torch.optim.Adam(net.parameters(), lr=1e-2) for net in singles]
    loss = stacked_loss(rules)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        xr = torch.randn(32, 1, generator=gen, dtype=torch.float64) + 1.0
        xf = torch.randn(32, 1, generator=gen, dtype=torch.float64)
        opt.zero_grad()
        loss(stack(xr), stack(xf)).backward()
        opt.step()
        for net, o, name in zip(singles, opts, rules):
            rule = scoring.get_rule(name)
            o.zero_grad()
            rule.loss(net(xr)[:, 0], net(xf)[:, 0]).backward()
            o.step()
    x = torch.linspace(-4, 4, 41, dtype=torch.float64).unsqueeze(-1)
    for k, net in enumerate(singles):
        torch.testing.assert_close(stack(x)[k], net(x)[:, 0], rtol=1e-10, atol=1e-10)



def test_bank_members_equal_plain_mlps():
    torch.manual_seed(0)
    bank = BatchedMLP(3, [2, 7, 16], depth=2, generator=torch.Generator().manual_seed(1))
    x = torch.randn(50, 3)
    out = bank(x)
    assert out.shape == (3, 50)
    for k in range(3):
        net = bank.member(k)
        hidden = [m for m in net if isinstance(m, torch.nn.Linear)][0].out_features
        assert hidden == bank.widths[k]
        torch.testing.assert_close(net(x).squeeze(-1), out[k], rtol=1e-5, atol=1e-6)
    # one batch per member gives the same as the shared batch
    torch.testing.assert_close(bank(x.unsqueeze(0).expand(3, -1, -1)), out)


def test_bank_init_matches_nn_linear_scale():
    # nn.Linear draws weights uniformly in +-1/sqrt(fan_in): check the range and rough spread
    bank = BatchedMLP(4, [256], depth=1, generator=torch.Generator().manual_seed(0))
    w0 = bank.weights[0][0].detach()  # (4, 256), fan_in 4
    w1 = bank.weights[1][0, :, 0].detach()  # (256,), fan_in 256
    assert w0.abs().max() <= 0.5 + 1e-7 and w0.abs().max() > 0.45
    assert w1.abs().max() <= 1 / 16 + 1e-7
    assert abs(float(w0.std()) - 0.5 / math.sqrt(3)) < 0.03


def test_mlp_shapes_and_argument_checks() -> None:
    net = nets.mlp(3, 2, hidden=5, depth=2)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 5), (5, 5), (5, 2)]
    assert net(torch.zeros(7, 3)).shape == (7, 2)
    with pytest.raises(ValueError, match="activation='gelu'"):
        nets.mlp(1, 1, activation="gelu")
    with pytest.raises(ValueError, match="hidden=0"):
        nets.mlp(1, 1, hidden=0)
    with pytest.raises(ValueError, match="depth=-1"):
        nets.mlp(1, 1, depth=-1)


def test_location_scale_moments_match_its_parameters() -> None:
    gen = nets.LocationScale(dim=2, mu=1.5, sigma=0.3)
    z = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    x = gen(z).detach()
    # standard errors: 0.3/sqrt(2e5) = 6.7e-4 for the mean; about 4.7e-4 for the std
    assert torch.allclose(x.mean(0), torch.full((2,), 1.5), atol=4e-3)
    assert torch.allclose(x.std(0), torch.full((2,), 0.3), atol=3e-3)
    assert torch.allclose(gen.sigma, torch.full((2,), 0.3))
    with pytest.raises(ValueError, match="sigma=0"):
        nets.LocationScale(sigma=0)
