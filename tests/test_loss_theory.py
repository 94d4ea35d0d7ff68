"""Tests of ``gan_lib.losses.theory``, the table behind the loss reference page.

* Coverage and bookkeeping: one entry per registered loss, describing its default options; every
  implementing function, chapter and citation the page links exists; every TeX string balances.
* Every numeric claim of every entry at a Gaussian pair other than the page's (:func:`verify`
  computes each claim two ways: the registered loss's own per-sample terms by quadrature against
  the stated expression).
* The stated expressions themselves against references that do not use ``gan_lib`` at all:
  ``scipy.integrate.quad`` / ``dblquad`` on numpy densities and closed forms.
* The checks have teeth: a wrong optimal critic, a wrong value or a wrong followed divergence is
  caught.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.stats import norm

from gan_lib import losses
from gan_lib.losses import theory as T
from reference import bib_keys, normal_logpdf, normal_pdf, scipy_integral, tex_balanced

ROOT = Path(__file__).resolve().parents[1]

# Not the page's default pair; inside the region it allows (|mean gap| <= p_std, std ratio in [0.8, 1.25]).
PM, PS, QM, QS = 0.3, 1.1, -0.4, 0.95


def normal(m: float, s: float) -> torch.distributions.Normal:
    return torch.distributions.Normal(torch.tensor(m, dtype=torch.float64), torch.tensor(s, dtype=torch.float64))


P, Q = normal(PM, PS), normal(QM, QS)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ------------------------------------------------------------------------------------------------
# Coverage and bookkeeping
# ------------------------------------------------------------------------------------------------


def test_one_entry_per_registered_loss_in_registry_order() -> None:
    assert list(T.THEORY) == losses.names()
    with pytest.raises(KeyError, match="no theory entry for loss 'nope'"):
        T.theory("nope")


@pytest.mark.parametrize("name", losses.names())
def test_entry_describes_the_default_options(name: str) -> None:
    assert dict(T.THEORY[name].options) == losses.get(name).options


@pytest.mark.parametrize("name", losses.names())
def test_functions_exist_and_are_the_registered_ones(name: str) -> None:
    entry, loss = T.THEORY[name], losses.get(name)
    assert len(entry.functions) == 2
    for dotted, used in zip(entry.functions, (loss.discriminator_fn, loss.generator_fn)):
        path, short = T.module_path(dotted)
        assert (ROOT / path).is_file(), path
        module_name = path.removesuffix(".py").replace("/", ".")
        obj = __import__(module_name, fromlist=["_"])
        for attr in short.split("."):
            obj = getattr(obj, attr)
        assert callable(obj)
        if "." not in short:  # a module-level function: listed in the module's __all__
            assert short in __import__(module_name, fromlist=["_"]).__all__
        if "<locals>" not in getattr(used, "__qualname__", "<locals>"):  # bound directly, not wrapped
            assert used is obj, (name, dotted)


def test_chapters_and_citations_exist() -> None:
    keys = bib_keys(ROOT / "book" / "references.bib")
    for entry in T.THEORY.values():
        for chapter in entry.chapters:
            assert (ROOT / f"{chapter}.md").is_file(), chapter
        texts = [entry.optimum.note, entry.discriminator_value.note, entry.generator_value.note,
                 entry.follows.note, entry.mode_note] + [c.text for c in entry.claims]
        for key in re.findall(r"\{cite:[tp]\}`([^`]+)`", " ".join(texts)):
            for k in key.split(","):
                assert k.strip() in keys, (entry.name, k)


def test_tex_strings_balance() -> None:
    for entry in T.THEORY.values():
        strings = [entry.optimum.tex, entry.discriminator_value.tex, entry.generator_value.tex, entry.follows.tex,
                   *entry.where]
        if entry.follows_f is not None:
            strings.append(entry.follows_f.tex)
        if entry.limits is not None:
            strings += [entry.limits.at_zero_tex, entry.limits.at_infinity_tex]
        for s in strings:
            if s:
                assert tex_balanced(s), (entry.name, s)


def test_a_dash_always_has_a_reason() -> None:
    for entry in T.THEORY.values():
        for q in (entry.optimum, entry.discriminator_value, entry.generator_value, entry.follows):
            assert q.known or q.note, entry.name
            assert (q.value is None) or q.known, entry.name
        assert entry.limits is not None or entry.mode_note, entry.name
        assert (entry.critic is None) == (not entry.optimum.known), entry.name


def test_mode_behaviour_labels() -> None:
    inf = math.inf
    assert T.mode_behaviour(inf, 1.0) == "mode seeking"
    assert T.mode_behaviour(1.0, inf) == "mode covering"
    assert T.mode_behaviour(0.5, 0.5) == "neither: both costs finite"
    assert T.mode_behaviour(inf, inf) == "mode seeking and mode covering"
    assert T.mode_behaviour(0.0, -inf) == "unbounded below: no minimum"
    expected = {"huszar_kl": "mode seeking", "poole_rkl": "mode seeking", "non_saturating": "mode seeking",
                "fgan_kl": "mode covering", "fgan_pearson": "mode covering", "fgan_neyman": "mode seeking",
                "fgan_jeffrey": "mode seeking and mode covering", "minimax": "neither: both costs finite",
                "poole_kl": "unbounded below: no minimum", "poole_alpha": "unbounded below: no minimum"}
    for name, label in expected.items():
        assert T.THEORY[name].behaviour == label, name


@pytest.mark.parametrize("name", [n for n in losses.names() if n.startswith("fgan_") and n != "fgan_total_variation"])
def test_fgan_optimal_logit_matches_the_divergence_objects(name: str) -> None:
    # where both are exact (moderate ratios), the hand-written v*(r) is activation_inverse(t_star(e^r))
    # and its activation is f'(u)
    from gan_lib.divergences import get_divergence

    loss = losses.get(name)
    div = get_divergence(name.removeprefix("fgan_"), **({"alpha": loss.options["alpha"]} if "alpha" in loss.options else {}))
    crit = T.THEORY[name].critic(P, Q)
    x = torch.linspace(-2.5, 2.5, 41, dtype=torch.float64)
    r = P.log_prob(x) - Q.log_prob(x)
    v = crit(x)
    torch.testing.assert_close(v, div.activation_inverse(div.t_star(torch.exp(r))), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(div.activation(v), div.t_star(torch.exp(r)), rtol=1e-12, atol=1e-12)


def test_fgan_total_variation_optimum_is_at_infinity() -> None:
    x = torch.tensor([-3.0, 0.0, 3.0], dtype=torch.float64)
    v = T.THEORY["fgan_total_variation"].critic(P, Q)(x)
    r = P.log_prob(x) - Q.log_prob(x)
    assert torch.equal(v, torch.where(r > 0, math.inf, -math.inf).double())


# ------------------------------------------------------------------------------------------------
# Every claim, at a second pair
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", losses.names())
def test_every_claim_holds_at_another_pair(name: str) -> None:
    results = T.verify(name, P, Q, scale=True)
    failed = [r for r in results if not r.ok]
    assert not failed, failed
    entry = T.THEORY[name]
    if entry.critic is not None:
        kinds = {r.kind for r in results}
        assert "rise" in kinds
        if entry.follows.value is not None and name != "rgan":
            assert sum(r.kind == "gradient" for r in results) >= 2  # location and log-scale


# ------------------------------------------------------------------------------------------------
# The stated expressions against references without gan_lib
# ------------------------------------------------------------------------------------------------


def p_np(x: float) -> float:
    return float(normal_pdf(x, PM, PS))


def q_np(x: float) -> float:
    return float(normal_pdf(x, QM, QS))


def quad(fn, lo: float = -25.0, hi: float = 25.0) -> float:
    return scipy_integral(fn, lo, hi, points=[PM, QM])


def jsd_np() -> float:
    def integrand(x: float) -> float:
        p, q = p_np(x), q_np(x)
        m = 0.5 * (p + q)
        return 0.5 * (p * math.log(p / m) if p > 0 else 0.0) + 0.5 * (q * math.log(q / m) if q > 0 else 0.0)

    return quad(integrand)


def kl_np(a, b) -> float:
    return quad(lambda x: a(x) * math.log(a(x) / b(x)) if a(x) > 0 else 0.0)


def test_standard_gan_values_against_scipy() -> None:
    js = jsd_np()
    m = lambda x: 0.5 * (p_np(x) + q_np(x))  # noqa: E731
    assert T.THEORY["minimax"].discriminator_value.value(P, Q) == pytest.approx(math.log(4) - 2 * js, abs=1e-10)
    assert T.THEORY["minimax"].generator_value.value(P, Q) == pytest.approx(kl_np(q_np, m) - math.log(2), abs=1e-10)
    ns = quad(lambda x: q_np(x) * math.log1p(q_np(x) / p_np(x)))  # E_Q[log(1 + q/p)]
    assert T.THEORY["non_saturating"].generator_value.value(P, Q) == pytest.approx(ns, abs=1e-10)
    follows = kl_np(q_np, p_np) - 2 * js + math.log(4)
    assert T.THEORY["non_saturating"].follows.value(P, Q) == pytest.approx(follows, abs=1e-10)


def test_lsgan_values_against_scipy() -> None:
    e = T.THEORY["lsgan"]
    d = quad(lambda x: 0.5 * p_np(x) * q_np(x) / (p_np(x) + q_np(x)))
    g = quad(lambda x: 0.5 * q_np(x) ** 3 / (p_np(x) + q_np(x)) ** 2)
    f = quad(lambda x: p_np(x) * math.log(p_np(x) / (p_np(x) + q_np(x))) - 0.5 * q_np(x) ** 2 / (p_np(x) + q_np(x)))
    assert e.discriminator_value.value(P, Q) == pytest.approx(d, abs=1e-10)
    assert e.generator_value.value(P, Q) == pytest.approx(g, abs=1e-10)
    assert e.follows.value(P, Q) == pytest.approx(f, abs=1e-10)


def test_ipm_values_against_closed_forms_and_scipy() -> None:
    # W1 in 1-D is int |F_P - F_Q|; for equal variances it is the mean gap
    w1 = quad(lambda x: abs(norm.cdf(x, PM, PS) - norm.cdf(x, QM, QS)))
    assert T.THEORY["wgan"].follows.value(P, Q) == pytest.approx(w1, abs=1e-10)
    assert T.THEORY["wgan"].follows.value(normal(0.0, 1.0), normal(0.7, 1.0)) == pytest.approx(0.7, abs=1e-12)
    # TV for equal variances: 2 Phi(gap / 2) - 1
    assert T.THEORY["hinge"].follows.value(normal(0.0, 1.0), normal(0.7, 1.0)) == pytest.approx(
        2 * (2 * norm.cdf(0.35) - 1), abs=1e-12
    )
    tv = 0.5 * quad(lambda x: abs(p_np(x) - q_np(x)))
    assert T.THEORY["hinge"].discriminator_value.value(P, Q) == pytest.approx(2 - 2 * tv, abs=1e-10)
    g = quad(lambda x: -q_np(x) * np.sign(p_np(x) - q_np(x)))
    assert T.THEORY["hinge"].generator_value.value(P, Q) == pytest.approx(g, abs=1e-9)


def test_wgan_critic_is_1_lipschitz_with_the_cdf_slope() -> None:
    v = T.THEORY["wgan"].critic(P, Q)
    x = torch.linspace(-6, 6, 2401, dtype=torch.float64)
    slope = torch.diff(v(x)) / torch.diff(x)
    assert torch.all(slope.abs() <= 1 + 1e-9)
    mid = 0.5 * (x[1:] + x[:-1])
    want = np.sign(norm.cdf(mid.numpy(), QM, QS) - norm.cdf(mid.numpy(), PM, PS))
    agree = np.isclose(slope.numpy(), want, atol=1e-9)
    assert agree.mean() > 0.998  # all but the grid cell holding the kink


def test_rgan_values_against_scipy_dblquad() -> None:
    # D at v*: log 2 - JSD(P x Q, Q x P); G at v*: KL(P||Q) + KL(Q||P) - KL(P x Q || M2) + log 2
    def a(x: float, y: float) -> float:
        return math.exp(normal_logpdf(x, PM, PS) + normal_logpdf(y, QM, QS))

    def b(x: float, y: float) -> float:
        return math.exp(normal_logpdf(x, QM, QS) + normal_logpdf(y, PM, PS))

    def jsd_term(y: float, x: float) -> float:
        aa, bb = a(x, y), b(x, y)
        m = 0.5 * (aa + bb)
        return 0.5 * (aa * math.log(aa / m) if aa > 0 else 0.0) + 0.5 * (bb * math.log(bb / m) if bb > 0 else 0.0)

    def kl_term(y: float, x: float) -> float:
        aa, bb = a(x, y), b(x, y)
        return aa * math.log(2 * aa / (aa + bb)) if aa > 0 else 0.0

    lo, hi = -12.0, 12.0
    js, _ = integrate.dblquad(jsd_term, lo, hi, lo, hi, epsabs=1e-11, epsrel=1e-9)
    klm, _ = integrate.dblquad(kl_term, lo, hi, lo, hi, epsabs=1e-11, epsrel=1e-9)
    e = T.THEORY["rgan"]
    assert e.discriminator_value.value(P, Q) == pytest.approx(math.log(2) - js, abs=1e-8)
    assert e.generator_value.value(P, Q) == pytest.approx(
        kl_np(p_np, q_np) + kl_np(q_np, p_np) - klm + math.log(2), abs=1e-8
    )


def test_limits_of_known_f() -> None:
    from gan_lib.divergences import LogFunction

    kl = LogFunction("u log u", lambda l: l * torch.exp(l), lambda lp, lq: torch.exp(lp) * (lp - lq))
    (z1, z2), (i1, i2) = T.normalised_limits(kl)
    assert z2 == pytest.approx(1.0, abs=1e-12)  # u log u - u + 1 -> 1 at 0
    assert i2 - i1 == pytest.approx(30.0, abs=1e-6)  # (u log u - u + 1)/u ~ log u: grows by 30


# ------------------------------------------------------------------------------------------------
# The checks catch wrong claims
# ------------------------------------------------------------------------------------------------


def _verify_with(monkeypatch: pytest.MonkeyPatch, name: str, delta: float = 0.1, **changes) -> list[T.CheckResult]:
    wrong = dataclasses.replace(T.THEORY[name], **changes)
    monkeypatch.setattr(T, "theory", lambda n: wrong)
    return T.verify(name, P, Q, delta=delta, scale=False)


def test_a_wrong_optimal_critic_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # v* + 0.05: the value at "the optimum" no longer matches, and a perturbation smaller than the
    # error (delta = 0.01) lowers the loss
    right = T.THEORY["minimax"].critic
    results = _verify_with(monkeypatch, "minimax", 0.01, critic=lambda p, q: (lambda x: right(p, q)(x) + 0.05))
    bad = {r.claim.split(" (")[0] for r in results if not r.ok}
    assert "discriminator loss at v*" in bad and "v* minimises the discriminator loss" in bad


def test_a_wrong_value_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # minimax's generator at D* is KL(Q||M) - log 2, not 2 JSD - log 4 (that is what it follows)
    e = T.THEORY["minimax"]
    results = _verify_with(monkeypatch, "minimax", generator_value=dataclasses.replace(e.generator_value, value=e.follows.value))
    assert [r.claim for r in results if not r.ok] == ["generator loss at v*"]


def test_a_wrong_followed_divergence_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # the non-saturating generator does not follow the value of its loss at D*
    e = T.THEORY["non_saturating"]
    results = _verify_with(monkeypatch, "non_saturating", follows=dataclasses.replace(e.follows, value=e.generator_value.value))
    bad = [r.claim for r in results if not r.ok]
    assert any("frozen-v* generator gradient" in c for c in bad)


def test_a_wrong_limit_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    e = T.THEORY["fgan_kl"]
    wrong = dataclasses.replace(e.limits, at_infinity=1.0)  # KL covers modes: the limit is infinite
    results = _verify_with(monkeypatch, "fgan_kl", limits=wrong)
    assert [r.claim for r in results if not r.ok] == ["lim f̂(u)/u = 1"]
