"""Jensen-Shannon divergence between histograms (gan_lib.metrics.binned_js) against hand computation."""

import math

import numpy as np
import pytest

from gan_lib.metrics import binned_js


def js_by_hand_2(p1: float, q1: float) -> float:
    """JS between (p1, 1-p1) and (q1, 1-q1), written out term by term."""
    p2, q2 = 1 - p1, 1 - q1
    m1, m2 = (p1 + q1) / 2, (p2 + q2) / 2
    return 0.5 * (p1 * math.log(p1 / m1) + p2 * math.log(p2 / m2)) + 0.5 * (q1 * math.log(q1 / m1) + q2 * math.log(q2 / m2))


@pytest.mark.parametrize(("p1", "q1"), [(0.8, 0.4), (0.5, 0.5), (0.01, 0.99)])
def test_two_bins_against_the_formula(p1: float, q1: float) -> None:
    assert binned_js([p1, 1 - p1], [q1, 1 - q1]) == pytest.approx(js_by_hand_2(p1, q1), abs=1e-15)


def test_overlap_in_one_of_three_bins_is_half_log_2() -> None:
    # p = (1/2, 1/2, 0), q = (0, 1/2, 1/2): m = (1/4, 1/2, 1/4); KL(p||m) = KL(q||m) = (1/2) log 2
    assert binned_js([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]) == pytest.approx(0.5 * math.log(2), abs=1e-15)


def test_disjoint_is_log_2_and_identical_is_0_whatever_the_total_mass() -> None:
    assert binned_js([3.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.2, 0.2]) == pytest.approx(math.log(2), abs=1e-15)
    assert binned_js(np.array([2.0, 6.0, 2.0]), [0.1, 0.3, 0.1]) == pytest.approx(0.0, abs=1e-15)
    # unnormalised masses are normalised: counts (1, 4) are the distribution (0.2, 0.8)
    assert binned_js([1.0, 4.0], [3.0, 1.0]) == pytest.approx(js_by_hand_2(0.2, 0.75), abs=1e-15)


@pytest.mark.parametrize(
    ("p", "q", "message"),
    [
        ([0.5, 0.5], [1.0], "2 bins and q_masses 1"),
        ([0.5, -0.1], [0.5, 0.5], "p_masses must hold finite masses >= 0"),
        ([0.5, 0.5], [0.0, 0.0], "q_masses sums to 0.0"),
        ([0.5, math.nan], [0.5, 0.5], "p_masses must hold finite"),
        ([], [], r"p_masses has shape \(0,\)"),
    ],
)
def test_bad_masses_are_named(p, q, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        binned_js(p, q)
