"""``reduction`` and per-sample weights of every registered loss, against hand-computed numpy values.

The per-sample terms of each loss (default options) are typed here again in numpy from the papers'
formulas, written with probabilities where the papers use them (``D = 1/(1 + e^{-v})``, the ratio
``D/(1 - D)``) and, for the f-GANs, with the f-GAN table's ``g_f`` and ``f^*`` (Nowozin et al. 2016).
The conventions under test (see :mod:`gan_lib.losses.registry`):

* ``mean``: ``sum(w l) / n`` per term (``n`` counts zero weights too), the terms added;
* ``sum``: ``sum(w l)`` per term; ``none``: ``w l`` (``LossTerms(real, fake)`` for two-term
  discriminators); a paired loss (``rgan``) weights pair ``i`` by ``weights_real[i] * weights_fake[i]``;
* losses with batch statistics (``ragan``, ``kl_hinge``, ``chi2_hinge``): ``mean`` and ``sum`` only, no weights.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import optimize, special

from gan_lib import losses
from gan_lib.divergences import get_divergence, variational_bound
from gan_lib.losses import LossTerms

Array = np.ndarray
LOG2 = math.log(2.0)

RNG = np.random.default_rng(2024)
REAL = RNG.uniform(-3.0, 3.0, size=(3, 4))
FAKE = RNG.uniform(-3.0, 3.0, size=(5,))
FAKE_PAIRED = RNG.uniform(-3.0, 3.0, size=(3, 4))  # same shape as REAL, for the paired losses
W_REAL = RNG.uniform(0.2, 2.0, size=(3, 1))  # broadcast over the last dimension of REAL
W_REAL[1, 0] = 0.0  # a zero weight still counts in n
W_FAKE = RNG.uniform(0.2, 2.0, size=(5,))
W_FAKE[2] = 0.0
W_FAKE_PAIRED = RNG.uniform(0.2, 2.0, size=(4,))  # broadcast over the first dimension

BATCH_STATISTICS = {"ragan", "kl_hinge", "chi2_hinge"}
PAIRED = {"rgan", "ragan"}


def t64(x: Array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


# ------------------------------------------------------------------------------------------------
# numpy references: per-sample terms at default options
# ------------------------------------------------------------------------------------------------


def sigmoid(v: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-v))


def log_d(v: Array) -> Array:
    return np.log(sigmoid(v))


def log_1md(v: Array) -> Array:
    return np.log(1.0 - sigmoid(v))


def ratio(v: Array) -> Array:
    d = sigmoid(v)
    return d / (1.0 - d)


def _jeffrey_fstar(t: Array) -> Array:
    w = np.real(special.lambertw(np.exp(1.0 - t)))
    return w + 1.0 / w + t - 2.0


_A = 0.5  # default order of fgan_alpha and poole_alpha

# f-GAN table (g_f(v), f*(t)), Nowozin et al. (2016) Tables 2 and 6
FGAN_TABLE: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "kl": (lambda v: v, lambda t: np.exp(t - 1.0)),
    "reverse_kl": (lambda v: -np.exp(-v), lambda t: -1.0 - np.log(-t)),
    "pearson": (lambda v: v, lambda t: t**2 / 4.0 + t),
    "neyman": (lambda v: 1.0 - np.exp(-v), lambda t: 2.0 - 2.0 * np.sqrt(1.0 - t)),
    "squared_hellinger": (lambda v: 1.0 - np.exp(-v), lambda t: t / (1.0 - t)),
    "jeffrey": (lambda v: v, _jeffrey_fstar),
    "jensen_shannon": (lambda v: LOG2 - np.log(1.0 + np.exp(-v)), lambda t: -np.log(2.0 - np.exp(t))),
    "gan": (lambda v: -np.log(1.0 + np.exp(-v)), lambda t: -np.log(1.0 - np.exp(t))),
    "total_variation": (lambda v: 0.5 * np.tanh(v), lambda t: t),
    "alpha": (
        lambda v: 1.0 / (1.0 - _A) - np.log(1.0 + np.exp(-v)),
        lambda t: ((t * (_A - 1.0) + 1.0) ** (_A / (_A - 1.0)) - 1.0) / _A,
    ),
}

BCE_REAL, BCE_FAKE = (lambda v: -log_d(v)), (lambda v: -log_1md(v))

#: name -> (real term, fake term) of the discriminator: per-sample functions of v
SEPARABLE_D: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "minimax": (BCE_REAL, BCE_FAKE),
    "non_saturating": (BCE_REAL, BCE_FAKE),
    **{
        f"fgan_{d}": ((lambda v, g=g: -g(v)), (lambda v, g=g, fs=fs: fs(g(v))))
        for d, (g, fs) in FGAN_TABLE.items()
    },
    **{n: (BCE_REAL, BCE_FAKE) for n in ("huszar_kl", "poole_standard", "poole_rkl", "poole_kl", "poole_alpha")},
    "poole_envelope": (BCE_REAL, BCE_FAKE),
    "lsgan": (lambda v: 0.5 * (v - 1.0) ** 2, lambda v: 0.5 * v**2),
    "wgan": (lambda v: -v, lambda v: v),
    "hinge": (lambda v: np.maximum(0.0, 1.0 - v), lambda v: np.maximum(0.0, 1.0 + v)),
}

#: name -> per-sample generator term, a function of the fakes' v
SEPARABLE_G: dict[str, Callable[[Array], Array]] = {
    "minimax": log_1md,
    "non_saturating": lambda v: -log_d(v),
    **{f"fgan_{d}": (lambda v, g=g, fs=fs: -fs(g(v))) for d, (g, fs) in FGAN_TABLE.items()},
    "huszar_kl": lambda v: np.log((1.0 - sigmoid(v)) / sigmoid(v)),
    "poole_standard": lambda v: np.log(1.0 + 1.0 / ratio(v)),
    "poole_rkl": lambda v: -np.log(ratio(v)),
    "poole_kl": lambda v: ratio(v) * np.log(ratio(v)),
    "poole_alpha": lambda v: (ratio(v) ** _A - 1.0 - _A * (ratio(v) - 1.0)) / (_A * (_A - 1.0)),
    # f_G(u) - u f_G'(u) for f_G(u) = log(1 + 1/u): f_G' = -1/(u (u + 1))
    "poole_envelope": lambda v: np.log(1.0 + 1.0 / ratio(v)) + 1.0 / (1.0 + ratio(v)),
    "lsgan": lambda v: 0.5 * (v - 1.0) ** 2,
    "wgan": lambda v: -v,
    "hinge": lambda v: -v,
}

#: rgan: per-pair terms, D of (real, fake), G of (fake, real)
RGAN_D = lambda r, f: -log_d(r - f)  # noqa: E731
RGAN_G = lambda f, r: -log_d(f - r)  # noqa: E731


def _kl_w(f: Array) -> Array:
    return np.exp(f) / np.mean(np.exp(f))


def _chi2_w(f: Array) -> Array:
    """max(0, 1 + (f - lam)/2) with lam solving mean = 1 by Brent's method (not by sorting)."""
    excess = lambda lam: np.mean(np.maximum(0.0, 1.0 + (f - lam) / 2.0)) - 1.0  # noqa: E731
    lam = optimize.brentq(excess, f.min() - 2.0, f.max() + 2.0, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return np.maximum(0.0, 1.0 + (f - lam) / 2.0)


#: batch-statistic losses: (real terms, fake terms) given both whole batches
BATCH_D: dict[str, Callable[[Array, Array], tuple[Array, Array]]] = {
    "ragan": lambda r, f: (-log_d(r - f.mean()), -log_1md(f - r.mean())),
    "kl_hinge": lambda r, f: (np.maximum(0.0, 1.0 - r), np.maximum(0.0, 1.0 + _kl_w(f) * f)),
    "chi2_hinge": lambda r, f: (np.maximum(0.0, 1.0 - r), np.maximum(0.0, 1.0 + _chi2_w(f) * f)),
}
BATCH_G: dict[str, Callable[[Array, Array], tuple[Array, ...]]] = {
    "ragan": lambda f, r: (-log_d(f - r.mean()), -log_1md(r - f.mean())),
    "kl_hinge": lambda f, r: (-_kl_w(f) * f,),
    "chi2_hinge": lambda f, r: (-_chi2_w(f) * f,),
}


def test_every_registered_loss_has_a_reference() -> None:
    names = set(losses.names())
    assert set(SEPARABLE_D) | {"rgan"} | set(BATCH_D) == names
    assert set(SEPARABLE_G) | {"rgan"} | set(BATCH_G) == names
    for name in losses.names():
        loss = losses.get(name)
        assert loss.batch_statistics == (name in BATCH_STATISTICS)
        assert loss.paired == (name in PAIRED)
        assert loss.reductions == (("mean", "sum") if name in BATCH_STATISTICS else ("mean", "sum", "none"))


# ------------------------------------------------------------------------------------------------
# mean, sum, none with weights
# ------------------------------------------------------------------------------------------------

PER_SAMPLE = [n for n in losses.names() if n not in BATCH_STATISTICS]

# (weights_real, weights_fake) as numpy (None: no weights), and how they are passed
WEIGHT_CASES = [
    ("none", None, None),
    ("arrays", "W_REAL", "W_FAKE"),
    ("number", 2.5, None),
    ("one-element", None, np.array([0.7])),
]


def _fake_and_weight(name: str) -> tuple[Array, Array]:
    return (FAKE_PAIRED, W_FAKE_PAIRED) if name in PAIRED else (FAKE, W_FAKE)


def _resolve(w: object, name: str) -> object:
    if w == "W_REAL":
        return W_REAL
    if w == "W_FAKE":
        return _fake_and_weight(name)[1]
    return w


def _as_torch(w: object) -> object:
    return t64(w) if isinstance(w, np.ndarray) else w


def _np_weight(w: object, shape: tuple[int, ...]) -> Array:
    return np.broadcast_to(np.ones(shape) if w is None else np.asarray(w, dtype=np.float64), shape)


def _close(got: torch.Tensor, ref: Array | float) -> None:
    np.testing.assert_allclose(got.detach().numpy(), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case, w_real, w_fake", WEIGHT_CASES, ids=[c[0] for c in WEIGHT_CASES])
@pytest.mark.parametrize("name", PER_SAMPLE)
def test_discriminator_reductions_against_numpy(name: str, case: str, w_real: object, w_fake: object) -> None:
    loss = losses.get(name)
    fake, _ = _fake_and_weight(name)
    w_real, w_fake = _resolve(w_real, name), _resolve(w_fake, name)
    kwargs = {"weights_real": _as_torch(w_real), "weights_fake": _as_torch(w_fake)}
    if name == "rgan":  # one term per pair, weighted by the product of the pair's weights
        w = _np_weight(w_real, REAL.shape) * _np_weight(w_fake, REAL.shape)
        terms = w * RGAN_D(REAL, fake)
        ref = {"mean": terms.sum() / terms.size, "sum": terms.sum()}
        none = loss.discriminator(t64(REAL), t64(fake), reduction="none", **kwargs)
        assert isinstance(none, torch.Tensor) and none.shape == REAL.shape
        _close(none, terms)
    else:
        real_term, fake_term = SEPARABLE_D[name]
        lr = _np_weight(w_real, REAL.shape) * real_term(REAL)
        lf = _np_weight(w_fake, fake.shape) * fake_term(fake)
        ref = {"mean": lr.sum() / lr.size + lf.sum() / lf.size, "sum": lr.sum() + lf.sum()}
        none = loss.discriminator(t64(REAL), t64(fake), reduction="none", **kwargs)
        assert isinstance(none, LossTerms)
        assert none.real.shape == REAL.shape and none.fake.shape == fake.shape
        _close(none.real, lr)
        _close(none.fake, lf)
    for reduction in ("mean", "sum"):
        out = loss.discriminator(t64(REAL), t64(fake), reduction=reduction, **kwargs)
        assert out.ndim == 0
        _close(out, ref[reduction])


@pytest.mark.parametrize(
    "case, w_fake", [("none", None), ("array", "W_FAKE"), ("number", -1.5)], ids=["none", "array", "number"]
)
@pytest.mark.parametrize("name", PER_SAMPLE)
def test_generator_reductions_against_numpy(name: str, case: str, w_fake: object) -> None:
    loss = losses.get(name)
    fake, _ = _fake_and_weight(name)
    w = _resolve(w_fake, name)
    per_sample = RGAN_G(fake, REAL) if name == "rgan" else SEPARABLE_G[name](fake)
    terms = _np_weight(w, fake.shape) * per_sample
    d_real = t64(REAL)
    none = loss.generator(t64(fake), d_real, reduction="none", weights=_as_torch(w))
    assert none.shape == fake.shape
    _close(none, terms)
    _close(loss.generator(t64(fake), d_real, reduction="sum", weights=_as_torch(w)), terms.sum())
    _close(loss.generator(t64(fake), d_real, reduction="mean", weights=_as_torch(w)), terms.sum() / terms.size)


@pytest.mark.parametrize("name", losses.names())
def test_default_is_the_unweighted_mean(name: str) -> None:
    loss = losses.get(name)
    fake, _ = _fake_and_weight(name)
    r, f = t64(REAL), t64(fake)
    default_d, default_g = loss.discriminator(r, f), loss.generator(f, r)
    assert float(loss.discriminator(r, f, reduction="mean")) == float(default_d)
    assert float(loss.generator(f, r, reduction="mean")) == float(default_g)
    if name not in BATCH_STATISTICS:
        ones_r, ones_f = torch.ones(REAL.shape, dtype=torch.float64), torch.ones(fake.shape, dtype=torch.float64)
        weighted = loss.discriminator(r, f, weights_real=ones_r, weights_fake=ones_f)
        assert float(weighted) == pytest.approx(float(default_d), rel=1e-15, abs=1e-15)
        assert float(loss.generator(f, r, weights=ones_f)) == pytest.approx(float(default_g), rel=1e-15, abs=1e-15)


# ------------------------------------------------------------------------------------------------
# batch statistics: mean and sum only
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BATCH_STATISTICS))
def test_batch_statistic_losses_mean_and_sum_against_numpy(name: str) -> None:
    loss = losses.get(name)
    fake = FAKE_PAIRED if name in PAIRED else FAKE
    d_terms, g_terms = BATCH_D[name](REAL, fake), BATCH_G[name](fake, REAL)
    r, f = t64(REAL), t64(fake)
    _close(loss.discriminator(r, f, reduction="mean"), sum(t.mean() for t in d_terms))
    _close(loss.discriminator(r, f, reduction="sum"), sum(t.sum() for t in d_terms))
    _close(loss.generator(f, r, reduction="mean"), sum(t.mean() for t in g_terms))
    _close(loss.generator(f, r, reduction="sum"), sum(t.sum() for t in g_terms))


@pytest.mark.parametrize("name", sorted(BATCH_STATISTICS))
def test_batch_statistic_losses_refuse_none_and_weights(name: str) -> None:
    loss = losses.get(name)
    fake = FAKE_PAIRED if name in PAIRED else FAKE
    r, f = t64(REAL), t64(fake)
    for call in (lambda: loss.discriminator(r, f, reduction="none"), lambda: loss.generator(f, r, reduction="none")):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert "reduction='none'" in msg and "allowed: 'mean', 'sum'" in msg and name in msg and "batch" in msg
    w_r, w_f = torch.ones(REAL.shape, dtype=torch.float64), torch.ones(fake.shape, dtype=torch.float64)
    for arg, call in (
        ("weights_real", lambda: loss.discriminator(r, f, weights_real=w_r)),
        ("weights_fake", lambda: loss.discriminator(r, f, reduction="sum", weights_fake=w_f)),
        ("weights", lambda: loss.generator(f, r, weights=w_f)),
    ):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert f"{arg} is not allowed" in msg and name in msg and f"allowed: {arg}=None" in msg


# ------------------------------------------------------------------------------------------------
# invalid reduction and weights
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", losses.names())
@pytest.mark.parametrize("bad", ["avg", "MEAN", None, 0])
def test_invalid_reduction_is_refused_naming_it(name: str, bad: object) -> None:
    loss = losses.get(name)
    fake, _ = _fake_and_weight(name)
    r, f = t64(REAL), t64(fake)
    allowed = "'mean', 'sum'" if name in BATCH_STATISTICS else "'mean', 'sum', 'none'"
    for call in (lambda: loss.discriminator(r, f, reduction=bad), lambda: loss.generator(f, r, reduction=bad)):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert f"reduction={bad!r}" in msg and f"allowed: {allowed}" in msg


@pytest.mark.parametrize("name", PER_SAMPLE)
def test_weights_of_the_wrong_shape_are_refused_naming_both_shapes(name: str) -> None:
    loss = losses.get(name)
    fake, _ = _fake_and_weight(name)
    r, f = t64(REAL), t64(fake)
    n_f = fake.shape
    bad_fake = [torch.ones(n_f + (1,)), torch.ones((n_f[0] + 1,) + n_f[1:]), torch.ones((2,) + n_f)]
    for w in bad_fake:  # (5, 1) would enlarge (5,) to (5, 5); (6,) and (2, 5) do not fit
        for arg, call in (
            ("weights_fake", lambda: loss.discriminator(r, f, weights_fake=w)),
            ("weights", lambda: loss.generator(f, r, weights=w)),
        ):
            with pytest.raises(ValueError) as err:
                call()
            msg = str(err.value)
            assert f"{arg} has shape {tuple(w.shape)}" in msg and f"broadcastable to {n_f}" in msg
    with pytest.raises(ValueError, match=r"weights_real has shape \(3,\).*broadcastable to \(3, 4\)"):
        loss.discriminator(r, f, weights_real=torch.ones(3))  # (3,) aligns with the last dimension, 4
    for bad, kind in (([1.0] * n_f[0], "list"), ("2", "str"), (torch.ones(n_f, dtype=torch.complex64), "complex")):
        with pytest.raises(TypeError, match="weights") as err:
            loss.generator(f, r, weights=bad)
        assert "allowed: None, a real number, or a tensor" in str(err.value), kind


def test_mean_with_weights_follows_torch_binary_cross_entropy() -> None:
    # torch's own convention for per-element weights: mean(w * l), zero weights counted in n
    v_real = torch.tensor([0.3, -1.2, 2.0, 0.0], dtype=torch.float64)
    v_fake = torch.tensor([1.1, -0.4, -2.5], dtype=torch.float64)
    w_real = torch.tensor([1.0, 0.0, 2.0, 0.5], dtype=torch.float64)
    w_fake = torch.tensor([0.0, 3.0, 1.0], dtype=torch.float64)
    loss = losses.get("non_saturating")
    ones, zeros = torch.ones(4, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits
    for reduction in ("mean", "sum", "none"):
        bce_r = bce(v_real, ones, weight=w_real, reduction=reduction)
        bce_f = bce(v_fake, zeros, weight=w_fake, reduction=reduction)
        got = loss.discriminator(v_real, v_fake, reduction=reduction, weights_real=w_real, weights_fake=w_fake)
        if reduction == "none":
            torch.testing.assert_close(got.real, bce_r)
            torch.testing.assert_close(got.fake, bce_f)
        else:
            torch.testing.assert_close(got, bce_r + bce_f)
        g = loss.generator(v_fake, reduction=reduction, weights=w_fake)
        torch.testing.assert_close(g, bce(v_fake, torch.ones_like(v_fake), weight=w_fake, reduction=reduction))


def test_weighted_gradients_against_numpy() -> None:
    # d/dv_i of sum_j w_j softplus(-v_j) / n is -w_i sigmoid(-v_i) / n; of the wgan critic's
    # sum(w_f v_f)/n_f - sum(w_r v_r)/n_r it is w_f/n_f and -w_r/n_r
    v = t64(FAKE).requires_grad_(True)
    (g,) = torch.autograd.grad(losses.get("non_saturating").generator(v, weights=t64(W_FAKE)), v)
    np.testing.assert_allclose(g.numpy(), -W_FAKE * sigmoid(-FAKE) / FAKE.size, rtol=1e-12)
    r, f = t64(REAL).requires_grad_(True), t64(FAKE).requires_grad_(True)
    out = losses.get("wgan").discriminator(r, f, weights_real=t64(W_REAL), weights_fake=t64(W_FAKE))
    gr, gf = torch.autograd.grad(out, (r, f))
    np.testing.assert_allclose(gr.numpy(), -np.broadcast_to(W_REAL, REAL.shape) / REAL.size, rtol=1e-12)
    np.testing.assert_allclose(gf.numpy(), W_FAKE / FAKE.size, rtol=1e-12)


def test_weights_are_cast_to_the_loss_dtype() -> None:
    v32 = torch.tensor(FAKE, dtype=torch.float32)
    mask = torch.tensor([True, False, True, True, False])
    out = losses.get("hinge").generator(v32, weights=mask.double())
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(float(-(FAKE * mask.numpy()).sum() / FAKE.size), rel=1e-6)
    out_bool = losses.get("hinge").generator(v32, weights=mask, reduction="sum")
    assert float(out_bool) == pytest.approx(float(-FAKE[mask.numpy()].sum()), rel=1e-6)


@pytest.mark.parametrize("name", [n for n in losses.names() if n.startswith("fgan_")])
def test_fgan_mean_discriminator_loss_is_minus_the_variational_bound(name: str) -> None:
    div = name.removeprefix("fgan_")
    d = get_divergence(div, alpha=_A) if div == "alpha" else get_divergence(div)
    r, f = t64(REAL), t64(FAKE)
    assert float(losses.get(name).discriminator(r, f)) == pytest.approx(-float(variational_bound(d, r, f)), abs=1e-14)
