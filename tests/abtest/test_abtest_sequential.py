"""The normal-mixture always-valid test: formula, monotonicity, and confidence sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.abtest import mixture_arrays, mixture_tau2, mixture_test, running_min


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
    assert res.to_dict()["lower"] is None and res.to_dict()["upper"] is None


def test_tau2_scales_with_per_observation_variance_and_plan() -> None:
    a = float(mixture_tau2(1e-6, 100, n_plan=500))
    assert float(mixture_tau2(1e-6, 200, n_plan=500)) == pytest.approx(2 * a)
    assert float(mixture_tau2(1e-6, 100, n_plan=1000)) == pytest.approx(a / 2)


def test_running_min_never_increases() -> None:
    p = running_min(np.array([[0.9, 0.5, 0.7, 0.2, 0.3]]))
    assert p.tolist() == [[0.9, 0.5, 0.5, 0.2, 0.2]]
