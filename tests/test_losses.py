"""Tests of the loss registry ``gan_lib.losses`` against references computed another way.

* Pointwise: each loss against a numpy transcription of the paper's formula written with
  probabilities (``D = 1/(1 + e^{-v})``, ``log D``, density ratios ``D/(1-D)``) at moderate logits,
  and for the f-GANs against the f-GAN table (``g_f``, ``f^*``) typed in ``tests/reference.py``,
  never imported from ``gan_lib``.
* At the optimum: two known 1-D Gaussians, the optimal critic written by hand from the log-density
  ratio, expectations as sample means over deterministic quantile samples
  ``x_i = F^{-1}((i + 1/2)/N)`` (Richardson-extrapolated over ``N`` and ``2N``) and compared with
  divergences obtained by ``scipy.integrate.quad`` on numpy densities.
* Robustness: finite values and gradients for logits up to ``|v| = 1e4`` (or the stated safe
  range) in float32 and bfloat16; float32 agrees with float64.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from scipy import integrate, optimize
from scipy.stats import norm
from torch import nn

from gan_lib import losses
from gan_lib.losses import regularisers
from reference import (
    FGAN_NAMES,
    f_divergence_f,
    f_divergence_fprime,
    fgan_activation,
    fgan_conjugate,
    log_one_minus_sigmoid,
    log_sigmoid,
    normal_logpdf,
    sigmoid,
    tex_balanced,
)

LOG4 = math.log(4.0)
N_QUANTILE = 200_000

REQUIRED_NAMES = [
    "minimax",
    "non_saturating",
    "huszar_kl",
    "poole_standard",
    "poole_rkl",
    "poole_kl",
    "poole_alpha",
    "lsgan",
    "wgan",
    "hinge",
    "rgan",
    "ragan",
    "kl_hinge",
] + [
    f"fgan_{d}"
    for d in (
        "kl",
        "reverse_kl",
        "pearson",
        "neyman",
        "squared_hellinger",
        "jeffrey",
        "jensen_shannon",
        "gan",
        "total_variation",
        "alpha",
    )
]

RELATIVISTIC = ("rgan", "ragan")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def t64(x: np.ndarray | list[float]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def value(x: torch.Tensor) -> float:
    return float(x.detach())


# ------------------------------------------------------------------------------------------------
# Two 1-D Gaussians with quantile samples and quadrature
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """P = N(mp, sp^2) (data), Q = N(mq, sq^2) (model)."""

    mp: float
    sp: float
    mq: float
    sq: float

    def logp(self, x: np.ndarray) -> np.ndarray:
        return normal_logpdf(x, self.mp, self.sp)

    def logq(self, x: np.ndarray) -> np.ndarray:
        return normal_logpdf(x, self.mq, self.sq)

    def log_ratio(self, x: np.ndarray) -> np.ndarray:
        """r(x) = log p(x) - log q(x), the optimal logit of a sigmoid discriminator."""
        return self.logp(x) - self.logq(x)

    def samples(self, which: str, n: int) -> np.ndarray:
        u = (np.arange(n) + 0.5) / n
        m, s = (self.mp, self.sp) if which == "p" else (self.mq, self.sq)
        return norm.ppf(u, m, s)

    def expect(self, fn: Callable[[np.ndarray, np.ndarray], float], n: int = N_QUANTILE) -> float:
        """Richardson-extrapolated (over n and 2n) quantile estimate of a loss of (x_P, x_Q) samples."""
        coarse = fn(self.samples("p", n), self.samples("q", n))
        fine = fn(self.samples("p", 2 * n), self.samples("q", 2 * n))
        return 2.0 * fine - coarse

    def quad(self, integrand: Callable[[float], float]) -> float:
        lo = min(self.mp, self.mq) - 20.0 * max(self.sp, self.sq)
        hi = max(self.mp, self.mq) + 20.0 * max(self.sp, self.sq)
        val, err = integrate.quad(
            integrand, lo, hi, points=[self.mp, self.mq], limit=400, epsabs=1e-13, epsrel=1e-12
        )
        assert err < 1e-8
        return val


# p narrower than q: the density ratio p/q is bounded, every expectation below is finite.
UNEQUAL = Pair(0.0, 1.0, 0.7, 1.3)
# equal variances: every f-divergence is finite; log p/q is linear.
SHIFTED = Pair(0.0, 1.0, 0.5, 1.0)


def jsd(pair: Pair) -> float:
    def integrand(x: float) -> float:
        lp, lq = pair.logp(x), pair.logq(x)
        lm = np.logaddexp(lp, lq) - math.log(2.0)
        return 0.5 * math.exp(lp) * (lp - lm) + 0.5 * math.exp(lq) * (lq - lm)

    return pair.quad(integrand)


def kl_qp(pair: Pair) -> float:
    return pair.quad(lambda x: math.exp(pair.logq(x)) * (pair.logq(x) - pair.logp(x)))


def kl_pq(pair: Pair) -> float:
    return pair.quad(lambda x: math.exp(pair.logp(x)) * (pair.logp(x) - pair.logq(x)))


def e_p_log_dstar(pair: Pair) -> float:
    """E_P[log D*] with D* = p/(p+q)."""
    return pair.quad(lambda x: math.exp(pair.logp(x)) * (pair.logp(x) - np.logaddexp(pair.logp(x), pair.logq(x))))


def test_quadrature_references_match_gaussian_closed_forms() -> None:
    # Sanity of the references themselves: KL between Gaussians has a closed form.
    for pair in (UNEQUAL, SHIFTED):
        closed = math.log(pair.sp / pair.sq) + (pair.sq**2 + (pair.mq - pair.mp) ** 2) / (2 * pair.sp**2) - 0.5
        assert kl_qp(pair) == pytest.approx(closed, rel=1e-10)
    # the quantile estimator is accurate for moderate integrands
    est = UNEQUAL.expect(lambda xp, xq: float(np.mean(xq**2)))
    assert est == pytest.approx(UNEQUAL.mq**2 + UNEQUAL.sq**2, rel=1e-7)


# ------------------------------------------------------------------------------------------------
# Registry and API
# ------------------------------------------------------------------------------------------------


def test_required_names_registered() -> None:
    names = losses.names()
    assert set(REQUIRED_NAMES) <= set(names)
    assert len(names) == len(set(names))
    assert list(losses.REGISTRY) == names


@pytest.mark.parametrize("name", losses.names())
def test_spec_metadata(name: str) -> None:
    spec = losses.REGISTRY[name]
    loss = losses.get(name)
    assert isinstance(loss, losses.GANLoss)
    assert loss.name == name == spec.name
    assert "\n" not in loss.formula and loss.formula.startswith("D: ") and ";  G: " in loss.formula
    assert spec.formula == loss.formula
    assert re.fullmatch(r"[a-z]+\d{4}[a-z]+", loss.citation)
    assert loss.options == spec.defaults
    assert loss.requires_real_in_generator == (name in RELATIVISTIC)
    assert callable(loss.discriminator_fn) and callable(loss.generator_fn)


def test_citations_exist_in_bibliography() -> None:
    bib = Path(__file__).resolve().parents[1] / "book" / "references.bib"
    if not bib.exists():
        pytest.skip("book/references.bib not present")
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib.read_text(encoding="utf-8")))
    missing = {n: losses.REGISTRY[n].citation for n in losses.names() if losses.REGISTRY[n].citation not in keys}
    assert not missing


def test_table_has_both_halves() -> None:
    rows = losses.table()
    assert [r["name"] for r in rows] == losses.names()
    for row in rows:
        loss = losses.get(row["name"])
        # the table's halves are the loss's formula, split at "D: ... ;  G: ..."
        assert loss.formula.startswith(f"D: {row['discriminator']};  G: {row['generator']}"), row["name"]
        assert tex_balanced(row["discriminator"]) and tex_balanced(row["generator"]), row
        assert row["citation"] == loss.citation


def test_one_implementation_two_names() -> None:
    assert losses.get("huszar_kl").generator_fn is losses.get("poole_rkl").generator_fn
    assert losses.get("poole_standard").generator_fn is losses.get("non_saturating").generator_fn
    assert losses.get("wgan").generator_fn is losses.get("hinge").generator_fn
    bce = losses.get("minimax").discriminator_fn
    for name in ("non_saturating", "huszar_kl", "poole_standard", "poole_rkl", "poole_kl"):
        assert losses.get(name).discriminator_fn is bce


def test_get_unknown_name_lists_all_names() -> None:
    with pytest.raises(ValueError) as err:
        losses.get("minimaxx")
    msg = str(err.value)
    assert "minimaxx" in msg
    for name in losses.names():
        assert name in msg


def test_get_unknown_option_names_it_and_lists_allowed() -> None:
    with pytest.raises(ValueError) as err:
        losses.get("lsgan", d=1.0)
    msg = str(err.value)
    assert "'d'" in msg and all(k in msg for k in ("a (default", "b (default", "c (default", "preset"))
    with pytest.raises(ValueError, match="no option 'alpha'.*takes no options"):
        losses.get("minimax", alpha=0.5)
    with pytest.raises(ValueError, match="no option 'alpha'"):
        losses.get("fgan_kl", alpha=0.5)


@pytest.mark.parametrize(
    "name, options, bad",
    [
        ("poole_alpha", {"alpha": 0}, "alpha"),
        ("poole_alpha", {"alpha": 1.0}, "alpha"),
        ("poole_alpha", {"alpha": "half"}, "alpha"),
        ("poole_alpha", {"alpha": float("nan")}, "alpha"),
        ("poole_alpha", {"alpha": True}, "alpha"),
        ("fgan_alpha", {"alpha": 1}, "alpha"),
        ("fgan_alpha", {"alpha": float("inf")}, "alpha"),
        ("fgan_kl", {"generator": "saturating"}, "generator"),
        ("fgan_kl", {"clamp": "yes"}, "clamp"),
        ("lsgan", {"a": float("inf")}, "a"),
        ("lsgan", {"preset": "chi2"}, "preset"),
        ("poole_kl", {"clamp": 1}, "clamp"),
    ],
)
def test_get_bad_option_value(name: str, options: dict, bad: str) -> None:
    with pytest.raises(ValueError) as err:
        losses.get(name, **options)
    msg = str(err.value)
    assert f"option {bad}=" in msg and "allowed options:" in msg


def test_lsgan_presets_and_codes() -> None:
    pearson = losses.get("lsgan", preset="pearson")
    assert pearson.options == {"a": -1.0, "b": 1.0, "c": 0.0, "preset": "pearson"}
    with pytest.raises(ValueError, match="preset='pearson'"):
        losses.get("lsgan", preset="pearson", c=2.0)
    with pytest.raises(ValueError, match="must differ"):
        losses.get("lsgan", a=1.0, b=1.0)
    assert losses.get("lsgan", a=2).options["a"] == 2.0


def test_ganloss_equality_and_hash() -> None:
    assert losses.get("poole_alpha", alpha=2) == losses.get("poole_alpha", alpha=2.0)
    assert losses.get("poole_alpha", alpha=2) != losses.get("poole_alpha", alpha=3)
    assert len({losses.get("wgan"), losses.get("wgan"), losses.get("hinge")}) == 2


def test_input_validation() -> None:
    loss = losses.get("non_saturating")
    with pytest.raises(TypeError, match="d_real must be a torch.Tensor"):
        loss.discriminator([0.0], torch.zeros(2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating-point"):
        loss.generator(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        loss.discriminator(torch.zeros(0), torch.zeros(2))
    # non-paired losses accept batches of different sizes and shapes
    assert torch.isfinite(loss.discriminator(torch.zeros(3, 1), torch.zeros(5)))


@pytest.mark.parametrize("name", RELATIVISTIC)
def test_relativistic_need_real_and_matching_shapes(name: str) -> None:
    loss = losses.get(name)
    assert loss.paired and loss.requires_real_in_generator
    with pytest.raises(ValueError, match="needs d_real"):
        loss.generator(torch.zeros(4))
    for call in (
        lambda: loss.discriminator(torch.zeros(4), torch.zeros(5)),
        lambda: loss.generator(torch.zeros(5), torch.zeros(4)),
        lambda: loss.discriminator(torch.zeros(4, 1), torch.zeros(4)),
        # the bare functions check too
        lambda: loss.discriminator_fn(torch.zeros(4), torch.zeros(5)),
        lambda: loss.generator_fn(torch.zeros(5), torch.zeros(4)),
    ):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert "d_real (4" in msg and ("d_fake (5,)" in msg or "d_fake (4,)" in msg)


# ------------------------------------------------------------------------------------------------
# Pointwise formulas against numpy transcriptions (moderate logits)
# ------------------------------------------------------------------------------------------------

RNG = np.random.default_rng(20240611)
V_REAL = RNG.uniform(-6.0, 6.0, size=37)
V_FAKE = RNG.uniform(-6.0, 6.0, size=37)


def _ratio(v: np.ndarray) -> np.ndarray:
    """Density ratio estimate p/q = D/(1-D) of Poole et al."""
    d = sigmoid(v)
    return d / (1.0 - d)


def _np_alpha_fg(u: np.ndarray, a: float) -> np.ndarray:
    return f_divergence_f("alpha", u, a)


NUMPY_D = {
    "bce": lambda r, f: -np.mean(log_sigmoid(r)) - np.mean(log_one_minus_sigmoid(f)),
    "wgan": lambda r, f: np.mean(f) - np.mean(r),
    "hinge": lambda r, f: np.mean(np.maximum(0.0, 1.0 - r)) + np.mean(np.maximum(0.0, 1.0 + f)),
    "rgan": lambda r, f: -np.mean(log_sigmoid(r - f)),
    "ragan": lambda r, f: -np.mean(log_sigmoid(r - f.mean())) - np.mean(log_one_minus_sigmoid(f - r.mean())),
    # Song & Ermon (2020): fake critic values reweighted by exp(v_i) / mean_j exp(v_j)
    "kl_hinge": lambda r, f: np.mean(np.maximum(0.0, 1.0 - r))
    + np.mean(np.maximum(0.0, 1.0 + f * np.exp(f) / np.mean(np.exp(f)))),
}

NUMPY_CASES: list[tuple[str, dict, str, Callable[..., float]]] = [
    ("minimax", {}, "bce", lambda f, r: np.mean(log_one_minus_sigmoid(f))),
    ("non_saturating", {}, "bce", lambda f, r: -np.mean(log_sigmoid(f))),
    ("huszar_kl", {}, "bce", lambda f, r: np.mean(np.log((1.0 - sigmoid(f)) / sigmoid(f)))),
    ("poole_standard", {}, "bce", lambda f, r: np.mean(np.log(1.0 + 1.0 / _ratio(f)))),
    ("poole_rkl", {}, "bce", lambda f, r: np.mean(-np.log(_ratio(f)))),
    ("poole_kl", {}, "bce", lambda f, r: np.mean(_ratio(f) * np.log(_ratio(f)))),
    ("poole_kl", {"clamp": True}, "bce", lambda f, r: np.mean(_ratio(f) * np.log(_ratio(f)))),
    ("poole_alpha", {"alpha": 0.5}, "bce", lambda f, r: np.mean(_np_alpha_fg(_ratio(f), 0.5))),
    ("poole_alpha", {"alpha": -1.5}, "bce", lambda f, r: np.mean(_np_alpha_fg(_ratio(f), -1.5))),
    ("poole_alpha", {"alpha": 3.0}, "bce", lambda f, r: np.mean(_np_alpha_fg(_ratio(f), 3.0))),
    ("wgan", {}, "wgan", lambda f, r: -np.mean(f)),
    ("hinge", {}, "hinge", lambda f, r: -np.mean(f)),
    ("rgan", {}, "rgan", lambda f, r: -np.mean(log_sigmoid(f - r))),
    ("ragan", {}, "ragan", lambda f, r: -np.mean(log_sigmoid(f - r.mean())) - np.mean(log_one_minus_sigmoid(r - f.mean()))),
    ("kl_hinge", {}, "kl_hinge", lambda f, r: -np.mean(f * np.exp(f) / np.mean(np.exp(f)))),
    ("kl_hinge", {"detach_weights": True}, "kl_hinge", lambda f, r: -np.mean(f * np.exp(f) / np.mean(np.exp(f)))),
]


def _case_id(x: object) -> str:
    return str(x) if isinstance(x, (str, dict)) else ""


@pytest.mark.parametrize("name, options, d_key, g_ref", NUMPY_CASES, ids=_case_id)
def test_pointwise_against_numpy(name: str, options: dict, d_key: str, g_ref: Callable[..., float]) -> None:
    loss = losses.get(name, **options)
    r, f = t64(V_REAL), t64(V_FAKE)
    assert value(loss.discriminator(r, f)) == pytest.approx(NUMPY_D[d_key](V_REAL, V_FAKE), rel=1e-12, abs=1e-12)
    assert value(loss.generator(f, r)) == pytest.approx(g_ref(V_FAKE, V_REAL), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("a, b, c", [(0.0, 1.0, 1.0), (-1.0, 1.0, 0.0), (0.3, -2.0, 5.0)])
def test_lsgan_pointwise(a: float, b: float, c: float) -> None:
    loss = losses.get("lsgan", a=a, b=b, c=c)
    d_ref = 0.5 * np.mean((V_REAL - b) ** 2) + 0.5 * np.mean((V_FAKE - a) ** 2)
    g_ref = 0.5 * np.mean((V_FAKE - c) ** 2)
    assert value(loss.discriminator(t64(V_REAL), t64(V_FAKE))) == pytest.approx(d_ref, rel=1e-13)
    assert value(loss.generator(t64(V_FAKE))) == pytest.approx(g_ref, rel=1e-13)


def test_relativistic_losses_ignore_a_common_shift() -> None:
    r, f = t64(V_REAL), t64(V_FAKE)
    for name in RELATIVISTIC:
        loss = losses.get(name)
        assert value(loss.discriminator(r + 7.0, f + 7.0)) == pytest.approx(value(loss.discriminator(r, f)), rel=1e-12)
        assert value(loss.generator(f - 3.0, r - 3.0)) == pytest.approx(value(loss.generator(f, r)), rel=1e-12)


# --- f-GAN table (g_f, f*) of Nowozin et al. (2016) Table 2/6, from the numpy references


def _fgan_table(div: str, alpha: float | None) -> tuple[Callable, Callable]:
    return (lambda v: fgan_activation(div, v, alpha)), (lambda t: fgan_conjugate(div, t, alpha))


FGAN_CASES = [(d, None) for d in FGAN_NAMES] + [("alpha", a) for a in (-1.5, -0.5, 0.5, 0.8, 2.0, 3.0)]


def _fgan_get(div: str, alpha: float | None, **options) -> losses.GANLoss:
    if div == "alpha":
        return losses.get("fgan_alpha", alpha=alpha, **options)
    return losses.get(f"fgan_{div}", **options)


@pytest.mark.parametrize("div, alpha", FGAN_CASES)
def test_fgan_pointwise_against_table(div: str, alpha: float | None) -> None:
    g, fstar = _fgan_table(div, alpha)
    r, f = V_REAL / 2.0, V_FAKE / 2.0  # |v| <= 3 keeps every table entry in its domain
    bound = np.mean(g(r)) - np.mean(fstar(g(f)))
    mm = _fgan_get(div, alpha)
    ns = _fgan_get(div, alpha, generator="nonsaturating")
    assert value(mm.discriminator(t64(r), t64(f))) == pytest.approx(-bound, rel=1e-9, abs=1e-12)
    assert value(mm.generator(t64(f))) == pytest.approx(-np.mean(fstar(g(f))), rel=1e-9, abs=1e-12)
    assert value(ns.discriminator(t64(r), t64(f))) == pytest.approx(-bound, rel=1e-9, abs=1e-12)
    assert value(ns.generator(t64(f))) == pytest.approx(-np.mean(g(f)), rel=1e-9, abs=1e-12)
    if "clamp" in mm.options:  # inside the safe range clamping changes nothing
        cl = _fgan_get(div, alpha, clamp=True)
        assert value(cl.discriminator(t64(r), t64(f))) == pytest.approx(-bound, rel=1e-9, abs=1e-12)


def test_fgan_gan_divergence_is_the_standard_gan() -> None:
    # f-GAN with the GAN divergence: D loss is the BCE, the non-saturating G is -log D.
    r, f = t64(V_REAL), t64(V_FAKE)
    fg = losses.get("fgan_gan", generator="nonsaturating")
    ns = losses.get("non_saturating")
    mm = losses.get("minimax")
    assert value(fg.discriminator(r, f)) == pytest.approx(value(ns.discriminator(r, f)), rel=1e-12)
    assert value(fg.generator(f)) == pytest.approx(value(ns.generator(f)), rel=1e-12)
    assert value(losses.get("fgan_gan").generator(f)) == pytest.approx(value(mm.generator(f)), rel=1e-12)


# ------------------------------------------------------------------------------------------------
# Known optima: the standard GAN and the density-ratio generator objectives
# ------------------------------------------------------------------------------------------------


def _at_vstar(pair: Pair, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
    """Quantile estimate of fn(v*(x_P), v*(x_Q)) with v* = log p - log q."""
    return pair.expect(lambda xp, xq: value(fn(t64(pair.log_ratio(xp)), t64(pair.log_ratio(xq)))))


@pytest.mark.parametrize("pair", [UNEQUAL, SHIFTED])
def test_minimax_optimal_discriminator_gives_jsd(pair: Pair) -> None:
    loss = losses.get("minimax")
    neg_d = -_at_vstar(pair, lambda r, f: loss.discriminator(r, f))
    assert neg_d == pytest.approx(-LOG4 + 2.0 * jsd(pair), abs=1e-7)
    # the generator's minimax loss at D* is E_Q log(1 - D*) = (2 JSD - log 4) - E_P log D*
    g = _at_vstar(pair, lambda r, f: loss.generator(f))
    assert g == pytest.approx(2.0 * jsd(pair) - LOG4 - e_p_log_dstar(pair), abs=1e-7)


@pytest.mark.parametrize("pair", [UNEQUAL, SHIFTED])
def test_optimal_logit_is_the_minimiser_of_bce(pair: Pair) -> None:
    # Any other logit function does worse: v* + perturbation raises the BCE.
    loss = losses.get("minimax")
    best = _at_vstar(pair, lambda r, f: loss.discriminator(r, f))
    for bump in (lambda v: v + 0.2, lambda v: 0.9 * v, lambda v: v + 0.1 * torch.sin(v)):
        worse = _at_vstar(pair, lambda r, f: loss.discriminator(bump(r), bump(f)))
        assert worse > best + 1e-4


@pytest.mark.parametrize("pair", [UNEQUAL, SHIFTED])
def test_non_saturating_blog_decomposition(pair: Pair) -> None:
    g = _at_vstar(pair, lambda r, f: losses.get("non_saturating").generator(f))
    expected = kl_qp(pair) - 2.0 * jsd(pair) + e_p_log_dstar(pair) + LOG4
    assert g == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("name", ["huszar_kl", "poole_rkl"])
@pytest.mark.parametrize("pair", [UNEQUAL, SHIFTED])
def test_huszar_generator_at_optimum_is_reverse_kl(name: str, pair: Pair) -> None:
    g = _at_vstar(pair, lambda r, f: losses.get(name).generator(f))
    assert g == pytest.approx(kl_qp(pair), rel=1e-7)


def _f_g_quad(pair: Pair, f_of_log_u: Callable[[float], float]) -> float:
    """E_Q[f_G(p/q)] by quadrature, f_G given as a function of log u."""
    return pair.quad(lambda x: math.exp(pair.logq(x)) * f_of_log_u(pair.log_ratio(x)))


@pytest.mark.parametrize(
    "name, options, f_of_log_u, pair, rel",
    [
        ("poole_standard", {}, lambda lu: math.log1p(math.exp(-lu)), UNEQUAL, 1e-7),
        ("poole_kl", {}, lambda lu: math.exp(lu) * lu, UNEQUAL, 1e-7),
        ("poole_kl", {}, lambda lu: math.exp(lu) * lu, SHIFTED, 1e-5),
        ("poole_alpha", {"alpha": 0.5}, lambda lu: _np_alpha_fg(math.exp(lu), 0.5), UNEQUAL, 1e-6),
        ("poole_alpha", {"alpha": 2.0}, lambda lu: _np_alpha_fg(math.exp(lu), 2.0), UNEQUAL, 1e-6),
        ("poole_alpha", {"alpha": -0.5}, lambda lu: _np_alpha_fg(math.exp(lu), -0.5), SHIFTED, 1e-5),
        ("poole_alpha", {"alpha": 3.0}, lambda lu: _np_alpha_fg(math.exp(lu), 3.0), SHIFTED, 1e-4),
    ],
)
def test_poole_generators_at_optimum_are_their_f_divergences(
    name: str, options: dict, f_of_log_u: Callable[[float], float], pair: Pair, rel: float
) -> None:
    g = _at_vstar(pair, lambda r, f: losses.get(name, **options).generator(f))
    assert g == pytest.approx(_f_g_quad(pair, f_of_log_u), rel=rel)


def test_poole_kl_at_optimum_is_forward_kl() -> None:
    g = _at_vstar(UNEQUAL, lambda r, f: losses.get("poole_kl").generator(f))
    assert g == pytest.approx(kl_pq(UNEQUAL), rel=1e-7)


# ------------------------------------------------------------------------------------------------
# Known optima: f-GAN
# ------------------------------------------------------------------------------------------------


def _fgan_vstar(div: str, alpha: float | None, r: np.ndarray) -> np.ndarray:
    """Raw critic value with g_f(v*) = f'(p/q), by hand from the table, as a function of r = log p/q."""
    u = np.exp(r)
    if div == "kl":
        return r + 1.0
    if div in ("reverse_kl", "jensen_shannon", "gan"):
        return r
    if div == "pearson":
        return 2.0 * np.expm1(r)
    if div == "neyman":
        return 2.0 * r
    if div == "squared_hellinger":
        return r / 2.0
    if div == "jeffrey":
        return r + 1.0 - np.exp(-r)
    if div == "total_variation":
        return 30.0 * np.sign(r)  # T* = sign(u - 1)/2 = tanh(+-30)/2 to 1e-26
    assert div == "alpha" and alpha is not None
    if alpha < 1.0:  # 1/(1-a) - softplus(-v) = (u^(a-1) - 1)/(a - 1)
        return -np.log(np.expm1(u ** (alpha - 1.0) / (1.0 - alpha)))
    return (u ** (alpha - 1.0) - 1.0) / (alpha - 1.0)


def _f_and_fprime(div: str, alpha: float | None, lu: float) -> tuple[float, float]:
    """f(u) and f'(u) from the numpy reference table, as functions of log u."""
    u = math.exp(lu)
    return float(f_divergence_f(div, u, alpha)), float(f_divergence_fprime(div, u, alpha))


# Quantile estimates of expectations whose integrand grows exponentially in the tails converge
# slowly (error ~ N^-0.75 here), hence the looser tolerance for those cases. The UNEQUAL pair is
# used only where every per-sample term stays moderate in the tails of the sampling distribution.
_HEAVY = {("pearson", None), ("neyman", None), ("alpha", -1.5), ("alpha", 3.0), ("alpha", 2.0)}
FGAN_OPTIMUM_CASES = (
    [(d, None, SHIFTED) for d in FGAN_NAMES]
    + [("alpha", a, SHIFTED) for a in (-1.5, -0.5, 0.5, 2.0, 3.0)]
    + [(d, None, UNEQUAL) for d in ("kl", "jensen_shannon", "gan", "total_variation")]
)


@pytest.mark.parametrize("div, alpha, pair", FGAN_OPTIMUM_CASES)
def test_fgan_bound_is_tight_at_the_optimal_critic(div: str, alpha: float | None, pair: Pair) -> None:
    d_f = pair.quad(lambda x: math.exp(pair.logq(x)) * _f_and_fprime(div, alpha, pair.log_ratio(x))[0])
    # generator halves at the optimum, by Fenchel-Young f*(f'(u)) = u f'(u) - f(u)
    e_q_fstar = pair.quad(
        lambda x: math.exp(pair.logq(x))
        * (lambda lu: (lambda f, fp: math.exp(lu) * fp - f)(*_f_and_fprime(div, alpha, lu)))(pair.log_ratio(x))
    )
    e_q_t = pair.quad(lambda x: math.exp(pair.logq(x)) * _f_and_fprime(div, alpha, pair.log_ratio(x))[1])

    mm = _fgan_get(div, alpha)
    ns = _fgan_get(div, alpha, generator="nonsaturating")

    def at_opt(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
        return pair.expect(
            lambda xp, xq: value(
                fn(t64(_fgan_vstar(div, alpha, pair.log_ratio(xp))), t64(_fgan_vstar(div, alpha, pair.log_ratio(xq))))
            )
        )

    tol = dict(rel=3e-4, abs=1e-5) if (div, alpha) in _HEAVY else dict(rel=3e-5, abs=1e-5)
    assert -at_opt(mm.discriminator) == pytest.approx(d_f, **tol)
    assert at_opt(lambda r, f: mm.generator(f)) == pytest.approx(-e_q_fstar, **tol)
    assert at_opt(lambda r, f: ns.generator(f)) == pytest.approx(-e_q_t, **tol)
    # a perturbed critic gives a strictly smaller lower bound
    if div != "total_variation":
        worse = -at_opt(lambda r, f: mm.discriminator(r + 0.1 * torch.tanh(r) + 0.05, f + 0.1 * torch.tanh(f) + 0.05))
        assert worse < d_f - 1e-5


def test_fgan_known_divergence_values() -> None:
    # Independent closed forms for the shifted pair (unit variances, mean gap m):
    m = SHIFTED.mq - SHIFTED.mp

    def neg_d(name: str) -> float:
        loss = losses.get(name)
        div = name.removeprefix("fgan_")
        return -SHIFTED.expect(
            lambda xp, xq: value(
                loss.discriminator(
                    t64(_fgan_vstar(div, None, SHIFTED.log_ratio(xp))),
                    t64(_fgan_vstar(div, None, SHIFTED.log_ratio(xq))),
                )
            )
        )

    assert neg_d("fgan_kl") == pytest.approx(m**2 / 2, rel=1e-6)
    assert neg_d("fgan_reverse_kl") == pytest.approx(m**2 / 2, rel=1e-6)
    assert neg_d("fgan_jeffrey") == pytest.approx(m**2, rel=1e-6)
    assert neg_d("fgan_pearson") == pytest.approx(math.expm1(m**2), rel=1e-4)
    assert neg_d("fgan_neyman") == pytest.approx(math.expm1(m**2), rel=1e-4)
    assert neg_d("fgan_squared_hellinger") == pytest.approx(2.0 - 2.0 * math.exp(-(m**2) / 8), rel=1e-6)
    assert neg_d("fgan_total_variation") == pytest.approx(2 * norm.cdf(m / 2) - 1, abs=2e-5)  # sign(): O(1/N)
    assert neg_d("fgan_jensen_shannon") == pytest.approx(2.0 * jsd(SHIFTED), rel=1e-6)
    assert neg_d("fgan_gan") == pytest.approx(2.0 * jsd(SHIFTED) - LOG4, rel=1e-6)


def test_kl_hinge_weights_and_gradient_options() -> None:
    from gan_lib.losses.ipm import kl_batch_weights

    v = t64(V_FAKE).reshape(-1, 1)
    w = kl_batch_weights(v)
    assert w.shape == v.shape and value(w.mean()) == pytest.approx(1.0, rel=1e-14)
    assert np.allclose(w.numpy().ravel(), np.exp(V_FAKE) / np.mean(np.exp(V_FAKE)), rtol=1e-12)
    # equal critic values: weights 1, the loss is the plain hinge loss
    flat = torch.full((6,), 0.3, dtype=torch.float64)
    assert value(losses.get("kl_hinge").discriminator(flat, flat)) == pytest.approx(
        value(losses.get("hinge").discriminator(flat, flat))
    )
    # with detached weights the generator gradient is -r_i / n; otherwise it also moves the weights
    f = t64(V_FAKE).requires_grad_(True)
    (g_det,) = torch.autograd.grad(losses.get("kl_hinge", detach_weights=True).generator(f), f)
    r = np.exp(V_FAKE) / np.mean(np.exp(V_FAKE))
    assert np.allclose(g_det.numpy(), -r / V_FAKE.size, rtol=1e-12)
    (g_full,) = torch.autograd.grad(losses.get("kl_hinge").generator(f), f)
    assert not torch.allclose(g_full, g_det)


# ------------------------------------------------------------------------------------------------
# Known optima: LSGAN, WGAN, hinge, RGAN
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b", [(0.0, 1.0), (-1.0, 1.0), (0.5, -1.5)])
def test_lsgan_optimal_discriminator(a: float, b: float) -> None:
    pair = UNEQUAL
    loss = losses.get("lsgan", a=a, b=b)

    def dstar(x: np.ndarray) -> np.ndarray:  # (b p + a q)/(p + q) = a + (b - a) sigmoid(log p/q)
        return a + (b - a) * sigmoid(pair.log_ratio(x))

    best = pair.expect(lambda xp, xq: value(loss.discriminator(t64(dstar(xp)), t64(dstar(xq)))))
    # pointwise minimum of (p (v-b)^2 + q (v-a)^2)/2 is (b-a)^2 p q / (2 (p+q))
    expected = pair.quad(
        lambda x: 0.5 * (b - a) ** 2 * math.exp(pair.logp(x) + pair.logq(x) - np.logaddexp(pair.logp(x), pair.logq(x)))
    )
    assert best == pytest.approx(expected, rel=1e-7)
    worse = pair.expect(lambda xp, xq: value(loss.discriminator(t64(dstar(xp) + 0.05), t64(dstar(xq) + 0.05))))
    assert worse > best + 1e-4


@pytest.mark.parametrize("pair", [UNEQUAL, SHIFTED])
def test_lsgan_pearson_identity(pair: Pair) -> None:
    # Mao et al. Thm 1 / Hsieh's notes: with b - c = 1, b - a = 2 and D* = (bp + aq)/(p+q),
    # 1/2 E_P[(D* - c)^2] + 1/2 E_Q[(D* - c)^2] = 1/2 chi2_Pearson(P + Q || 2Q) = 1/2 int (q - p)^2/(p + q)
    # (Mao et al.'s argument order; chi2_Pearson(2Q || P + Q) in this library's convention).
    loss = losses.get("lsgan", preset="pearson")
    a, b = loss.options["a"], loss.options["b"]

    def dstar(x: np.ndarray) -> np.ndarray:
        lp, lq = pair.logp(x), pair.logq(x)
        return (b * np.exp(lp) + a * np.exp(lq)) / (np.exp(lp) + np.exp(lq))

    lhs = pair.expect(lambda xp, xq: value(loss.generator(t64(dstar(xp)))) + value(loss.generator(t64(dstar(xq)))))
    def chi2_integrand(x: float) -> float:
        p, q = math.exp(pair.logp(x)), math.exp(pair.logq(x))
        return (2 * q - (p + q)) ** 2 / (p + q)

    chi2 = pair.quad(chi2_integrand)
    assert lhs == pytest.approx(0.5 * chi2, rel=1e-6)


def test_wgan_critic_on_shifted_gaussians() -> None:
    # Equal variances: the optimal 1-Lipschitz critic is v(x) = -x (P left of Q) and W1 = |mean gap|.
    pair = Pair(0.0, 1.0, 1.5, 1.0)
    loss = losses.get("wgan")
    neg_d = -pair.expect(lambda xp, xq: value(loss.discriminator(t64(-xp), t64(-xq))))
    assert neg_d == pytest.approx(1.5, rel=1e-8)
    assert value(loss.generator(t64(-pair.samples("q", 1000)))) == pytest.approx(1.5, rel=1e-8)


def test_wgan_optimal_critic_unequal_variances() -> None:
    # 1-D: E_P v - E_Q v = int v'(x) (F_Q - F_P)(x) dx, so W1 = int |F_P - F_Q| and the optimal
    # 1-Lipschitz critic has slope sign(F_Q - F_P), which changes once, at the crossing x0.
    pair = Pair(0.0, 1.0, 0.8, 2.0)
    x0 = optimize.brentq(lambda x: norm.cdf(x, pair.mp, pair.sp) - norm.cdf(x, pair.mq, pair.sq), -10, 10)
    s_left = math.copysign(1.0, norm.cdf(x0 - 1, pair.mq, pair.sq) - norm.cdf(x0 - 1, pair.mp, pair.sp))
    s_right = math.copysign(1.0, norm.cdf(x0 + 1, pair.mq, pair.sq) - norm.cdf(x0 + 1, pair.mp, pair.sp))

    def critic(x: np.ndarray) -> np.ndarray:
        return np.where(x < x0, s_left * (x - x0), s_right * (x - x0))

    w1 = pair.quad(lambda x: abs(norm.cdf(x, pair.mp, pair.sp) - norm.cdf(x, pair.mq, pair.sq)))
    loss = losses.get("wgan")
    neg_d = -pair.expect(lambda xp, xq: value(loss.discriminator(t64(critic(xp)), t64(critic(xq)))))
    assert neg_d == pytest.approx(w1, rel=1e-6)
    for other in (lambda x: x, lambda x: -x, np.tanh, lambda x: np.abs(x)):  # other 1-Lipschitz critics
        assert -pair.expect(lambda xp, xq: value(loss.discriminator(t64(other(xp)), t64(other(xq))))) < w1 - 1e-3


@pytest.mark.parametrize("pair", [UNEQUAL, SHIFTED])
def test_hinge_optimal_critic_gives_total_variation(pair: Pair) -> None:
    # Pointwise min of p relu(1 - v) + q relu(1 + v) is 2 min(p, q), at v* = sign(p - q).
    loss = losses.get("hinge")
    best = pair.expect(
        lambda xp, xq: value(loss.discriminator(t64(np.sign(pair.log_ratio(xp))), t64(np.sign(pair.log_ratio(xq)))))
    )
    tv = 0.5 * pair.quad(lambda x: abs(math.exp(pair.logp(x)) - math.exp(pair.logq(x))))
    assert best == pytest.approx(2.0 - 2.0 * tv, abs=2e-5)
    for scale in (0.8, 1.5):
        worse = pair.expect(
            lambda xp, xq: value(
                loss.discriminator(t64(scale * np.sign(pair.log_ratio(xp))), t64(scale * np.sign(pair.log_ratio(xq))))
            )
        )
        assert worse > best + 1e-3


def test_rgan_two_point_optimum() -> None:
    # P = (3/4, 1/4), Q = (1/2, 1/2) on two points; pairs (x_r, x_f) in proportion p_i q_j.
    # Only d = C(1) - C(2) matters; with A = p1 q2, B = p2 q1 the loss is
    # (p1 q1 + p2 q2) log 2 + A softplus(-d) + B softplus(d), minimised at d* = log(A/B).
    p, q = (0.75, 0.25), (0.5, 0.5)
    counts = {(i, j): int(round(8 * p[i] * q[j])) for i in range(2) for j in range(2)}
    real_idx = [i for (i, j), c in counts.items() for _ in range(c)]
    fake_idx = [j for (i, j), c in counts.items() for _ in range(c)]
    A, B = p[0] * q[1], p[1] * q[0]
    d_star = math.log(A / B)
    expected = (p[0] * q[0] + p[1] * q[1]) * math.log(2) - A * math.log(A / (A + B)) - B * math.log(B / (A + B))

    critic = torch.tensor([0.3 + d_star, 0.3], dtype=torch.float64, requires_grad=True)
    loss = losses.get("rgan")
    d_loss = loss.discriminator(critic[real_idx], critic[fake_idx])
    assert value(d_loss) == pytest.approx(expected, rel=1e-12)
    (grad,) = torch.autograd.grad(d_loss, critic)
    assert torch.allclose(grad, torch.zeros(2, dtype=torch.float64), atol=1e-12)
    # the generator half is the same game with real and fake swapped
    g_loss = loss.generator(critic[fake_idx], critic[real_idx])
    assert value(g_loss) == pytest.approx(
        (p[0] * q[0] + p[1] * q[1]) * math.log(2)
        + A * math.log1p(math.exp(d_star))
        + B * math.log1p(math.exp(-d_star)),
        rel=1e-12,
    )


# ------------------------------------------------------------------------------------------------
# Numerical robustness: huge logits, float32 and bfloat16
# ------------------------------------------------------------------------------------------------

ROBUST_CONFIGS: list[tuple[str, dict]] = [(n, {}) for n in losses.names()] + [
    (f"fgan_{d}", {"generator": "nonsaturating"}) for d in FGAN_NAMES
] + [
    ("fgan_alpha", {"alpha": a}) for a in (-1.5, -0.5, 0.8, 1.5, 2.0, 3.0)
] + [
    ("fgan_alpha", {"alpha": 0.3, "generator": "nonsaturating"}),
    ("poole_alpha", {"alpha": -1.0}),
    ("poole_alpha", {"alpha": 2.0}),
    ("poole_alpha", {"alpha": 0.05}),
    ("lsgan", {"preset": "pearson"}),
]
EXTREME = [-1e4, -1e3, -80.0, -20.0, -1.0, 0.0, 1.0, 20.0, 80.0, 1e3, 1e4]


def _logits_for(loss: losses.GANLoss, dtype: torch.dtype) -> list[float]:
    """The extreme logits inside the loss's safe range, plus its (clipped) edges."""
    if loss.safe_logit_range is None:
        return EXTREME
    lo, hi = loss.safe_logit_range
    lo, hi = max(lo, -1e4), min(hi, 1e4)
    edges = []
    for edge, inward in ((lo, 1.0), (hi, -1.0)):
        e = float(torch.tensor(edge, dtype=dtype))
        edges.append(e if lo <= e <= hi else edge + inward)  # rounded edge just outside: step inside
    return [v for v in EXTREME if lo <= v <= hi] + edges


def _both_halves(loss: losses.GANLoss, real: torch.Tensor, fake: torch.Tensor) -> list[torch.Tensor]:
    return [loss.discriminator(real, fake), loss.generator(fake, real)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name, options", ROBUST_CONFIGS, ids=_case_id)
def test_finite_values_and_gradients_for_huge_logits(name: str, options: dict, dtype: torch.dtype) -> None:
    loss = losses.get(name, **options)
    vals = _logits_for(loss, dtype)
    real = torch.tensor(vals, dtype=dtype, requires_grad=True)
    fake = torch.tensor(vals[::-1], dtype=dtype, requires_grad=True)
    for out in _both_halves(loss, real, fake):
        assert out.dtype == dtype and out.ndim == 0
        assert torch.isfinite(out), (name, options, out)
        grads = torch.autograd.grad(out, [real, fake], allow_unused=True)
        for g in grads:
            if g is not None:
                assert torch.isfinite(g).all(), (name, options, g)
    # float32 is not merely finite but accurate (compared with float64) at the extreme logits
    if dtype is torch.float32:
        r64, f64 = t64(vals), t64(vals[::-1])
        for out32, out64 in zip(
            _both_halves(loss, real.detach(), fake.detach()), _both_halves(loss, r64, f64)
        ):
            assert float(out32) == pytest.approx(float(out64), rel=2e-5, abs=1e-4)


def test_large_logit_values_are_exact_not_just_finite() -> None:
    big = torch.tensor([1e4], dtype=torch.float32)
    # -log(1 - sigmoid(1e4)) = softplus(1e4) = 1e4; naive log(1 - sigmoid) would give inf
    assert float(losses.get("minimax").discriminator(big, big)) == pytest.approx(1e4, rel=1e-6)
    assert float(losses.get("non_saturating").generator(-big)) == pytest.approx(1e4, rel=1e-6)
    assert float(losses.get("rgan").discriminator(-big, big)) == pytest.approx(2e4, rel=1e-6)


@pytest.mark.parametrize(
    "name, options",
    [
        ("poole_kl", {}),
        ("fgan_kl", {}),
        ("fgan_squared_hellinger", {}),
        ("poole_alpha", {"alpha": 2.0}),
        ("fgan_alpha", {"alpha": 0.5}),
    ],
)
def test_exp_growing_losses_overflow_outside_range_unless_clamped(name: str, options: dict) -> None:
    loss = losses.get(name, **options)
    assert loss.safe_logit_range is not None
    huge = torch.tensor([1e4, -1e4], dtype=torch.float32, requires_grad=True)
    raw = _both_halves(loss, huge, huge)
    assert not all(torch.isfinite(x) for x in raw)  # honest overflow by default
    clamped = losses.get(name, clamp=True, **options)
    for out in _both_halves(clamped, huge, huge):
        assert torch.isfinite(out)
        (g,) = torch.autograd.grad(out, huge)
        assert torch.isfinite(g).all()


def _mp_poole_kl(v):
    import mpmath as mp

    return v * mp.exp(v)  # V e^V


def _mp_poole_alpha(a: float):
    import mpmath as mp

    return lambda v: (mp.exp(a * v) - 1 - a * (mp.exp(v) - 1)) / (a * (a - 1))  # f_alpha(e^V)


def _mp_fgan_alpha_generator(a: float):
    import mpmath as mp

    # minimax f-GAN generator per sample: -f*(g(v)) = -(((1-a) softplus(-v))^(a/(a-1)) - 1)/a, alpha < 1
    return lambda v: -(((1 - a) * mp.log1p(mp.exp(-v))) ** (mp.mpf(a) / (a - 1)) - 1) / a


# (loss, options, per-sample generator loss in mpmath, the edge value the docstrings quote, tight)
SAFE_EDGE_CASES = [
    ("poole_kl", {}, _mp_poole_kl, 65.7, True),
    ("poole_alpha", {"alpha": 0.5}, _mp_poole_alpha(0.5), 68.6, True),
    ("poole_alpha", {"alpha": 2.0}, _mp_poole_alpha(2.0), 35.0, True),
    ("poole_alpha", {"alpha": -1.0}, _mp_poole_alpha(-1.0), None, True),
    ("poole_alpha", {"alpha": 3.0}, _mp_poole_alpha(3.0), None, True),
    ("poole_alpha", {"alpha": 0.05}, _mp_poole_alpha(0.05), None, False),  # kappa = 1/|a(a-1)| is generous
    ("fgan_alpha", {"alpha": 0.2}, _mp_fgan_alpha_generator(0.2), None, True),
    ("fgan_alpha", {"alpha": 0.5}, _mp_fgan_alpha_generator(0.5), 68.6, True),
    ("fgan_alpha", {"alpha": 0.8}, _mp_fgan_alpha_generator(0.8), None, True),
]


@pytest.mark.parametrize("name, options, per_sample, quoted, tight", SAFE_EDGE_CASES, ids=_case_id)
def test_stated_safe_range_keeps_value_and_gradient_within_budget(
    name: str, options: dict, per_sample: Callable, quoted: float | None, tight: bool
) -> None:
    """What the docstrings promise: inside the safe range the per-sample value and its derivative stay
    below e^70 (mpmath, 50 digits), so float32 is finite and accurate there; the range is not needlessly
    narrow (one unit further out the budget is exceeded); the quoted edges are the range's."""
    import mpmath as mp

    mp.mp.dps = 50
    loss = losses.get(name, **options)
    lo, hi = loss.safe_logit_range
    if quoted is not None:
        assert hi == pytest.approx(quoted, abs=0.05)
    for edge, outward in ((lo, -1.0), (hi, 1.0)):
        if not math.isfinite(edge):
            continue
        v32 = np.float32(edge)
        if (v32 - edge) * outward > 0:  # rounded outside the range: take the float32 neighbour inside
            v32 = np.nextafter(v32, np.float32(-outward * np.inf))
        e = mp.mpf(float(v32))
        ref, dref = per_sample(e), mp.diff(per_sample, e)
        # the f-GAN alpha edges land on the budget itself (log 70.000003): allow 1e-5 relative
        assert max(abs(ref), abs(dref)) <= mp.exp(70) * (1 + 1e-5), (edge, float(mp.log(abs(ref))))
        v = torch.tensor([float(v32)], dtype=torch.float32, requires_grad=True)
        out = loss.generator(v)
        (g,) = torch.autograd.grad(out, v)
        assert torch.isfinite(out) and torch.isfinite(g).all()
        assert value(out) == pytest.approx(float(ref), rel=1e-5)
        assert float(g[0]) == pytest.approx(float(dref), rel=1e-5)
        if tight:
            far = e + outward * 1.0
            assert max(abs(per_sample(far)), abs(mp.diff(per_sample, far))) > mp.exp(70)


def test_quoted_safe_ranges_match_the_losses() -> None:
    from gan_lib.losses import poole
    from gan_lib.divergences import LOG_SAFE_BUDGET

    assert poole.EXP_BUDGET == LOG_SAFE_BUDGET
    # the ranges quoted in the f-GAN module docstring are the divergences' ones
    quoted = {
        "kl": (-math.inf, 71.0),
        "reverse_kl": (-70.0, math.inf),
        "neyman": (-70.0, math.inf),
        "squared_hellinger": (-70.0, 70.0),
        "jeffrey": (-math.inf, 70.0),
    }
    for div, rng in quoted.items():
        assert losses.get(f"fgan_{div}").safe_logit_range == pytest.approx(rng)
    for div in ("pearson", "jensen_shannon", "gan", "total_variation"):
        assert losses.get(f"fgan_{div}").safe_logit_range is None
    assert losses.get("fgan_alpha", alpha=-0.5).safe_logit_range is None
    # 0 < alpha < 1 ("roughly 70 (1 - alpha) / alpha"): the exact edges are checked against the e^70
    # budget in test_stated_safe_range_keeps_value_and_gradient_within_budget


# ------------------------------------------------------------------------------------------------
# Regularisers
# ------------------------------------------------------------------------------------------------


def _linear_critic(w: torch.Tensor, b: float = 0.3) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: x.reshape(x.shape[0], -1) @ w + b


@pytest.mark.parametrize(
    "norm_w, target, weight", [(2.5, 1.0, 10.0), (1.0, 1.0, 10.0), (0.2, 1.0, 3.0), (3.0, 2.0, 1.0)]
)
def test_gradient_penalty_linear_critic(norm_w: float, target: float, weight: float) -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(12, dtype=torch.float64, generator=gen)
    w = (norm_w * w / w.norm()).requires_grad_(True)
    real = torch.randn(16, 3, 2, 2, dtype=torch.float64, generator=gen)
    fake = torch.randn(16, 3, 2, 2, dtype=torch.float64, generator=gen)
    gp = regularisers.gradient_penalty(_linear_critic(w), real, fake, weight=weight, target=target, generator=gen)
    assert value(gp) == pytest.approx(weight * (norm_w - target) ** 2, abs=1e-12)
    # differentiable w.r.t. the critic's parameters: d/dw weight (|w| - K)^2 = 2 weight (|w| - K) w/|w|
    (gw,) = torch.autograd.grad(gp, w)
    expected = 2 * weight * (norm_w - target) * w.detach() / norm_w
    assert torch.allclose(gw, expected, atol=1e-10)


def test_gradient_penalty_quadratic_critic_and_checks() -> None:
    # critic 1/2 |x|^2 has gradient x; with real == fake every interpolate is x itself.
    x = torch.tensor([[3.0, 4.0], [0.0, 0.5], [0.0, 0.0]], dtype=torch.float64)
    critic = lambda z: 0.5 * z.square().sum(dim=1)  # noqa: E731
    gp = regularisers.gradient_penalty(critic, x, x.clone(), weight=2.0)
    assert value(gp) == pytest.approx(2.0 * ((5 - 1) ** 2 + (0.5 - 1) ** 2 + 1.0) / 3)
    # a critic that ignores its input: zero gradient, penalty weight * target^2, no NaN
    const = nn.Linear(2, 1)
    gp0 = regularisers.gradient_penalty(lambda z: const(torch.zeros_like(z)).squeeze(1), x.float(), x.float())
    assert value(gp0) == pytest.approx(10.0)
    with pytest.raises(ValueError, match=r"real \(3, 2\) and fake \(2, 2\)"):
        regularisers.gradient_penalty(critic, x, x[:2])


def test_gradient_penalty_uses_interpolates() -> None:
    # critic |x|^2 / 2 in 1-D: gradient at eps*r + (1-eps)*f; with r = 1, f = -1 the norm is |2 eps - 1|,
    # so the mean over many eps ~ U[0,1] of (|2 eps - 1| - 1)^2 is 1/3.
    n = 200_000
    real = torch.ones(n, 1, dtype=torch.float64)
    gp = regularisers.gradient_penalty(
        lambda z: 0.5 * z.square().sum(dim=1), real, -real, weight=1.0, generator=torch.Generator().manual_seed(1)
    )
    assert value(gp) == pytest.approx(1.0 / 3.0, abs=3e-3)


def test_r1_penalty_quadratic_discriminator() -> None:
    gen = torch.Generator().manual_seed(2)
    m = torch.randn(4, 4, dtype=torch.float64, generator=gen)
    a = m + m.T
    x = torch.randn(10, 4, dtype=torch.float64, generator=gen)
    disc = lambda z: 0.5 * torch.einsum("bi,ij,bj->b", z, a, z)  # noqa: E731  gradient: A x
    r1 = regularisers.r1_penalty(disc, x, gamma=3.0)
    an, xn = a.numpy(), x.numpy()
    expected = 1.5 * np.mean(np.sum((xn @ an.T) ** 2, axis=1))
    assert value(r1) == pytest.approx(expected, rel=1e-12)
    # differentiable through the discriminator's parameters
    lin = nn.Linear(4, 1).double()
    r1_lin = regularisers.r1_penalty(lambda z: lin(z).squeeze(1), x, gamma=2.0)
    assert value(r1_lin) == pytest.approx(float(lin.weight.detach().square().sum()), rel=1e-12)
    r1_lin.backward()
    assert torch.allclose(lin.weight.grad, 2.0 * lin.weight.detach())


def test_clip_weights_bounds_every_parameter() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Conv1d(1, 2, 3), nn.Linear(3, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10.0)
    small_before = [p.detach().clone() for p in net.parameters()]
    out = regularisers.clip_weights_(net, clip=0.05)
    assert out is net
    for p, before in zip(net.parameters(), small_before):
        assert p.abs().max() <= 0.05
        inside = before.abs() <= 0.05
        assert torch.equal(p.detach()[inside], before[inside])
    with pytest.raises(ValueError):
        regularisers.clip_weights_(net, clip=0.0)


def test_spectral_norm_every_linear_and_conv_layer() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 40), nn.LeakyReLU(), nn.Linear(40, 30), nn.Unflatten(1, (1, 30)), nn.Conv1d(1, 4, 5)
    )
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(5.0)
    out = regularisers.apply_spectral_norm(net)
    assert out is net
    assert regularisers.apply_spectral_norm(net) is net  # idempotent
    x = torch.randn(8, 6)
    for _ in range(30):  # power iterations run in training-mode forwards
        net(x)
    net.eval()
    for layer in (net[0], net[2], net[4]):
        assert torch.nn.utils.parametrize.is_parametrized(layer, "weight")
        assert len(layer.parametrizations.weight) == 1
        w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
        assert float(torch.linalg.matrix_norm(w, 2)) == pytest.approx(1.0, abs=1e-3)


def test_gaussian_kernel_with_a_bandwidth_whose_square_underflows():
    from gan_lib.losses.mmd import gaussian_kernel

    # exact distances (0 and 1): the kernel is 1 at distance 0 and 0 elsewhere, not 0/0
    for dtype in (torch.float64, torch.float32, torch.float16):
        a = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=dtype)
        for h in (1e-200, 1e-25):  # 1e-25: 2 h^2 underflows in float32, not in float64
            assert torch.equal(gaussian_kernel(a, a, h), torch.eye(2, dtype=dtype))
