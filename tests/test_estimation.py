"""Tests of gan_lib.train.critics against independent references.

References: torch's own ``nn.Linear``/``LeakyReLU`` network (for the batched critics), closed forms
for two unit Gaussians N(delta, 1) and N(0, 1) (KL = delta^2/2, chi^2 = e^{delta^2} - 1, squared
Hellinger = 2 - 2 e^{-delta^2/8}, and the variances of the optimal bound's terms), and the known
optimal critic T*(x) = f'(p(x)/q(x)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan_lib.divergences import get_divergence
from gan_lib.nets import BatchedMLP
from gan_lib.train.critics import (
    bound_estimates,
    critic_outputs,
    fgan_loss_for,
    fit_critics,
    optimal_critic_moments,
)
from gan_lib.data.toy import gaussian_1d
from reference import FGAN_NAMES, f_divergence_fprime, fgan_activation, fgan_bound


def test_masked_units_stay_zero_and_members_are_independent():
    divs = [get_divergence("kl"), get_divergence("jensen_shannon")]
    x_p = torch.randn(512, 1) + 1.0
    x_q = torch.randn(512, 1)
    bank = fit_critics(divs, x_p, x_q, widths=[3, 8], steps=30, batch_size=64, progress=False)
    # member 0 has width 3 out of 8: its padded weights are exactly zero after training
    assert torch.all(bank.weights[0][0, :, 3:] == 0)
    assert torch.all(bank.weights[1][0, 3:, :] == 0)
    assert torch.all(bank.weights[1][0, :, 3:] == 0)
    assert torch.all(bank.weights[2][0, 3:, :] == 0)
    # the loss of member 0 has no gradient on member 1's parameters
    v_p, v_q = bank(x_p[:64]), bank(x_q[:64])
    loss0 = fgan_loss_for(divs[0]).discriminator(v_p[0], v_q[0])
    grads = torch.autograd.grad(loss0, list(bank.parameters()))
    for g in grads:
        assert torch.all(g[1] == 0)


@pytest.mark.parametrize("name, alpha", [(n, None) for n in FGAN_NAMES] + [("alpha", a) for a in (-0.5, 0.5, 2.0)])
def test_fgan_loss_for_is_minus_the_bound(name, alpha):
    # reference: mean g_f(v_real) - mean f*(g_f(v_fake)) from the f-GAN table in numpy (float64)
    gen = torch.Generator().manual_seed(0)
    v_real, v_fake = torch.randn(100, generator=gen), torch.randn(100, generator=gen)
    d = get_divergence(name, **({} if alpha is None else {"alpha": alpha}))
    loss = fgan_loss_for(d).discriminator(v_real, v_fake)
    expected = -fgan_bound(name, v_real.double().numpy(), v_fake.double().numpy(), alpha)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name, truth", [
    ("kl", 0.5),                                 # delta^2 / 2 at delta = 1
    ("squared_hellinger", 2 - 2 * math.exp(-1 / 8)),
    ("pearson", math.expm1(1.0)),                # e^{delta^2} - 1
])
def test_trained_critic_estimates_gaussian_divergence(name, truth):
    torch.manual_seed(0)
    d = get_divergence(name)
    p, q = gaussian_1d(1.0, 1.0), gaussian_1d(0.0, 1.0)
    x_p, x_q = p.sample((32768, 1)).float(), q.sample((32768, 1)).float()
    bank = fit_critics([d], x_p, x_q, widths=16, steps=600, batch_size=512, lr=3e-3, progress=False)
    h_p, h_q = p.sample((65536, 1)).float(), q.sample((65536, 1)).float()
    (est,) = bound_estimates([d], bank, h_p, h_q)
    assert est.value < truth + 4 * est.se, (est, truth)
    assert abs(est.value - truth) < 0.08 * truth + 4 * est.se, (est, truth)
    # the learned critic is close to T*(x) = f'(p/q), log p/q = x - 1/2, where both densities have mass
    x = np.linspace(-1.0, 2.0, 61)
    t_opt = f_divergence_fprime(name, np.exp(x - 0.5))
    v = critic_outputs(bank, torch.tensor(x, dtype=torch.float32).unsqueeze(1))[0].double().numpy()
    t_learned = fgan_activation(name, v)
    spread = float(t_opt.max() - t_opt.min())
    assert float(np.abs(t_learned - t_opt).max()) < 0.15 * spread


def test_bound_estimate_standard_error_formula():
    # a bank whose critic is constant v = c: T = c, f*(T) = e^{c-1} for KL, sd 0 -> se 0, value known
    d = get_divergence("kl")
    bank = BatchedMLP(1, [4], depth=1)
    with torch.no_grad():
        for w in bank.weights:
            w.zero_()
        bank.biases[0].zero_()
        bank.biases[1].fill_(0.7)
    (est,) = bound_estimates([d], bank, torch.randn(1000, 1), torch.randn(2000, 1))
    assert abs(est.value - (0.7 - math.exp(0.7 - 1))) < 1e-6
    assert est.se < 1e-6 and est.sd_p < 1e-6 and est.sd_q < 1e-6


@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_optimal_moments_match_gaussian_closed_forms(delta):
    p, q = gaussian_1d(delta, 1.0), gaussian_1d(0.0, 1.0)
    lo, hi = -14.0, 14.0
    kl = optimal_critic_moments(get_divergence("kl"), p, q, lo, hi)
    assert abs(kl.bound - delta**2 / 2) < 1e-9
    assert abs(kl.var_q / math.expm1(delta**2) - 1) < 1e-7  # Var_Q(p/q) = chi^2
    assert abs(kl.var_p / delta**2 - 1) < 1e-7  # Var_P(1 + log p/q) = delta^2
    pe = optimal_critic_moments(get_divergence("pearson"), p, q, lo, hi, via="table")
    assert abs(pe.bound / math.expm1(delta**2) - 1) < 1e-9
    assert abs(pe.var_q / (math.exp(6 * delta**2) - math.exp(2 * delta**2)) - 1) < 1e-6
    he = optimal_critic_moments(get_divergence("squared_hellinger"), p, q, lo, hi)
    assert abs(he.bound - (2 - 2 * math.exp(-(delta**2) / 8))) < 1e-9
    # f*(T*) = sqrt(u) - 1: Var_Q = 1 - (E_Q sqrt(u))^2 = 1 - e^{-delta^2/4}
    assert abs(he.var_q - (1 - math.exp(-(delta**2) / 4))) < 1e-9
    js = optimal_critic_moments(get_divergence("jensen_shannon"), p, q, lo, hi, with_variance=False)
    assert math.isnan(js.var_p) and math.isnan(js.var_q)
    assert math.isnan(js.sd)


def test_argument_checks():
    d = [get_divergence("kl")]
    x = torch.randn(100, 1)
    with pytest.raises(ValueError, match="n_train"):
        fit_critics(d, x, x, n_train=[1000], steps=1, progress=False)
    with pytest.raises(ValueError, match="widths"):
        fit_critics(d, x, x, widths=[4, 8], steps=1, progress=False)
    with pytest.raises(ValueError, match="steps"):
        fit_critics(d, x, x, steps=0, progress=False)
    with pytest.raises(ValueError, match="threads"):
        fit_critics(d, x, x, steps=1, threads=0, progress=False)
    with pytest.raises(ValueError, match="dimension"):
        fit_critics(d, x, torch.randn(100, 2), steps=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        fit_critics([], x, x, steps=1, progress=False)
    with pytest.raises(ValueError, match="widths"):
        BatchedMLP(1, [])
    with pytest.raises(ValueError, match="shape"):
        BatchedMLP(2, [4])(torch.randn(5, 3))
    with pytest.raises(ValueError, match="via"):
        optimal_critic_moments(d[0], gaussian_1d(0, 1), gaussian_1d(1, 1), via="other")
    with pytest.raises(ValueError, match="bank"):
        bound_estimates(d * 2, BatchedMLP(1, [4]), x, x)


def test_threads_restored():
    before = torch.get_num_threads()
    fit_critics([get_divergence("gan")], torch.randn(64, 1), torch.randn(64, 1), steps=2, threads=1, progress=False)
    assert torch.get_num_threads() == before
