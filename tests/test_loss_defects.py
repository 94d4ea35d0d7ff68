"""Regression tests for defects of the loss layer, each against a reference computed another way.

* alpha-losses near alpha = 1 and alpha = 0 (``poole_alpha``, ``fgan_alpha``): float32 values
  against a 50-digit ``decimal`` evaluation of the printed formula at the same float32 inputs,
  the error measured relative to the mean absolute per-sample term (the size of what is summed;
  the mean itself may nearly cancel, e.g. ``E_Q[log u]`` near alpha = 0).
  Before the fix the float32 error grew like ``1e-7 / |alpha - 1|`` (43-47 % at ``1 + 1e-7``,
  1e-5 to 2.5e-4 at ``1 +- 1e-3``), and ``1 + 1e-3`` itself was refused by the validator.
* values the docstrings promise: ``poole_alpha`` is ``+inf`` (not NaN) beyond its safe range;
  ``poole_kl`` is 0 at ``v = -inf`` (not NaN).
* ``get("lsgan", preset="pearson", c=1.0)`` silently used ``c = 0``.
* empty batches: ``variational_bound`` returned NaN, so did the pure loss functions.

Each defect has tests here that failed before its fix (the alpha accuracy tests at
``1 +- 1e-3`` and ``0.99``, the inf/NaN, -inf, preset and empty-batch tests); the remaining cases
(alpha = 0.5 and 2, codes equal to the preset, the registered losses' own empty-batch checks) pin
the behaviour around them.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
import torch

from gan_lib import losses
from gan_lib.divergences import variational_bound
from gan_lib.validation import ALPHA_ONE_GAP

# ------------------------------------------------------------------------------------------------
# alpha near 1 and 0: float32 against 50 digits
# ------------------------------------------------------------------------------------------------

LOG_RATIOS = np.random.default_rng(7).uniform(-4.0, 4.0, size=96)  # density ratios e^-4 .. e^4
EDGE = 1.0 + 1e-9  # the gap itself may round inside it (1 + 1e-4 - 1 < 1e-4 in binary)
ALPHAS = [
    1.0 - 1e-2,
    1.0 + 1e-2,
    1.0 - 1e-3,
    1.0 + 1e-3,
    1.0 - ALPHA_ONE_GAP * EDGE,
    1.0 + ALPHA_ONE_GAP * EDGE,
    1e-3,
    -1e-3,
    ALPHA_ONE_GAP * EDGE,
    -ALPHA_ONE_GAP * EDGE,
    0.5,
    2.0,
]
#: Largest float32 error of the batch-mean loss allowed, relative to the mean |per-sample term|
#: (observed: <= 3e-7).
ALPHA_REL_TOL = 1e-6


def _dec(x: float) -> Decimal:
    return Decimal(float(x))  # exact binary value


def _softplus_dec(x: Decimal) -> Decimal:
    return (1 + x.exp()).ln() if x < 0 else x + (1 + (-x).exp()).ln()


def _power(base: Decimal, exponent: Decimal) -> Decimal:
    return (exponent * base.ln()).exp()


class Ref:
    """A batch mean to 50 digits and the mean absolute per-sample term (its scale)."""

    def __init__(self, *term_lists: list[Decimal]) -> None:
        self.value = float(sum(sum(t) / len(t) for t in term_lists))
        self.scale = float(sum(sum(abs(x) for x in t) / len(t) for t in term_lists))

    def error(self, got: torch.Tensor) -> float:
        return abs(float(got) - self.value) / self.scale


def _poole_alpha_ref(a: float, v: np.ndarray) -> Ref:
    """Mean of (u^a - 1 - a (u - 1)) / (a (a - 1)), u = e^v, to 50 digits."""
    with localcontext() as ctx:
        ctx.prec = 50
        A = _dec(a)
        return Ref([((A * _dec(x)).exp() - 1 - A * (_dec(x).exp() - 1)) / (A * (A - 1)) for x in v])


def _fgan_alpha_ref(a: float, v_real: np.ndarray, v_fake: np.ndarray) -> tuple[Ref, Ref]:
    """(discriminator, generator) losses of f-GAN alpha from the table (Nowozin et al. 2016), 50 digits.

    g(v) = 1/(1-a) - log(1 + e^-v) (a < 1) or v (a > 1); f*(t) = ((t (a-1) + 1)_+^(a/(a-1)) - 1)/a.
    """
    with localcontext() as ctx:
        ctx.prec = 50
        A = _dec(a)

        def g(x: Decimal) -> Decimal:
            return 1 / (1 - A) - _softplus_dec(-x) if a < 1 else x

        def f_star(t: Decimal) -> Decimal:
            base = t * (A - 1) + 1
            if base <= 0:
                return -1 / A
            return (_power(base, A / (A - 1)) - 1) / A

        fake = [f_star(g(_dec(x))) for x in v_fake]
        return Ref([-g(_dec(x)) for x in v_real], fake), Ref([-x for x in fake])


def _optimal_fgan_logit(a: float, log_ratio: np.ndarray) -> np.ndarray:
    """Raw output of the optimal alpha critic, g(v*) = f'(u) = (u^(a-1) - 1)/(a - 1), in float64."""
    if a < 1:  # softplus(-v*) = u^(a-1) / (1 - a)
        s = np.exp((a - 1.0) * log_ratio) / (1.0 - a)
        return -(s + np.log(-np.expm1(-s)))
    return np.expm1((a - 1.0) * log_ratio) / (a - 1.0)


@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"{a:.10g}")
def test_poole_alpha_float32_is_accurate_near_the_limits(alpha: float) -> None:
    v = torch.tensor(LOG_RATIOS, dtype=torch.float32)
    got = losses.get("poole_alpha", alpha=alpha).generator(v)
    assert _poole_alpha_ref(alpha, v.double().numpy()).error(got) < ALPHA_REL_TOL


@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"{a:.10g}")
def test_fgan_alpha_float32_is_accurate_near_the_limits(alpha: float) -> None:
    # logits of the optimal critic for density ratios e^-4 .. e^4, rounded to float32 (near
    # alpha = 1 from below they sit near -1/(1 - alpha): -1e4 at the gap)
    v_real = torch.tensor(_optimal_fgan_logit(alpha, LOG_RATIOS), dtype=torch.float32)
    v_fake = torch.tensor(_optimal_fgan_logit(alpha, -LOG_RATIOS), dtype=torch.float32)
    loss = losses.get("fgan_alpha", alpha=alpha)
    d_ref, g_ref = _fgan_alpha_ref(alpha, v_real.double().numpy(), v_fake.double().numpy())
    assert d_ref.error(loss.discriminator(v_real, v_fake)) < ALPHA_REL_TOL
    assert g_ref.error(loss.generator(v_fake)) < ALPHA_REL_TOL


def test_alpha_gap_edges_are_accepted_and_inside_refused() -> None:
    for a in (1.0 + 1e-3, 1.0 - 1e-3, 1.0 + ALPHA_ONE_GAP * EDGE, ALPHA_ONE_GAP * EDGE):
        losses.get("poole_alpha", alpha=a)
        losses.get("fgan_alpha", alpha=a)
    for a in (1.0 + 0.5 * ALPHA_ONE_GAP, -0.5 * ALPHA_ONE_GAP):
        with pytest.raises(ValueError, match=f"{ALPHA_ONE_GAP:g}"):
            losses.get("poole_alpha", alpha=a)


# ------------------------------------------------------------------------------------------------
# values the docstrings promise
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alpha, v, dtype",
    [
        (0.5, 1e4, torch.float32),  # e^{v/2} and e^v both overflow
        (0.05, 3e3, torch.float32),
        (2.0, 100.0, torch.float32),
        (0.9, 1e3, torch.float32),
        (3.0, 1e3, torch.float64),
        (0.5, 2e3, torch.float64),
    ],
)
def test_poole_alpha_overflows_to_inf_not_nan(alpha: float, v: float, dtype: torch.dtype) -> None:
    # the module docstring: "Outside the range the value overflows to inf"; f_alpha(u) >= 0 grows
    # like u^max(alpha, 1), so +inf is the only right overflow
    loss = losses.get("poole_alpha", alpha=alpha)
    assert v > loss.safe_logit_range[1]
    out = float(loss.generator(torch.tensor([0.0, v], dtype=dtype)))
    assert out == math.inf


@pytest.mark.parametrize("alpha", [0.5, 2.0, 0.05])
def test_poole_alpha_at_minus_inf_is_f_of_zero(alpha: float) -> None:
    # f_alpha(0) = (0 - 1 + alpha) / (alpha (alpha - 1)) = 1/alpha for alpha > 0
    out = float(losses.get("poole_alpha", alpha=alpha).generator(torch.tensor([-math.inf])))
    assert out == pytest.approx(1.0 / alpha, rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_poole_kl_is_zero_at_minus_inf(dtype: torch.dtype) -> None:
    # docstring: "V -> -inf is fine, the loss tends to 0"; V e^V at V = -inf is 0, and so is its
    # derivative (1 + V) e^V. Batch [-inf, 0, 1]: mean (0 + 0 + e)/3, gradient (0, 1/3, 2e/3).
    v = torch.tensor([-math.inf, 0.0, 1.0], dtype=dtype, requires_grad=True)
    out = losses.get("poole_kl").generator(v)
    assert float(out.detach()) == pytest.approx(math.e / 3.0, rel=1e-6)
    (grad,) = torch.autograd.grad(out, v)
    np.testing.assert_allclose(grad.numpy(), [0.0, 1.0 / 3.0, 2.0 * math.e / 3.0], rtol=1e-6)
    assert float(losses.get("poole_kl").generator(torch.tensor([-math.inf], dtype=dtype))) == 0.0


# ------------------------------------------------------------------------------------------------
# lsgan preset conflicts
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("explicit", [{"c": 1.0}, {"a": 0.0}, {"b": 2.0}, {"a": -1.0, "c": 1.0}])
def test_lsgan_preset_refuses_a_conflicting_explicit_code(explicit: dict) -> None:
    # c=1.0 and a=0.0 are the defaults: they used to be taken for "not given" and dropped
    with pytest.raises(ValueError) as err:
        losses.get("lsgan", preset="pearson", **explicit)
    msg = str(err.value)
    assert "preset='pearson'" in msg
    clash = {k: v for k, v in explicit.items() if v != {"a": -1.0, "b": 1.0, "c": 0.0}[k]}
    for key, value in clash.items():
        assert f"{key}={value!r}" in msg


def test_lsgan_preset_with_equal_codes_and_codes_alone_are_accepted() -> None:
    pearson = {"a": -1.0, "b": 1.0, "c": 0.0, "preset": "pearson"}
    assert losses.get("lsgan", preset="pearson", a=-1.0, c=0.0).options == pearson
    assert losses.get("lsgan", preset="pearson").options == pearson
    assert losses.get("lsgan", c=1.0).options == {"a": 0.0, "b": 1.0, "c": 1.0, "preset": None}
    # the generator really uses the preset's c = 0: 0.5 * mean(v^2)
    v = torch.tensor([1.0, -3.0], dtype=torch.float64)
    assert float(losses.get("lsgan", preset="pearson").generator(v)) == pytest.approx(2.5)


# ------------------------------------------------------------------------------------------------
# empty batches
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("div", ["gan", "kl", "pearson"])
def test_variational_bound_refuses_empty_samples(div: str) -> None:
    empty, some = torch.zeros(0), torch.zeros(3)
    with pytest.raises(ValueError, match=r"v_real is empty \(shape \(0,\)\)"):
        variational_bound(div, empty, some)
    with pytest.raises(ValueError, match=r"v_fake is empty \(shape \(2, 0\)\)"):
        variational_bound(div, some, torch.zeros(2, 0))


@pytest.mark.parametrize("name", losses.names())
def test_pure_loss_functions_refuse_empty_batches(name: str) -> None:
    # GANLoss checked its inputs already; the pure functions behind it returned NaN (a mean over
    # nothing). Now every one of them refuses, naming the empty argument.
    loss = losses.get(name)
    empty, some = torch.zeros(0), torch.zeros(3)
    real_fake = [(empty, empty)] if loss.paired else [(empty, some), (some, empty)]
    for d_real, d_fake in real_fake:
        with pytest.raises(ValueError, match="is empty") as err:
            loss.discriminator_fn(d_real, d_fake)
        if not loss.paired:
            assert ("d_real" if d_real.numel() == 0 else "d_fake") in str(err.value)
    with pytest.raises(ValueError, match="is empty"):
        if loss.requires_real_in_generator:
            loss.generator_fn(empty, empty)
        else:
            loss.generator_fn(empty)


@pytest.mark.parametrize("name", losses.names())
def test_registered_losses_refuse_empty_batches_naming_the_argument(name: str) -> None:
    loss = losses.get(name)
    empty, some = torch.zeros(0), torch.zeros(3)
    with pytest.raises(ValueError, match=r"d_real is empty \(shape \(0,\)\)"):
        loss.discriminator(empty, some)
    with pytest.raises(ValueError, match=r"d_fake is empty \(shape \(0,\)\)"):
        loss.discriminator(some, empty)
    with pytest.raises(ValueError, match=r"d_fake is empty \(shape \(0,\)\)"):
        loss.generator(empty, some)
    if loss.requires_real_in_generator:
        with pytest.raises(ValueError, match=r"d_real is empty \(shape \(0,\)\)"):
            loss.generator(some, empty)
