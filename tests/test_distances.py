"""Tests of the chapter-5 helpers: the MMD loss (gan_lib.losses.mmd) and the Lipschitz-constrained
Wasserstein critics (gan_lib.train.lipschitz).

References: a numpy double loop over all pairs (MMD V- and U-statistics), the closed form of the
squared MMD between two isotropic Gaussians under a Gaussian kernel, central differences of the
numpy statistic (gradients), gan_lib.metrics.mmd (float64, written separately), hand-built
piecewise-linear networks whose slopes are known, numpy means and variances, and for trained critics
the closed forms W1 = |shift| of two shifted distributions and the value of the gradient-penalised
linear critic, d (1 + d / (2 lambda)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gan_lib import metrics
from gan_lib.losses.mmd import MMDLoss, gaussian_kernel, mmd2, mmd_discriminator, mmd_generator
from gan_lib.train.lipschitz import (
    CONSTRAINTS,
    attained_lipschitz,
    critic_estimate,
    fit_wasserstein_critic,
)

torch.set_num_threads(1)


# --- MMD ----------------------------------------------------------------------------------------


def mmd2_loop(x: np.ndarray, y: np.ndarray, hs: tuple[float, ...], unbiased: bool) -> float:
    """Squared MMD by an explicit double loop over every pair (numpy, float64)."""

    def k(a: np.ndarray, b: np.ndarray) -> float:
        d2 = float(((a - b) ** 2).sum())
        return sum(math.exp(-d2 / (2 * h * h)) for h in hs)

    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if not (unbiased and i == j))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if not (unbiased and i == j))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    nxx = n * (n - 1) if unbiased else n * n
    nyy = m * (m - 1) if unbiased else m * m
    return sxx / nxx + syy / nyy - 2 * sxy / (n * m)


@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd2_matches_double_loop_and_metric(unbiased: bool) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(13, 3)), rng.normal(0.5, 1.3, size=(9, 3))
    hs = (0.5, 2.0)
    ref = mmd2_loop(x, y, hs, unbiased)
    got = float(mmd2(torch.tensor(x), torch.tensor(y), hs, unbiased))
    assert got == pytest.approx(ref, rel=1e-12, abs=1e-14)
    assert got == pytest.approx(metrics.mmd(x, y, bandwidths=hs, unbiased=unbiased), rel=1e-10, abs=1e-13)


def test_mmd2_stack_is_one_value_per_member() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(3, 7, 2)), rng.normal(1.0, 1.0, size=(3, 5, 2))
    got = mmd2(torch.tensor(x), torch.tensor(y), 1.5)
    assert got.shape == (3,)
    for k in range(3):
        assert float(got[k]) == pytest.approx(mmd2_loop(x[k], y[k], (1.5,), True), rel=1e-12)


def test_mmd2_closed_form_for_gaussians() -> None:
    # x ~ N(0, s^2 I_d), y ~ N(delta, s^2 I_d), kernel exp(-|a-b|^2/(2h^2)):
    # MMD^2 = 2 c (1 - exp(-|delta|^2 / (2 (h^2 + 2 s^2)))), c = (h^2 / (h^2 + 2 s^2))^(d/2)
    d, s, h, delta = 2, 0.7, 1.1, np.array([0.8, -0.3])
    c = (h * h / (h * h + 2 * s * s)) ** (d / 2)
    exact = 2 * c * (1 - math.exp(-float(delta @ delta) / (2 * (h * h + 2 * s * s))))
    g = torch.Generator().manual_seed(2)
    values = []
    for _ in range(20):
        x = s * torch.randn(400, d, generator=g, dtype=torch.float64)
        y = torch.tensor(delta) + s * torch.randn(400, d, generator=g, dtype=torch.float64)
        values.append(float(mmd2(x, y, h, unbiased=True)))
    mean, se = np.mean(values), np.std(values, ddof=1) / math.sqrt(len(values))
    assert abs(mean - exact) < 4 * se, (mean, se, exact)
    assert se < 0.1 * exact  # the test has power: the estimate is resolved to 10 %


def test_mmd2_gradient_matches_central_differences() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 2)), rng.normal(0.3, 1.0, size=(5, 2))
    yt = torch.tensor(y, requires_grad=True)
    mmd2(torch.tensor(x), yt, (0.7, 1.9)).backward()
    eps = 1e-6
    fd = np.zeros_like(y)
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            up, dn = y.copy(), y.copy()
            up[i, j] += eps
            dn[i, j] -= eps
            fd[i, j] = (mmd2_loop(x, up, (0.7, 1.9), True) - mmd2_loop(x, dn, (0.7, 1.9), True)) / (2 * eps)
    np.testing.assert_allclose(yt.grad.numpy(), fd, rtol=1e-6, atol=1e-9)


def test_kernel_and_loss_halves() -> None:
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    kab = gaussian_kernel(a, b, (1.0, 2.0))
    expected = [sum(math.exp(-d2 / (2 * h * h)) for h in (1.0, 2.0)) for d2 in (4.0, 5.0)]
    np.testing.assert_allclose(kab[:, 0].numpy(), expected, rtol=1e-14)
    x, y = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64) + 1
    loss = MMDLoss(bandwidths=(1.0,))
    assert float(loss.discriminator(x, y)) == pytest.approx(-float(loss.generator(y, x)), rel=1e-14)
    assert float(mmd_discriminator(x, y)) == pytest.approx(-float(mmd_generator(y, x)), rel=1e-14)
    assert loss.requires_real_in_generator
    with pytest.raises(ValueError, match="real features"):
        loss.generator(y)
    with pytest.raises(ValueError, match="bandwidths=-1"):
        MMDLoss(bandwidths=-1)
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd2(x[:1], y)


# --- Lipschitz constants, estimates and trained critics ------------------------------------------


def relu_net(weights_in, biases_in, weights_out) -> nn.Sequential:
    """``x -> sum_k w_out[k] relu(w_in[k] . x + b_in[k])`` in float64, built by hand."""
    w_in = torch.tensor(weights_in, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(w_in.shape[1], w_in.shape[0]), nn.ReLU(), nn.Linear(w_in.shape[0], 1))
    net = net.double()
    with torch.no_grad():
        net[0].weight.copy_(w_in)
        net[0].bias.copy_(torch.tensor(biases_in, dtype=torch.float64))
        net[2].weight.copy_(torch.tensor([weights_out], dtype=torch.float64))
        net[2].bias.zero_()
    return net


def test_attained_lipschitz_of_a_known_piecewise_linear_critic() -> None:
    # v(x) = 2 relu(x) - 3 relu(x - 1): slope 0 left of 0, 2 on (0, 1), -1 right of 1
    net = relu_net([[1.0], [1.0]], [0.0, -1.0], [2.0, -3.0])
    g = torch.Generator().manual_seed(0)
    x_p = (torch.rand(3000, 1, generator=g, dtype=torch.float64) * 5 - 2)
    x_q = (torch.rand(3000, 1, generator=g, dtype=torch.float64) * 5 - 2)
    est = attained_lipschitz(net, x_p, x_q, n_pairs=50_000)
    assert est.gradient == pytest.approx(2.0, rel=1e-12)
    assert 1.9 < est.pairs <= 2.0 + 1e-12  # secants never beat the steepest slope, and some lie in (0, 1)
    assert est.n_points == 9000


def test_attained_lipschitz_of_a_linear_critic_in_2d() -> None:
    a = torch.tensor([[0.6, -0.8 * 3]], dtype=torch.float64)  # |a| = sqrt(0.36 + 5.76)
    net = nn.Linear(2, 1).double()
    with torch.no_grad():
        net.weight.copy_(a)
        net.bias.fill_(0.3)
    x_p, x_q = torch.randn(500, 2, dtype=torch.float64), torch.randn(700, 2, dtype=torch.float64) + 2
    est = attained_lipschitz(net, x_p, x_q, n_pairs=10_000)
    norm = float(np.linalg.norm(a.numpy()))
    assert est.gradient == pytest.approx(norm, rel=1e-12)
    assert est.pairs <= norm * (1 + 1e-12)
    assert est.pairs > 0.99 * norm  # some random pairs lie almost along a


def test_critic_estimate_is_the_difference_of_means() -> None:
    net = nn.Linear(1, 1).double()
    with torch.no_grad():
        net.weight.fill_(2.0)
        net.bias.fill_(-1.0)
    rng = np.random.default_rng(4)
    xp, xq = rng.normal(1.0, 2.0, size=(301, 1)), rng.normal(0.0, 1.0, size=(199, 1))
    est = critic_estimate(net, torch.tensor(xp), torch.tensor(xq))
    vp, vq = 2 * xp[:, 0] - 1, 2 * xq[:, 0] - 1
    assert est.value == pytest.approx(vp.mean() - vq.mean(), rel=1e-12)
    assert est.se == pytest.approx(math.sqrt(vp.var(ddof=1) / 301 + vq.var(ddof=1) / 199), rel=1e-12)


def samplers(shift: float, std: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (lambda n: std * torch.randn(n, 1, generator=g)), (lambda n: shift + std * torch.randn(n, 1, generator=g))


def small_critic(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))


def test_spectral_norm_critic_reaches_w1_with_lipschitz_one() -> None:
    shift, std = 4.0, 0.3  # P = N(0, 0.3^2), Q = N(4, 0.3^2): W1 = 4, optimal critic v = -x
    sp, sq = samplers(shift, std, 5)
    critic = small_critic(0)
    fit_wasserstein_critic(critic, sp, sq, constraint="sn", steps=250, lr=5e-3)
    est = critic_estimate(critic, sp(20_000), sq(20_000))
    lip = attained_lipschitz(critic, sp(2000), sq(2000), n_pairs=20_000)
    assert lip.gradient <= 1.0 + 1e-3  # spectral norm bounds the product of the layers' norms by 1
    assert 0.95 * shift < est.value <= shift + 4 * est.se


def test_gradient_penalty_critic_overshoots_as_predicted() -> None:
    # far apart narrow distributions: the best penalised critic is linear with slope s maximising
    # s d - lambda (s - 1)^2, i.e. s = 1 + d / (2 lambda), and its estimate is d (1 + d / (2 lambda))
    shift, std, lam = 4.0, 0.05, 5.0
    sp, sq = samplers(shift, std, 6)
    critic = small_critic(1)
    fit_wasserstein_critic(critic, sp, sq, constraint="gp", gp_weight=lam, steps=400, lr=5e-3)
    est = critic_estimate(critic, sp(20_000), sq(20_000))
    predicted = shift * (1 + shift / (2 * lam))
    assert est.value == pytest.approx(predicted, rel=0.03)


def test_clipping_keeps_every_weight_in_the_box_and_validation() -> None:
    sp, sq = samplers(2.0, 1.0, 7)
    critic = small_critic(2)
    hist = fit_wasserstein_critic(critic, sp, sq, constraint="clip", clip=0.05, steps=60, log_every=20)
    assert max(float(p.detach().abs().max()) for p in critic.parameters()) <= np.float32(0.05)
    assert hist["step"] == [20.0, 40.0, 60.0]
    assert set(CONSTRAINTS) == {"clip", "gp", "sn", "none"}
    with pytest.raises(ValueError, match="constraint='lasso'"):
        fit_wasserstein_critic(critic, sp, sq, constraint="lasso", steps=1)
    with pytest.raises(ValueError, match="steps=0"):
        fit_wasserstein_critic(critic, sp, sq, constraint="clip", steps=0)
    with pytest.raises(ValueError, match="clip=-1"):
        fit_wasserstein_critic(critic, sp, sq, constraint="clip", clip=-1, steps=1)
    with pytest.raises(ValueError, match="but x_q has 2"):
        attained_lipschitz(critic, torch.zeros(3, 1), torch.zeros(3, 2))
