"""Tests of gan_lib.train.gan: ``train_gan``, ``train_discriminator``, ``set_seed`` and ``History``.

References: the parameters of a known target (a location-scale generator must find the mean and
scale of a Gaussian; a linear logistic critic between N(0, 1) and N(1, 1) must find the log density
ratio ``0.5 - x``), and a bare hand-written loop written here, which seeded training must match bit
for bit. Tolerances are about twice the worst error observed over 12-20 seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gan_lib import losses, nets
from gan_lib.train import History, set_seed, train_discriminator, train_gan


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gaussian(mu: float, sigma: float, dim: int = 1):
    return lambda n: mu + sigma * torch.randn(n, dim)


def noise(dim: int = 1):
    return lambda n: torch.randn(n, dim)


def params_of(*modules: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for m in modules for p in m.parameters()]


def assert_bit_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and torch.equal(x, y), (x - y).abs().max().item()


def fused_adam(params, **kw) -> torch.optim.Adam:
    """What a careful hand-written loop uses: the fused kernel if this torch has one, else the default."""
    params = list(params)
    probe = torch.zeros(1, dtype=params[0].dtype, requires_grad=True)
    probe.grad = torch.ones_like(probe)
    try:
        torch.optim.Adam([probe], fused=True).step()
    except RuntimeError:
        return torch.optim.Adam(params, **kw)
    return torch.optim.Adam(params, fused=True, **kw)


class Spy:
    """A duck-typed loss wrapping a registered one and recording what ``train_gan`` passes it."""

    def __init__(self, name: str, with_flag: bool = True) -> None:
        self.inner = losses.get(name)
        if with_flag:
            self.requires_real_in_generator = self.inner.requires_real_in_generator
        self.d_calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.g_calls: list[tuple] = []

    def discriminator(self, d_real, d_fake):
        self.d_calls.append((d_real, d_fake))
        return self.inner.discriminator(d_real, d_fake)

    def generator(self, d_fake, *rest):
        self.g_calls.append(rest)
        return self.inner.generator(d_fake, *rest)


# --- it learns -------------------------------------------------------------------------------


def test_location_scale_gan_learns_mean_and_scale_of_a_gaussian() -> None:
    set_seed(1)
    gen, disc = nets.LocationScale(1, mu=0.0, sigma=1.0), nets.mlp(1, 1, 32, 2)
    loss = losses.get("non_saturating")
    # a fast phase, then a slower one that damps the oscillation around the equilibrium
    for steps, lr in ((300, 1e-2), (200, 2e-3)):
        train_gan(gen, disc, loss, gaussian(2.0, 0.5), noise(), steps=steps, batch_size=128, lr_g=lr, lr_d=lr,
                  progress=False)
    # over seeds 0-19 the worst errors were 0.023 (mu) and 0.043 (sigma)
    assert abs(gen.mu.item() - 2.0) < 0.05, gen.mu.item()
    assert abs(gen.sigma.item() - 0.5) < 0.085, gen.sigma.item()


def test_train_discriminator_finds_the_log_density_ratio() -> None:
    # real N(0, 1), fake N(1, 1): log p/q (x) = 0.5 - x, which a linear logit can represent exactly
    set_seed(0)
    disc = nn.Linear(1, 1)
    bce = losses.get("minimax").discriminator
    for steps, lr in ((300, 2e-2), (200, 2e-3)):
        hist = train_discriminator(disc, bce, gaussian(0.0, 1.0), gaussian(1.0, 1.0), steps=steps, batch_size=512,
                                   lr=lr, progress=False)
    # over seeds 0-7 the worst errors were 0.026 (slope) and 0.014 (intercept)
    assert abs(disc.weight.item() + 1.0) < 0.05, disc.weight.item()
    assert abs(disc.bias.item() - 0.5) < 0.03, disc.bias.item()
    assert hist["step"] == [50.0, 100.0, 150.0, 200.0]


# --- the same arithmetic as a bare loop ------------------------------------------------------


def bare_gan(gen, disc, loss, sample_real, sample_noise, *, steps, batch, d_steps, lr_g, lr_d, betas) -> None:
    """The textbook loop: ``d_steps`` discriminator steps, then one generator step on fresh noise."""
    opt_g = fused_adam(gen.parameters(), lr=lr_g, betas=betas)
    opt_d = fused_adam(disc.parameters(), lr=lr_d, betas=betas)
    for _ in range(steps):
        for _ in range(d_steps):
            x_real = sample_real(batch)
            with torch.no_grad():
                x_fake = gen(sample_noise(batch))
            d_loss = loss.discriminator(disc(x_real), disc(x_fake))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        g_loss = loss.generator(disc(gen(sample_noise(batch))))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d_steps", [1, 2])
def test_train_gan_matches_a_bare_loop_bit_for_bit(dtype: torch.dtype, d_steps: int) -> None:
    loss = losses.get("non_saturating")
    real = lambda n: (torch.tensor([1.0, -1.0]) + 0.3 * torch.randn(n, 2)).to(dtype)
    z = lambda n: torch.randn(n, 2, dtype=dtype)
    finals = []
    for loop in ("library", "bare"):
        set_seed(11)
        gen, disc = nets.mlp(2, 2, 8, 2).to(dtype), nets.mlp(2, 1, 8, 2).to(dtype)
        set_seed(12)
        options = {"steps": 25, "d_steps": d_steps, "lr_g": 3e-3, "lr_d": 2e-3, "betas": (0.5, 0.99)}
        if loop == "library":
            train_gan(gen, disc, loss, real, z, batch_size=16, progress=False, **options)
        else:
            bare_gan(gen, disc, loss, real, z, batch=16, **options)
        finals.append(params_of(gen, disc))
    assert_bit_equal(*finals)
    assert all(p.dtype == dtype for p in finals[0])


def test_train_discriminator_matches_a_bare_loop_bit_for_bit() -> None:
    bce = losses.get("minimax").discriminator
    finals = []
    for loop in ("library", "bare"):
        set_seed(4)
        disc = nets.mlp(2, 1, 8, 1)
        set_seed(5)
        if loop == "library":
            train_discriminator(disc, bce, noise(2), gaussian(0.5, 1.0, 2), steps=30, batch_size=16, lr=5e-3,
                                progress=False)
        else:
            opt = fused_adam(disc.parameters(), lr=5e-3)
            for _ in range(30):
                d_loss = bce(disc(torch.randn(16, 2)), disc(gaussian(0.5, 1.0, 2)(16)))
                opt.zero_grad()
                d_loss.backward()
                opt.step()
        finals.append(params_of(disc))
    assert_bit_equal(*finals)


# --- what the loop passes to the loss and the hooks ------------------------------------------


def counting(sampler):
    drawn: list[torch.Tensor] = []

    def sample(n: int) -> torch.Tensor:
        drawn.append(sampler(n))
        return drawn[-1]

    return sample, drawn


def test_penalty_and_after_d_step_run_once_per_discriminator_step_with_the_batches_of_that_step() -> None:
    set_seed(0)
    gen, disc = nets.mlp(1, 1, 4, 1), nets.mlp(1, 1, 4, 1)
    sample_real, drawn = counting(gaussian(0.0, 1.0))
    penalties: list[tuple] = []
    clips: list[nn.Module] = []

    def penalty(d, x_real, x_fake):
        penalties.append((d, x_real, x_fake, x_fake.requires_grad))
        return torch.zeros(())

    train_gan(gen, disc, losses.get("non_saturating"), sample_real, noise(), steps=4, batch_size=8, d_steps=3,
              d_penalty=penalty, after_d_step=clips.append, progress=False)
    assert len(penalties) == len(clips) == 3 * 4
    assert all(c is disc for c in clips)
    assert len(drawn) == 3 * 4  # no real batch for a non-relativistic generator step
    for (d, x_real, x_fake, fake_grad), real in zip(penalties, drawn):
        assert d is disc and x_real is real
        assert x_fake.shape == (8, 1) and not fake_grad


def test_penalty_value_is_added_to_the_discriminator_loss() -> None:
    logged = []
    for extra in (None, 5.0):
        set_seed(2)
        gen, disc = nets.mlp(1, 1, 4, 1), nets.mlp(1, 1, 4, 1)
        penalty = None if extra is None else (lambda d, xr, xf: torch.tensor(extra))
        hist = train_gan(gen, disc, losses.get("non_saturating"), gaussian(1.0, 1.0), noise(), steps=6,
                         batch_size=8, d_penalty=penalty, log_every=2, progress=False)
        logged.append(np.array(hist["d_loss"]))
    # a constant penalty has no gradient: training is identical and the logged loss is shifted by it
    np.testing.assert_allclose(logged[1] - logged[0], 5.0, rtol=0, atol=1e-6)


def test_relativistic_loss_receives_d_real_from_a_fresh_real_batch_without_gradient() -> None:
    set_seed(3)
    gen, disc = nets.mlp(1, 1, 4, 1), nets.mlp(1, 1, 4, 1)
    sample_real, drawn = counting(gaussian(0.0, 1.0))
    spy = Spy("ragan")
    assert spy.requires_real_in_generator
    seen = []
    spy_generator = spy.generator

    def generator(d_fake, *rest):
        # the discriminator as it is at this generator step, on the batch drawn last
        with torch.no_grad():
            seen.append(disc(drawn[-1]))
        return spy_generator(d_fake, *rest)

    spy.generator = generator
    train_gan(gen, disc, spy, sample_real, noise(), steps=5, batch_size=8, d_steps=2, progress=False)
    assert len(spy.g_calls) == 5 and len(drawn) == 5 * (2 + 1)
    for (d_real,), expected in zip(spy.g_calls, seen):
        assert d_real.shape == (8, 1) and not d_real.requires_grad
        assert torch.equal(d_real, expected)


@pytest.mark.parametrize("with_flag", [True, False])
def test_non_relativistic_and_duck_typed_losses_get_d_fake_only(with_flag: bool) -> None:
    set_seed(3)
    gen, disc = nets.mlp(1, 1, 4, 1), nets.mlp(1, 1, 4, 1)
    sample_real, drawn = counting(gaussian(0.0, 1.0))
    spy = Spy("lsgan", with_flag=with_flag)
    assert hasattr(spy, "requires_real_in_generator") == with_flag
    train_gan(gen, disc, spy, sample_real, noise(), steps=5, batch_size=8, d_steps=2, progress=False)
    assert spy.g_calls == [()] * 5
    assert len(spy.d_calls) == 10 and len(drawn) == 10


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, r"steps=0 must be an integer >= 1"),
        ({"steps": 10, "batch_size": -1}, r"batch_size=-1 must be an integer >= 1"),
        ({"steps": 10, "d_steps": 1.5}, r"d_steps=1\.5 must be an integer >= 1"),
        ({"steps": True}, r"steps=True must be an integer >= 1"),
        ({"steps": 10, "log_every": 0}, r"log_every=0 must be an integer >= 1"),
        ({"steps": 10, "lr_d": 0.0}, r"lr_d=0\.0 must be a finite number > 0"),
        ({"steps": 10, "lr_g": float("nan")}, r"lr_g=nan must be a finite number > 0"),
    ],
)
def test_train_gan_refuses_bad_arguments_naming_the_value(kwargs: dict, match: str) -> None:
    gen, disc = nets.mlp(1, 1, 4, 1), nets.mlp(1, 1, 4, 1)
    before = params_of(gen, disc)
    with pytest.raises(ValueError, match=match):
        train_gan(gen, disc, losses.get("non_saturating"), gaussian(0.0, 1.0), noise(), progress=False, **kwargs)
    assert_bit_equal(before, params_of(gen, disc))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"steps": 0}, r"steps=0 must"), ({"steps": 5, "batch_size": 2.0}, r"batch_size=2\.0 must"),
     ({"steps": 5, "lr": -1e-3}, r"lr=-0\.001 must be a finite number > 0")],
)
def test_train_discriminator_refuses_bad_arguments_naming_the_value(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        train_discriminator(nets.mlp(1, 1, 4, 1), losses.get("minimax").discriminator, noise(), noise(),
                            progress=False, **kwargs)


# --- set_seed and History --------------------------------------------------------------------


def run_seeded(seed: int) -> tuple[list[torch.Tensor], np.ndarray]:
    set_seed(seed)
    gen, disc = nets.LocationScale(1), nets.mlp(1, 1, 8, 1)
    real = lambda n: torch.from_numpy(np.random.normal(1.0, 1.0, (n, 1))).float()  # NumPy's RNG, seeded too
    train_gan(gen, disc, losses.get("non_saturating"), real, noise(), steps=10, batch_size=16, progress=False)
    return params_of(gen, disc), np.random.random(3)


def test_set_seed_makes_runs_identical_and_different_seeds_differ() -> None:
    (a, na), (b, nb), (c, _) = run_seeded(7), run_seeded(7), run_seeded(8)
    assert_bit_equal(a, b)
    np.testing.assert_array_equal(na, nb)
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    g1, g2 = set_seed(np.int64(9)), set_seed(9)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


@pytest.mark.parametrize("seed", [-1, True, 1.0, "3", 2**64])
def test_set_seed_refuses_what_is_not_a_seed(seed) -> None:
    with pytest.raises(ValueError, match=rf"seed={seed!r} must be an integer"):
        set_seed(seed)


def test_history_appends_floats_per_key() -> None:
    h = History()
    h.append({"step": 1, "loss": torch.tensor(0.5).item()})
    h.append({"step": 2, "loss": np.float32(0.25), "extra": 3})
    assert h["step"] == [1.0, 2.0] and h["loss"] == [0.5, 0.25] and h["extra"] == [3.0]
    assert all(isinstance(v, float) for v in h["loss"])
    assert h.last("loss") == 0.25
    with pytest.raises(KeyError):
        h["missing"]


def test_train_gan_logs_every_log_every_steps_and_the_last_and_calls_each_callback() -> None:
    set_seed(0)
    gen, disc = nets.mlp(1, 1, 4, 1), nets.mlp(1, 1, 4, 1)
    seen_a, seen_b = [], []
    callbacks = (cb for cb in (lambda s, r: seen_a.append((s, r)), lambda s, r: seen_b.append(s)))  # one-shot
    hist = train_gan(gen, disc, losses.get("non_saturating"), gaussian(0.0, 1.0), noise(), steps=7, batch_size=8,
                     log_every=3, callbacks=callbacks, progress=False)
    assert hist["step"] == [3.0, 6.0, 7.0]
    assert set(hist.records) == {"step", "d_loss", "g_loss"}
    assert [s for s, _ in seen_a] == seen_b == [3, 6, 7]
    assert [r["g_loss"] for _, r in seen_a] == hist["g_loss"]
    assert all(np.isfinite(hist["d_loss"]))
