"""The book's small GAN runs (gan_lib.train.recipes): they learn a Gaussian, record their path, and
are reproduced by their seed."""

import numpy as np
import pytest
import torch

from gan_lib import losses
from gan_lib.train import fit_location_scale, fit_mlp_gan

M, S = 1.5, 0.5   # the data: N(M, S^2)


def sample_data(n: int) -> torch.Tensor:
    return M + S * torch.randn(n, 1)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_location_scale_gan_finds_the_gaussian_and_records_its_path() -> None:
    steps = 300
    gen, path = fit_location_scale(losses.get("non_saturating"), sample_data, seed=0, steps=steps, batch_size=256,
                                   lr_g=2e-2, lr_d=5e-3, hidden=16, mu=0.0, sigma=1.0)
    # the GAN oscillates around the data's (M, S): over seeds 0-7 the final point was within 0.047 in
    # mu and 0.09 in sigma of it
    assert abs(gen.mu.item() - M) < 0.05, gen.mu.item()
    assert abs(gen.sigma.item() - S) < 0.1, gen.sigma.item()
    # default log_every = steps // 50 = 6: the start, then steps 6, 12, ..., 300
    assert path.shape == (51, 3)
    np.testing.assert_array_equal(path[:, 0], np.arange(0, steps + 1, 6))
    np.testing.assert_allclose(path[0, 1:], [0.0, 1.0], atol=1e-7)
    np.testing.assert_array_equal(path[-1, 1:], [gen.mu.item(), gen.sigma.item()])
    assert abs(path[len(path) // 2, 1] - M) < abs(path[0, 1] - M)   # halfway there, it has moved towards M


def test_a_run_is_its_seed() -> None:
    kwargs = dict(seed=3, steps=20, batch_size=64, lr_g=1e-2, lr_d=1e-2, hidden=8, log_every=5)
    _, first = fit_location_scale(losses.get("minimax"), sample_data, **kwargs)
    torch.randn(1000)   # whatever the global RNG did in between
    gen, again = fit_location_scale(losses.get("minimax"), sample_data, **kwargs)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (5, 3) and list(first[:, 0]) == [0, 5, 10, 15, 20]
    _, other = fit_location_scale(losses.get("minimax"), sample_data, **{**kwargs, "seed": 4})
    assert not np.array_equal(first, other)
    # recording the path uses no randomness: the same run without it ends at the same point
    quiet, none = fit_location_scale(losses.get("minimax"), sample_data, **kwargs, record_path=False)
    assert none is None
    assert (quiet.mu.item(), quiet.sigma.item()) == (gen.mu.item(), gen.sigma.item())


def test_mlp_gan_learns_the_gaussian() -> None:
    gen = fit_mlp_gan(losses.get("non_saturating"), sample_data, dim=1, seed=0, steps=400, batch_size=512,
                      d_steps=2, lr_g=2e-3, lr_d=4e-3, hidden=16)
    with torch.no_grad():
        x = gen(torch.randn(20_000, 1))
    assert x.shape == (20_000, 1)
    # over seeds 0-4 the sample mean was within 0.05 of M and the sample std within 0.114 of S
    assert abs(x.mean().item() - M) < 0.1, x.mean().item()
    assert abs(x.std().item() - S) < 0.15, x.std().item()


def test_mlp_gan_is_reproduced_by_its_seed_in_two_dimensions() -> None:
    kwargs = dict(dim=2, seed=1, steps=5, batch_size=32, hidden=8)
    a = fit_mlp_gan(losses.get("non_saturating"), lambda n: torch.randn(n, 2) + 3.0, **kwargs)
    b = fit_mlp_gan(losses.get("non_saturating"), lambda n: torch.randn(n, 2) + 3.0, **kwargs)
    z = torch.randn(7, 2)
    with torch.no_grad():
        assert a(z).shape == (7, 2)
        assert torch.equal(a(z), b(z))
