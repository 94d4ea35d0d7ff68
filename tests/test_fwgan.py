"""The in-batch weights of f-WGAN (Song & Ermon 2020) and the losses built on them.

* Both weight formulas (KL: ``n softmax(v)``; chi^2: ``max(0, 1 + (v - lambda)/2)``) against a direct
  numerical minimisation of ``(1/n) sum_i f(r_i) - r_i v_i`` over ``r_i >= 0`` with mean one
  (``scipy.optimize.minimize``, SLSQP, on the constrained problem);
* the chi^2 weights against ``lambda`` found by Brent's method (not by sorting), their shift
  invariance, shape and dtype handling;
* the gradients the critic and the generator get, with and without detached weights, against
  central differences of numpy references.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import optimize

from gan_lib import losses
from gan_lib.losses.ipm import chi2_batch_weights, kl_batch_weights

RNG = np.random.default_rng(6)


def kl_f(u: np.ndarray) -> np.ndarray:
    return u * np.log(np.maximum(u, 1e-300))


def chi2_f(u: np.ndarray) -> np.ndarray:
    return (u - 1.0) ** 2


def minimise_over_simplex(v: np.ndarray, f, positive: bool) -> np.ndarray:
    """argmin over r >= 0 (> 0 for KL), mean r = 1, of mean(f(r) - r v), by SLSQP from r = 1."""
    n = v.size

    def objective(r: np.ndarray) -> float:
        return float(np.mean(f(r) - r * v))

    lower = 1e-12 if positive else 0.0
    result = optimize.minimize(
        objective,
        np.ones(n),
        method="SLSQP",
        bounds=[(lower, n)] * n,
        constraints=[{"type": "eq", "fun": lambda r: np.mean(r) - 1.0}],
        options={"ftol": 1e-15, "maxiter": 2000},
    )
    assert result.success, result.message
    return result.x


def brent_chi2(v: np.ndarray) -> np.ndarray:
    excess = lambda lam: np.mean(np.maximum(0.0, 1.0 + (v - lam) / 2.0)) - 1.0  # noqa: E731
    lam = optimize.brentq(excess, v.min() - 2.0, v.max() + 2.0, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return np.maximum(0.0, 1.0 + (v - lam) / 2.0)


BATCHES = {
    "mild": 0.5 * RNG.standard_normal(12),  # no chi^2 weight clipped
    "spread": 2.5 * RNG.standard_normal(12),  # several clipped
    "outlier": np.array([4.0, 0.1, -0.2, 0.0, 0.3, -0.1, 0.2, -0.3]),  # one sample takes most weight
    "ties": np.array([1.0, 1.0, -1.0, -1.0, -3.0, 2.0]),
}


@pytest.mark.parametrize("case", list(BATCHES))
def test_kl_weights_minimise_the_objective(case: str) -> None:
    v = BATCHES[case]
    numeric = minimise_over_simplex(v, kl_f, positive=True)
    w = kl_batch_weights(torch.as_tensor(v)).numpy()
    objective = lambda r: np.mean(kl_f(r) - r * v)  # noqa: E731
    # the closed form is at least as good as SLSQP's answer, and close to it
    assert objective(w) <= objective(numeric) + 1e-12
    np.testing.assert_allclose(w, numeric, atol=2e-5)
    assert objective(w) == pytest.approx(-np.log(np.mean(np.exp(v))), abs=1e-12)


@pytest.mark.parametrize("case", list(BATCHES))
def test_chi2_weights_minimise_the_objective(case: str) -> None:
    v = BATCHES[case]
    numeric = minimise_over_simplex(v, chi2_f, positive=False)
    w = chi2_batch_weights(torch.as_tensor(v)).numpy()
    objective = lambda r: np.mean(chi2_f(r) - r * v)  # noqa: E731
    assert objective(w) <= objective(numeric) + 1e-12
    np.testing.assert_allclose(w, numeric, atol=1e-6)
    np.testing.assert_allclose(w, brent_chi2(v), rtol=1e-12, atol=1e-12)
    assert w.min() >= 0.0 and w.mean() == pytest.approx(1.0, rel=1e-14)


def test_chi2_clipping_happens_where_expected() -> None:
    assert (chi2_batch_weights(torch.as_tensor(BATCHES["mild"])) > 0).all()
    spread = chi2_batch_weights(torch.as_tensor(BATCHES["spread"]))
    assert 0 < int((spread == 0).sum()) < spread.numel() - 1
    # no clipping: r = 1 + (v - mean v)/2 exactly
    v = BATCHES["mild"]
    np.testing.assert_allclose(chi2_batch_weights(torch.as_tensor(v)).numpy(), 1.0 + (v - v.mean()) / 2.0, rtol=1e-13)
    # a batch of one: weight 1; equal values: weights 1
    assert float(chi2_batch_weights(torch.tensor([3.7], dtype=torch.float64))) == 1.0
    assert torch.equal(chi2_batch_weights(torch.full((5,), -2.0, dtype=torch.float64)), torch.ones(5, dtype=torch.float64))


@pytest.mark.parametrize("n", [2, 7, 64, 257])
def test_chi2_weights_random_batches_against_brent(n: int) -> None:
    gen = np.random.default_rng(n)
    for scale in (0.1, 1.0, 5.0, 50.0):
        v = scale * gen.standard_normal(n)
        w = chi2_batch_weights(torch.as_tensor(v)).numpy()
        np.testing.assert_allclose(w, brent_chi2(v), rtol=1e-10, atol=1e-10 * scale)
        # shift invariance
        shifted = chi2_batch_weights(torch.as_tensor(v + 123.0)).numpy()
        np.testing.assert_allclose(shifted, w, atol=1e-9 * max(1.0, scale))


@pytest.mark.parametrize("offset", [1e3, 1e4, -3e4])
def test_chi2_weights_keep_their_digits_under_a_large_offset_in_float32(offset: float) -> None:
    # the reference: Brent on the float32 inputs themselves (exactly representable in float64), the
    # offset taken off in float64; without centring the cumulative sums lost ~2.6e-4 at 1e4
    v32 = (torch.as_tensor(RNG.standard_normal(256) * 3.0) + offset).float()
    reference = brent_chi2(v32.double().numpy() - offset)
    w = chi2_batch_weights(v32)
    np.testing.assert_allclose(w.double().numpy(), reference, atol=2e-6)
    assert float(w.double().mean()) == pytest.approx(1.0, abs=1e-6)
    rows = chi2_batch_weights(torch.stack([v32, v32 - offset]), dim=-1)
    np.testing.assert_allclose(rows[0].double().numpy(), reference, atol=2e-6)


def test_weights_keep_shape_and_dtype() -> None:
    v = torch.as_tensor(RNG.standard_normal((4, 6)))
    for fn in (kl_batch_weights, chi2_batch_weights):
        w = fn(v)
        assert w.shape == v.shape and w.dtype == v.dtype
        assert float(w.mean()) == pytest.approx(1.0, rel=1e-14)  # one batch of 24, not four of 6
    w = chi2_batch_weights(v)
    np.testing.assert_allclose(w.numpy().ravel(), brent_chi2(v.numpy().ravel()), rtol=1e-12, atol=1e-12)
    assert chi2_batch_weights(torch.zeros(0)).shape == (0,)  # empty batch: empty weights (the losses refuse it)
    for dtype in (torch.float32, torch.bfloat16):
        low = chi2_batch_weights(v.to(dtype))
        assert low.dtype == dtype
        np.testing.assert_allclose(low.double().numpy(), w.numpy(), atol=2e-2 if dtype is torch.bfloat16 else 1e-5)


def test_chi2_hinge_is_hinge_for_equal_critic_values() -> None:
    real = torch.tensor([0.3, -0.8, 1.7], dtype=torch.float64)
    flat = torch.full((6,), 0.4, dtype=torch.float64)
    chi2, hinge = losses.get("chi2_hinge"), losses.get("hinge")
    assert float(chi2.discriminator(real, flat)) == pytest.approx(float(hinge.discriminator(real, flat)), rel=1e-15)
    assert float(chi2.generator(flat)) == pytest.approx(float(hinge.generator(flat)), rel=1e-15)


# ------------------------------------------------------------------------------------------------
# gradients, with and without detached weights, against central differences of numpy references
# ------------------------------------------------------------------------------------------------

def _numpy_weights(name: str, v: np.ndarray) -> np.ndarray:
    return np.exp(v) / np.mean(np.exp(v)) if name == "kl_hinge" else brent_chi2(v)


def _fd(fun, v: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    out = np.empty_like(v)
    for j in range(v.size):
        e = np.zeros_like(v)
        e[j] = eps
        out[j] = (fun(v + e) - fun(v - e)) / (2 * eps)
    return out


V_REAL = np.array([0.9, -0.4, 1.6, 0.2, -1.1])
V_FAKE = np.array([1.3, -2.4, 0.35, -0.8, 2.1, -3.3, 0.05])  # chi^2 clips the two lowest


@pytest.mark.parametrize("name", ["kl_hinge", "chi2_hinge"])
def test_gradients_with_and_without_detached_weights(name: str) -> None:
    w0 = _numpy_weights(name, V_FAKE)
    if name == "chi2_hinge":
        assert int((w0 == 0).sum()) == 2
    # references: weights that move with v (full) or stay at their value at V_FAKE (detached)
    g_full_ref = lambda f: -np.mean(_numpy_weights(name, f) * f)  # noqa: E731
    g_det_ref = lambda f: -np.mean(w0 * f)  # noqa: E731
    d_full_ref = lambda f: np.mean(np.maximum(0.0, 1.0 - V_REAL)) + np.mean(  # noqa: E731
        np.maximum(0.0, 1.0 + _numpy_weights(name, f) * f)
    )
    d_det_ref = lambda f: np.mean(np.maximum(0.0, 1.0 - V_REAL)) + np.mean(np.maximum(0.0, 1.0 + w0 * f))  # noqa: E731
    for detach, g_ref, d_ref in ((False, g_full_ref, d_full_ref), (True, g_det_ref, d_det_ref)):
        loss = losses.get(name, detach_weights=detach)
        f = torch.as_tensor(V_FAKE).clone().requires_grad_(True)
        r = torch.as_tensor(V_REAL)
        (g_grad,) = torch.autograd.grad(loss.generator(f), f)
        (d_grad,) = torch.autograd.grad(loss.discriminator(r, f), f)
        np.testing.assert_allclose(g_grad.numpy(), _fd(g_ref, V_FAKE), atol=1e-8)
        np.testing.assert_allclose(d_grad.numpy(), _fd(d_ref, V_FAKE), atol=1e-8)
    # detached: the generator pushes every fake up in proportion to its weight, -r_i / n
    f = torch.as_tensor(V_FAKE).clone().requires_grad_(True)
    (g_det,) = torch.autograd.grad(losses.get(name, detach_weights=True).generator(f), f)
    np.testing.assert_allclose(g_det.numpy(), -w0 / V_FAKE.size, rtol=1e-12, atol=1e-15)


def test_closed_forms_of_the_full_generator_gradients() -> None:
    """KL: -(r_j/n)(1 + v_j - mean(r v)); chi^2: -(1/n)(r_j + (v_j - mean_S v)/2) on the support S, 0 off it."""
    n = V_FAKE.size
    r = np.exp(V_FAKE) / np.mean(np.exp(V_FAKE))
    kl_closed = -(r / n) * (1.0 + V_FAKE - np.mean(r * V_FAKE))
    w = brent_chi2(V_FAKE)
    support = w > 0
    chi2_closed = np.where(support, -(w + (V_FAKE - V_FAKE[support].mean()) / 2.0) / n, 0.0)
    for name, closed in (("kl_hinge", kl_closed), ("chi2_hinge", chi2_closed)):
        f = torch.as_tensor(V_FAKE).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(losses.get(name).generator(f), f)
        np.testing.assert_allclose(grad.numpy(), closed, rtol=1e-12, atol=1e-15)
    # the KL gradient through the weights pushes the worst fakes *down*: 1 + v_j < mean(r v)
    assert kl_closed[np.argmin(V_FAKE)] > 0


def test_chi2_weights_under_vmap_match_per_row() -> None:
    v = torch.as_tensor(RNG.standard_normal((3, 9)) * 2.0)
    batched = torch.func.vmap(chi2_batch_weights)(v)
    for k in range(3):
        np.testing.assert_allclose(batched[k].numpy(), brent_chi2(v[k].numpy()), rtol=1e-12, atol=1e-12)


def test_batch_weights_along_a_dim_match_each_batch() -> None:
    # rows of a (K, n) stack, and columns of its transpose, are independent batches
    v = torch.as_tensor(RNG.standard_normal((4, 11)) * 2.0)
    v[2] = v[2] * 10.0  # a batch where most weights are clipped
    for dim, stack in ((-1, v), (0, v.T), (1, v)):
        chi2 = chi2_batch_weights(stack, dim=dim)
        kl = kl_batch_weights(stack, dim=dim)
        assert chi2.shape == kl.shape == stack.shape
        rows = chi2 if dim != 0 else chi2.T
        kl_rows = kl if dim != 0 else kl.T
        for k in range(4):
            np.testing.assert_allclose(rows[k].numpy(), brent_chi2(v[k].numpy()), rtol=1e-12, atol=1e-12)
            e = np.exp(v[k].numpy())
            np.testing.assert_allclose(kl_rows[k].numpy(), e / e.mean(), rtol=1e-12)
    half = chi2_batch_weights(v.half(), dim=-1)
    assert half.dtype == torch.float16
    np.testing.assert_allclose(half.double().numpy(), chi2_batch_weights(v.half().double(), dim=-1).numpy(), atol=2e-3)


ROWS_CASES = [("ragan", {}), ("kl_hinge", {}), ("kl_hinge", {"detach_weights": True}),
              ("chi2_hinge", {}), ("chi2_hinge", {"detach_weights": True})]


@pytest.mark.parametrize("name,options", ROWS_CASES)
def test_row_wise_losses_equal_the_loss_of_each_batch(name, options) -> None:
    loss = losses.get(name, **options)
    assert loss.batch_statistics and loss.has_rows
    d_real = torch.as_tensor(RNG.standard_normal((5, 16)) * 3.0).requires_grad_(True)
    d_fake = torch.as_tensor(RNG.standard_normal((5, 16)) * 3.0 - 1.0).requires_grad_(True)
    for half, rows_fn, args in (
        ("discriminator", loss.discriminator_rows, (d_real, d_fake)),
        ("generator", loss.generator_rows, (d_fake, d_real)),
    ):
        got = rows_fn(*args)
        want = torch.stack([getattr(loss, half)(*(a[k] for a in args)) for k in range(5)])
        assert got.shape == (5,)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-12, atol=1e-14)
        for g_got, g_want in zip(torch.autograd.grad(got.sum(), (d_real, d_fake), allow_unused=True),
                                 torch.autograd.grad(want.sum(), (d_real, d_fake), allow_unused=True)):
            assert (g_got is None) == (g_want is None)
            if g_got is not None:
                np.testing.assert_allclose(g_got.numpy(), g_want.numpy(), rtol=1e-12, atol=1e-14)


def test_row_wise_form_refuses_what_it_cannot_take() -> None:
    kl = losses.get("kl_hinge")
    with pytest.raises(ValueError, match=r"shape \(16,\); the row-wise form takes \(K, n\)"):
        kl.discriminator_rows(torch.zeros(16), torch.zeros(16))
    with pytest.raises(ValueError, match="same number of rows K"):
        kl.discriminator_rows(torch.zeros(3, 8), torch.zeros(4, 8))
    with pytest.raises(ValueError, match="empty"):
        kl.generator_rows(torch.zeros(3, 0))
    with pytest.raises(ValueError, match="needs d_real"):
        losses.get("ragan").generator_rows(torch.zeros(3, 8))
    with pytest.raises(ValueError, match="same shape"):
        losses.get("ragan").discriminator_rows(torch.zeros(3, 8), torch.zeros(3, 9))
    hinge = losses.get("hinge")
    assert not hinge.has_rows
    with pytest.raises(TypeError, match="'hinge' has no row-wise form"):
        hinge.discriminator_rows(torch.zeros(3, 8), torch.zeros(3, 8))


@pytest.mark.parametrize("name", ["kl_hinge", "chi2_hinge"])
def test_half_precision_losses_stay_finite_when_only_the_terms_overflow(name: str) -> None:
    # one large fake value: its weight r approaches n (KL) and r v leaves float16's range (65504),
    # while the loss, a mean, does not; reference: the same formula in float64 with numpy
    v = np.zeros(256)
    v[0] = 300.0
    if name == "kl_hinge":
        r = len(v) * np.exp(v - v.max()) / np.exp(v - v.max()).sum()
    else:
        r = chi2_batch_weights(torch.from_numpy(v)).numpy()  # checked against Brent above
    g_ref = -np.mean(r * v)
    d_ref = np.mean(np.maximum(0.0, 1.0 - v)) + np.mean(np.maximum(0.0, 1.0 + r * v))
    loss = losses.get(name)
    for dtype in (torch.float16, torch.bfloat16):
        t = torch.from_numpy(v).to(dtype)
        g, d = loss.generator(t), loss.discriminator(t, t)
        rows = loss.generator_rows(t[None])
        assert g.dtype == d.dtype == rows.dtype == dtype
        tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
        assert float(g) == pytest.approx(g_ref, rel=tol) and float(rows[0]) == pytest.approx(g_ref, rel=tol)
        assert float(d) == pytest.approx(d_ref, rel=tol)


def test_weights_refuse_integer_critic_values() -> None:
    for weights in (kl_batch_weights, chi2_batch_weights):
        with pytest.raises(TypeError, match="torch.int64"):
            weights(torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("name", ["kl_hinge", "chi2_hinge"])
def test_a_fake_the_critic_rules_out_counts_as_its_limit(name: str, detach: bool) -> None:
    """A critic value of -inf (e.g. a log-density ratio outside the support) gives the limit of
    the loss as the value goes to -inf, not 0 * (-inf) = nan: its weight is 0, its term r v tends
    to 0. Reference: the same batch with -60 in its place (KL weight e^-60 ~ 1e-26, a term of
    ~1e-24; chi^2 weight exactly 0 there, where the product is an ordinary 0), values and gradients;
    for chi^2 also the hand solution of the projection (support {0.5, 1}, lambda = -1/4)."""
    loss = losses.get(name, detach_weights=detach)
    d_real = torch.tensor([0.2, 0.3, 2.0], dtype=torch.float64)

    def value_and_gradients(low: float) -> tuple[torch.Tensor, ...]:
        v = torch.tensor([0.5, low, 1.0], dtype=torch.float64, requires_grad=True)
        d, g = loss.discriminator(d_real, v), loss.generator(v)
        (grad_d,) = torch.autograd.grad(d, v)
        (grad_g,) = torch.autograd.grad(g, v)
        return d.detach(), g.detach(), grad_d, grad_g

    ruled_out, stand_in = value_and_gradients(float("-inf")), value_and_gradients(-60.0)
    for got, want in zip(ruled_out, stand_in):
        assert torch.isfinite(got).all(), got
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-20)
    if name == "chi2_hinge":
        # r = 1 + (v - lambda)/2 = (1.375, 0, 1.625); with the weights attached, d(sum r v)/dv_i =
        # r_i + (v_i - v_j)/4 over the support {i, j} (d lambda / dv = 1/2 there) = (1.25, 0, 1.75);
        # detached, r itself; every 1 + r v > 0, so the critic's fake term has the same gradient
        r_v = torch.tensor([1.375 * 0.5, 0.0, 1.625 * 1.0], dtype=torch.float64)
        d_hand = torch.relu(1 - d_real).mean() + torch.relu(1 + r_v).mean()
        torch.testing.assert_close(ruled_out[0], d_hand, rtol=1e-14, atol=0)
        torch.testing.assert_close(ruled_out[1], -r_v.mean(), rtol=1e-14, atol=0)
        slope = torch.tensor([1.375, 0.0, 1.625] if detach else [1.25, 0.0, 1.75], dtype=torch.float64) / 3
        torch.testing.assert_close(ruled_out[2], slope, rtol=1e-14, atol=0)
        torch.testing.assert_close(ruled_out[3], -slope, rtol=1e-14, atol=0)
    # the row-wise forms (the ensemble's) agree, row by row, with a finite row beside the one with -inf
    rows = torch.tensor([[0.5, float("-inf"), 1.0], [0.1, -0.4, 0.7]], dtype=torch.float64)
    both = loss.discriminator_rows(torch.stack([d_real, d_real]), rows)
    both_g = loss.generator_rows(rows)
    for i in range(2):
        torch.testing.assert_close(both[i], loss.discriminator(d_real, rows[i]), rtol=1e-14, atol=0)
        torch.testing.assert_close(both_g[i], loss.generator(rows[i]), rtol=1e-14, atol=0)
    # in float16 (computed in float32) the same: finite, and the float32 loss of the same values
    half = torch.tensor([0.5, float("-inf"), 1.0], dtype=torch.float16)
    torch.testing.assert_close(loss.generator(half).float(), loss.generator(half.float()).half().float())
    assert torch.isfinite(loss.generator(half))
    # no limit without a finite value, or with +inf: nan, as documented
    assert torch.isnan(loss.generator(torch.full((3,), float("-inf"), dtype=torch.float64)))
    assert torch.isnan(loss.generator(torch.tensor([0.0, float("inf")], dtype=torch.float64)))


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("name", ["kl_hinge", "chi2_hinge"])
def test_finite_batches_give_the_plain_weighted_terms(name: str, detach: bool) -> None:
    """For finite values, zeroing where the weight is 0 changes nothing: values and gradients equal
    those of the plain product r v, written out here, bit for bit, including weights that are 0 at
    a finite value (a KL weight that underflows at -800, chi^2 weights clipped at 0)."""
    batch_weights = kl_batch_weights if name == "kl_hinge" else chi2_batch_weights
    loss = losses.get(name, detach_weights=detach)
    gen = torch.Generator().manual_seed(3)
    d_real = torch.randn(9, dtype=torch.float64, generator=gen)
    values = torch.randn(9, dtype=torch.float64, generator=gen) * 3.0
    values[4] = -800.0
    v = values.clone().requires_grad_(True)
    w = v.clone().requires_grad_(True)
    r = batch_weights(w)
    assert (r == 0).any()  # the case the zeroing is about
    r_v = w * (r.detach() if detach else r)
    plain_d = torch.relu(1 - d_real).mean() + torch.relu(1 + r_v).mean()
    plain_g = -r_v.mean()
    for got, want in ((loss.discriminator(d_real, v), plain_d), (loss.generator(v), plain_g)):
        assert torch.equal(got, want)
        assert torch.equal(torch.autograd.grad(got, v)[0], torch.autograd.grad(want, w, retain_graph=True)[0])
