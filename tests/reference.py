"""Numpy / scipy references shared by the tests (one copy of each).

Everything here is typed from the papers or textbooks, in numpy, scipy or sympy, and never calls
``gan_lib``: a test that compares the library with these compares it with a second, independent
computation.

* logistic helpers written with probabilities (``D = 1/(1 + e^{-v})``), for moderate logits only;
* Gaussian densities, the Bhattacharyya coefficient, a ``scipy.integrate.quad`` wrapper;
* the f-divergences of Nowozin et al. (2016), Table 1/2/6: ``f``, ``f'``, the output activation
  ``g_f``, the conjugate ``f^*``, ``dom f^*``, the f-GAN bound on samples and ``int q f(p/q)`` by
  quadrature;
* the scoring rules of Mohamed & Lakshminarayanan (2016), Table 1: losses, pointwise risk and the
  implied ``f`` from each rule's generalised entropy;
* a tiny TeX -> numpy translator (via sympy) for the formula strings the book renders, and a
  brace/``\\left``-``\\right`` balance check.
"""

from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np
from scipy import integrate, special

__all__ = [
    "sigmoid",
    "log_sigmoid",
    "log_one_minus_sigmoid",
    "normal_logpdf",
    "normal_pdf",
    "gauss_bc",
    "scipy_integral",
    "FGAN_NAMES",
    "f_divergence_f",
    "f_divergence_fprime",
    "fgan_activation",
    "fgan_conjugate",
    "fgan_dom_star",
    "fgan_bound",
    "scipy_divergence",
    "SCORING_NAMES",
    "scoring_losses",
    "scoring_risk",
    "scoring_f_from_entropy",
    "tex_function",
    "tex_interval",
    "tex_balanced",
    "bib_keys",
]


# --- logistic ------------------------------------------------------------------------------


def sigmoid(v: np.ndarray | float) -> np.ndarray:
    """``D = 1/(1 + e^{-v})``, written out (no scipy.special.expit)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(v, dtype=np.float64)))


def log_sigmoid(v: np.ndarray | float) -> np.ndarray:
    """``log D`` the naive way: accurate for moderate logits (|v| <~ 30) only."""
    return np.log(sigmoid(v))


def log_one_minus_sigmoid(v: np.ndarray | float) -> np.ndarray:
    """``log(1 - D)`` the naive way: accurate for moderate logits only."""
    return np.log(1.0 - sigmoid(v))


# --- Gaussians and quadrature ----------------------------------------------------------------


def normal_logpdf(x: np.ndarray | float, mean: float, std: float) -> np.ndarray | float:
    """``log N(x; mean, std^2)`` written out; cheap on the scalars quad passes."""
    z = (x - mean) / std
    return -0.5 * z * z - math.log(std) - 0.5 * math.log(2.0 * math.pi)


def normal_pdf(x: np.ndarray | float, mean: float, std: float) -> np.ndarray | float:
    """``N(x; mean, std^2)``."""
    return np.exp(normal_logpdf(x, mean, std))


def gauss_bc(m1: float, s1: float, m2: float, s2: float) -> float:
    """Bhattacharyya coefficient ``int sqrt(p q)`` between N(m1, s1^2) and N(m2, s2^2)."""
    v = s1**2 + s2**2
    return math.sqrt(2.0 * s1 * s2 / v) * math.exp(-((m1 - m2) ** 2) / (4.0 * v))


def scipy_integral(fn: Callable[[float], float], lo: float = -15.0, hi: float = 15.0, points=None) -> float:
    """``int_lo^hi fn`` by adaptive quadrature (scipy.integrate.quad) to ~1e-11 relative."""
    val, _ = integrate.quad(fn, lo, hi, limit=400, epsabs=1e-12, epsrel=1e-11, points=points)
    return val


# --- f-divergences (Nowozin, Cseke & Tomioka 2016, Tables 1, 2 and 6) ----------------------

FGAN_NAMES = (
    "kl", "reverse_kl", "pearson", "neyman", "squared_hellinger", "jeffrey",
    "jensen_shannon", "gan", "total_variation",
)  # fmt: skip
"""The named f-divergences (the alpha family takes ``alpha=``)."""


def _need_alpha(name: str, alpha: float | None) -> float:
    if name != "alpha" or alpha is None:
        raise KeyError(f"unknown reference divergence {name!r} (alpha={alpha!r})")
    return float(alpha)


def f_divergence_f(name: str, u: np.ndarray | float, alpha: float | None = None) -> np.ndarray:
    """The generator function ``f(u)`` with ``D_f(P||Q) = int q f(p/q)`` (``f(1) = 0`` except GAN)."""
    u = np.asarray(u, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "kl":
            return special.xlogy(u, u)
        if name == "reverse_kl":
            return -np.log(u)
        if name == "pearson":
            return (u - 1.0) ** 2
        if name == "neyman":
            return (1.0 - u) ** 2 / u
        if name == "squared_hellinger":
            return (np.sqrt(u) - 1.0) ** 2
        if name == "jeffrey":
            return (u - 1.0) * np.log(u)
        if name == "jensen_shannon":
            return special.xlogy(u, u) - (u + 1.0) * np.log((1.0 + u) / 2.0)
        if name == "gan":  # shifted: D_f = 2 JS - log 4
            return special.xlogy(u, u) - (u + 1.0) * np.log1p(u)
        if name == "total_variation":
            return 0.5 * np.abs(u - 1.0)
        a = _need_alpha(name, alpha)
        return (u**a - 1.0 - a * (u - 1.0)) / (a * (a - 1.0))


def f_divergence_fprime(name: str, u: np.ndarray | float, alpha: float | None = None) -> np.ndarray:
    """``f'(u)``, the optimal critic value ``T*(x) = f'(p(x)/q(x))`` (total variation: ``sign(u-1)/2``)."""
    u = np.asarray(u, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "kl":
            return np.log(u) + 1.0
        if name == "reverse_kl":
            return -1.0 / u
        if name == "pearson":
            return 2.0 * (u - 1.0)
        if name == "neyman":
            return 1.0 - 1.0 / u**2
        if name == "squared_hellinger":
            return 1.0 - 1.0 / np.sqrt(u)
        if name == "jeffrey":
            return np.log(u) + 1.0 - 1.0 / u
        if name == "jensen_shannon":
            return np.log(2.0 * u / (1.0 + u))
        if name == "gan":
            return np.log(u / (1.0 + u))
        if name == "total_variation":
            return 0.5 * np.sign(u - 1.0)
        a = _need_alpha(name, alpha)
        return (u ** (a - 1.0) - 1.0) / (a - 1.0)


def fgan_activation(name: str, v: np.ndarray | float, alpha: float | None = None) -> np.ndarray:
    """The output activation ``g_f(v)`` of the f-GAN table (maps R into dom f*)."""
    v = np.asarray(v, dtype=np.float64)
    if name in ("kl", "pearson", "jeffrey"):
        return v
    if name == "reverse_kl":
        return -np.exp(-v)
    if name in ("neyman", "squared_hellinger"):
        return 1.0 - np.exp(-v)
    if name == "jensen_shannon":
        return math.log(2.0) - np.log(1.0 + np.exp(-v))
    if name == "gan":
        return -np.log(1.0 + np.exp(-v))
    if name == "total_variation":
        return 0.5 * np.tanh(v)
    a = _need_alpha(name, alpha)
    return 1.0 / (1.0 - a) - np.log(1.0 + np.exp(-v)) if a < 1.0 else v


def fgan_conjugate(name: str, t: np.ndarray | float, alpha: float | None = None) -> np.ndarray:
    """The convex conjugate ``f*(t) = sup_u t u - f(u)`` of the table, on dom f*.

    Alpha with ``alpha > 1``: the exact conjugate of f on ``u >= 0``, constant ``-1/alpha`` below
    the kink ``t = 1/(1 - alpha)``.
    """
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "kl":
            return np.exp(t - 1.0)
        if name == "reverse_kl":
            return -1.0 - np.log(-t)
        if name == "pearson":
            return t**2 / 4.0 + t
        if name == "neyman":
            return 2.0 - 2.0 * np.sqrt(1.0 - t)
        if name == "squared_hellinger":
            return t / (1.0 - t)
        if name == "jeffrey":
            w = np.real(special.lambertw(np.exp(1.0 - t)))
            return w + 1.0 / w + t - 2.0
        if name == "jensen_shannon":
            return -np.log(2.0 - np.exp(t))
        if name == "gan":
            return -np.log(1.0 - np.exp(t))
        if name == "total_variation":
            return t
        a = _need_alpha(name, alpha)
        base = t * (a - 1.0) + 1.0
        if a > 1.0:
            base = np.maximum(base, 0.0)
        return base ** (a / (a - 1.0)) / a - 1.0 / a


def fgan_dom_star(name: str, alpha: float | None = None) -> tuple[float, float]:
    """``dom f*`` as an interval ``(lo, hi)`` (open except total variation's closed ``[-1/2, 1/2]``)."""
    inf = math.inf
    table = {
        "kl": (-inf, inf), "reverse_kl": (-inf, 0.0), "pearson": (-inf, inf), "neyman": (-inf, 1.0),
        "squared_hellinger": (-inf, 1.0), "jeffrey": (-inf, inf), "jensen_shannon": (-inf, math.log(2.0)),
        "gan": (-inf, 0.0), "total_variation": (-0.5, 0.5),
    }  # fmt: skip
    if name in table:
        return table[name]
    a = _need_alpha(name, alpha)
    return (-inf, 1.0 / (1.0 - a)) if a < 1.0 else (-inf, inf)


def fgan_bound(name: str, v_real: np.ndarray, v_fake: np.ndarray, alpha: float | None = None) -> float:
    """The f-GAN value ``mean g_f(v_real) - mean f*(g_f(v_fake))`` on samples of raw critic outputs."""
    real = fgan_activation(name, v_real, alpha)
    fake = fgan_conjugate(name, fgan_activation(name, v_fake, alpha), alpha)
    return float(np.mean(real) - np.mean(fake))


def scipy_divergence(
    name: str,
    p: Callable[[float], float],
    q: Callable[[float], float],
    lo: float = -20.0,
    hi: float = 20.0,
    alpha: float | None = None,
    *,
    epsabs: float = 1e-14,
    epsrel: float = 1e-12,
    points=None,
) -> float:
    """``D_f(P||Q) = int q f(p/q)`` by scipy quad, for scalar density functions ``p`` and ``q``."""

    def integrand(x: float) -> float:
        px, qx = p(x), q(x)
        if qx == 0.0 and px == 0.0:
            return 0.0
        return float(qx * f_divergence_f(name, px / qx, alpha))

    val, _ = integrate.quad(integrand, lo, hi, epsabs=epsabs, epsrel=epsrel, limit=400, points=points)
    return val


# --- scoring rules (Mohamed & Lakshminarayanan 2016, Table 1; loss = minus the score) --------

SCORING_NAMES = ("bernoulli", "brier", "exponential", "misclassification", "hinge", "spherical")


def scoring_losses(name: str, v: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(loss on a P sample, loss on a Q sample) of the raw logit ``v``, from the table's D-formulas."""
    v = np.asarray(v, dtype=np.float64)
    D = sigmoid(v)
    if name == "bernoulli":
        return -np.log(D), -np.log(1.0 - D)
    if name == "brier":
        return (1.0 - D) ** 2, D**2
    if name == "exponential":
        return np.sqrt((1.0 - D) / D), np.sqrt(D / (1.0 - D))
    if name == "misclassification":
        return (D <= 0.5).astype(float), (D > 0.5).astype(float)
    if name == "hinge":  # on the logit log(D/(1-D)), which is v
        return np.maximum(0.0, 1.0 - v), np.maximum(0.0, 1.0 + v)
    if name == "spherical":
        a = (1.0 - 2.0 * D + 2.0 * D**2) ** -0.5
        return -a * D, -a * (1.0 - D)
    raise KeyError(name)


def scoring_risk(name: str, v: float, p: float, q: float) -> float:
    """Pointwise risk ``p loss_P(v) + q loss_Q(v)`` at one point with densities ``p``, ``q``."""
    l1, l0 = scoring_losses(name, v)
    return float(p * l1 + q * l0)


def scoring_f_from_entropy(name: str, u: np.ndarray | float) -> np.ndarray:
    """The implied ``f(u) = -(1+u) H(u/(1+u))``, ``H`` the rule's textbook conditional Bayes risk."""
    u = np.asarray(u, dtype=np.float64)
    eta = u / (1.0 + u)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "bernoulli":
            H = -(np.where(eta > 0, eta * np.log(eta), 0.0) + np.where(eta < 1, (1 - eta) * np.log(1 - eta), 0.0))
        elif name == "brier":
            H = eta * (1.0 - eta)
        elif name == "exponential":
            H = 2.0 * np.sqrt(eta * (1.0 - eta))
        elif name == "misclassification":
            H = np.minimum(eta, 1.0 - eta)
        elif name == "hinge":
            H = 2.0 * np.minimum(eta, 1.0 - eta)
        elif name == "spherical":
            H = -np.sqrt(eta**2 + (1.0 - eta) ** 2)
        else:
            raise KeyError(name)
    return -(1.0 + u) * H


# --- TeX ------------------------------------------------------------------------------------

_TEX_FUNCS = {r"\log": "log", r"\tanh": "tanh", r"\max": "Max", r"\min": "Min", r"\exp": "exp"}
_TEX_SYMBOLS = {r"\alpha": "alpha"}
_TEX_SPACES = (r"\,", r"\;", r"\!", r"\quad", r"\big", r"\Big", r"\left", r"\right")


def _tex_arg(s: str, i: int) -> tuple[str, int]:
    """One TeX argument starting at s[i]: a {group}, a \\command or a single character."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        raise ValueError(f"missing argument at the end of {s!r}")
    if s[i] == "{":
        depth, j = 0, i
        while j < len(s):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                return s[i + 1 : j], j + 1
            j += 1
        raise ValueError(f"unbalanced braces in {s!r}")
    if s[i] == "\\":
        m = re.match(r"\\[A-Za-z]+", s[i:])
        if m is None:
            raise ValueError(f"bad command at {s[i:]!r}")
        return m.group(0), i + len(m.group(0))
    return s[i], i + 1


def _tex_to_python(s: str) -> str:
    out: list[str] = []
    i = 0
    bars = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            for sp in _TEX_SPACES:
                if s.startswith(sp, i) and not s[i + len(sp) : i + len(sp) + 1].isalpha():
                    out.append(" ")
                    i += len(sp)
                    break
            else:
                m = re.match(r"\\[A-Za-z]+", s[i:])
                if m is None:
                    raise ValueError(f"unsupported TeX at {s[i:]!r}")
                cmd = m.group(0)
                i += len(cmd)
                if cmd in ("\\frac", "\\tfrac", "\\dfrac"):
                    num, i = _tex_arg(s, i)
                    den, i = _tex_arg(s, i)
                    out.append(f"(({_tex_to_python(num)})/({_tex_to_python(den)}))")
                elif cmd == "\\sqrt":
                    arg, i = _tex_arg(s, i)
                    out.append(f"sqrt({_tex_to_python(arg)})")
                elif cmd == "\\operatorname":
                    arg, i = _tex_arg(s, i)
                    if arg not in ("sign",):
                        raise ValueError(f"unsupported operator {arg!r}")
                    out.append(" sign")
                elif cmd in _TEX_FUNCS:
                    out.append(f" {_TEX_FUNCS[cmd]} ")
                elif cmd in _TEX_SYMBOLS:
                    out.append(f" {_TEX_SYMBOLS[cmd]} ")
                else:
                    raise ValueError(f"unsupported TeX command {cmd} in {s!r}")
        elif c == "^":
            arg, i = _tex_arg(s, i + 1)
            out.append(f"**({_tex_to_python(arg)})")
        elif c == "{":
            arg, i = _tex_arg(s, i)
            out.append(f"({_tex_to_python(arg)})")
        elif c == "|":
            out.append(" Abs(" if bars % 2 == 0 else ")")
            bars += 1
            i += 1
        elif c == "W":
            out.append(" LambertW")
            i += 1
        elif c in "$}":
            raise ValueError(f"stray {c!r} in {s!r}")
        else:
            out.append(c)
            i += 1
    if bars % 2:
        raise ValueError(f"unbalanced |...| in {s!r}")
    return "".join(out)


def tex_function(tex: str, var: str, alpha: float | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy function of ``var`` from a formula string of the book's TeX (a small subset).

    Supported: ``\\frac``/``\\tfrac`` (braced or one-token arguments), ``\\sqrt``, ``^``, ``e``,
    ``\\log``, ``\\tanh``, ``\\max``, ``\\min``, ``\\operatorname{sign}``, ``|x|``, ``W`` (Lambert W),
    ``\\alpha``, ``\\big``/``\\left``/``\\right`` and spacing. Anything else raises ``ValueError``.
    """
    import sympy
    from sympy.parsing.sympy_parser import (
        implicit_application,
        implicit_multiplication,
        parse_expr,
        standard_transformations,
    )

    names = {
        var: sympy.Symbol(var),
        "alpha": sympy.Symbol("alpha"),
        "e": sympy.E,
        "log": sympy.log,
        "exp": sympy.exp,
        "sqrt": sympy.sqrt,
        "tanh": sympy.tanh,
        "sign": sympy.sign,
        "Abs": sympy.Abs,
        "Max": sympy.Max,
        "Min": sympy.Min,
        "LambertW": sympy.LambertW,
    }
    expr = parse_expr(
        _tex_to_python(tex),
        local_dict=names,
        global_dict={"Integer": sympy.Integer, "Float": sympy.Float, "Symbol": sympy.Symbol},
        transformations=standard_transformations + (implicit_multiplication, implicit_application),
    )
    free = {str(s) for s in expr.free_symbols} - {var}
    if alpha is not None:
        expr = expr.subs(sympy.Symbol("alpha"), alpha)
        free -= {"alpha"}
    if free:
        raise ValueError(f"{tex!r} has free symbols {sorted(free)} besides {var!r}")
    fn = sympy.lambdify(sympy.Symbol(var), expr, modules=["scipy", "numpy"])
    return lambda x: np.real(np.asarray(fn(np.asarray(x, dtype=np.float64)), dtype=np.complex128)) + 0.0


def tex_interval(tex: str, var: str = "t", alpha: float | None = None) -> tuple[float, float]:
    """``(lo, hi)`` of a domain written as ``\\mathbb{R}``, ``var<X`` or ``|var|\\le X``."""
    s = tex.replace(" ", "")
    if s == r"\mathbb{R}":
        return (-math.inf, math.inf)
    m = re.fullmatch(rf"{var}(<|\\le)(.+)", s)
    if m:
        return (-math.inf, float(tex_function(m.group(2), "_", alpha)(0.0)))
    m = re.fullmatch(rf"\|{var}\|(<|\\le)(.+)", s)
    if m:
        x = float(tex_function(m.group(2), "_", alpha)(0.0))
        return (-x, x)
    raise ValueError(f"unsupported domain {tex!r}")


def tex_balanced(tex: str) -> bool:
    """Braces balance (ignoring ``\\{``, ``\\}``), ``\\left``/``\\right`` pair up, and there is no ``$``."""
    if "$" in tex or not tex.strip():
        return False
    depth = 0
    for c in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            return False
    return depth == 0 and len(re.findall(r"\\left\b", tex)) == len(re.findall(r"\\right\b", tex))


def bib_keys(path) -> set[str]:
    """The entry keys of a bibtex file."""
    from pathlib import Path

    return set(re.findall(r"@\w+\{([^,\s]+),", Path(path).read_text(encoding="utf-8")))
