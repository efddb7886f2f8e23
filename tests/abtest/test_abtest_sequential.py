"""The normal-mixture always-valid test: formula, monotonicity, confidence sequences, and the
always-valid minimum detectable effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.abtest import (
    always_valid_mde,
    mde,
    mixture_arrays,
    mixture_tau2,
    mixture_test,
    running_min,
)


def test_p_value_is_one_over_the_mixture_likelihood_ratio() -> None:
    d, v, t2 = 0.01, 1e-5, 4e-5
    log_lr, p, lo, hi = mixture_arrays(d, v, t2, 0.05)
    expected = 0.5 * math.log(v / (v + t2)) + t2 * d**2 / (2 * v * (v + t2))
    assert float(log_lr) == pytest.approx(expected)
    assert float(p) == pytest.approx(min(1.0, math.exp(-expected)))
    assert float(lo) < d < float(hi)


@given(st.floats(-0.05, 0.05), st.floats(1e-8, 1e-3), st.floats(1e-8, 1e-3),
       st.floats(0.001, 0.3))
@settings(max_examples=200, deadline=None)
def test_confidence_sequence_excludes_zero_exactly_when_p_below_alpha(
        d: float, v: float, t2: float, alpha: float) -> None:
    log_lr, p, lo, hi = mixture_arrays(d, v, t2, alpha)
    excludes = float(lo) > 0 or float(hi) < 0
    margin = abs(float(log_lr) - math.log(1 / alpha))
    if margin > 1e-6:  # away from the boundary the two must agree
        assert excludes == (float(log_lr) > math.log(1 / alpha))
        assert excludes == (float(p) < alpha)


def test_always_valid_interval_is_wider_than_fixed_n() -> None:
    res = mixture_test(0.001, 1e-7, n=400, alpha=0.05)
    fixed_half = 1.959964 * math.sqrt(1e-7)
    assert (res.upper - res.lower) / 2 > fixed_half


def test_no_variance_means_no_evidence() -> None:
    res = mixture_test(0.01, 0.0, n=100)
    assert res.p_value == 1.0
    assert (res.lower, res.upper) == (-math.inf, math.inf)


def test_tau2_scales_with_per_observation_variance_and_plan() -> None:
    a = float(mixture_tau2(1e-6, 100, n_plan=500))
    assert float(mixture_tau2(1e-6, 200, n_plan=500)) == pytest.approx(2 * a)
    assert float(mixture_tau2(1e-6, 100, n_plan=1000)) == pytest.approx(a / 2)


def test_running_min_never_increases() -> None:
    p = running_min(np.array([[0.9, 0.5, 0.7, 0.2, 0.3]]))
    assert p.tolist() == [[0.9, 0.5, 0.5, 0.2, 0.2]]


def test_always_valid_mde_closed_form_at_the_planned_size() -> None:
    """At ``n = n_plan`` the mixing variance is ``k V`` with ``k = 2 log(1/alpha) +
    log(1 + 2 log(1/alpha))``, so the half-width is ``se * sqrt((1 + k) / k * (2 log(1/alpha)
    + log(1 + k)))``; the MDE adds ``z_0.8 * se``."""
    se, alpha = 0.001, 0.05
    la = 2 * math.log(1 / alpha)
    k = la + math.log(1 + la)
    half = se * math.sqrt((1 + k) / k * (la + math.log(1 + k)))
    assert always_valid_mde(se, 500, 500, alpha) == pytest.approx(half + 0.841621 * se,
                                                                  rel=1e-6)
    ratio = always_valid_mde(se, 500, 500, alpha) / mde(se, alpha)
    assert 1.35 < ratio < 1.42  # 3.87 vs 2.80 standard errors


@pytest.mark.parametrize(("n", "n_plan"), [(500, 500), (1843, 500), (200, 1000)])
def test_the_sequence_detects_the_always_valid_mde_with_80_percent_power(
        n: int, n_plan: int) -> None:
    """Estimates normal around the planted MDE: the confidence sequence at that look excludes
    zero in 80% of draws (the fixed-n MDE would give far less)."""
    rng = np.random.default_rng(n)
    se = 0.002
    effect = always_valid_mde(se, n, n_plan)
    d = rng.normal(effect, se, 40_000)
    tau2 = mixture_tau2(se**2, n, n_plan)
    _, _, lo, _ = mixture_arrays(d, se**2, tau2)
    assert (lo > 0).mean() == pytest.approx(0.8, abs=0.01)
    _, _, lo_small, _ = mixture_arrays(rng.normal(mde(se), se, 40_000), se**2, tau2)
    assert (lo_small > 0).mean() < 0.6


def test_always_valid_mde_without_a_standard_error_is_undefined() -> None:
    assert math.isnan(always_valid_mde(0.0, 100))
    assert math.isnan(always_valid_mde(math.nan, 100))
