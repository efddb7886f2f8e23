"""Split-test statistics: agreement with scipy on raw data, SRM, MDE and power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from finmlops.abtest import (
    ArmStats,
    fixed_n_power,
    hit_rate_test,
    mde,
    mean_return_test,
    srm_test,
)


def arm(rng: np.random.Generator, n: int, mu: float = 0.0, p: float = 0.5) -> ArmStats:
    return ArmStats.from_arrays(rng.random(n) < p, rng.normal(mu, 0.01, n))


def test_arm_stats_match_numpy() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(0.001, 0.02, 500)
    h = rng.random(500) < 0.55
    s = ArmStats.from_arrays(h, r)
    assert s.n == 500 and s.hits == int(h.sum())
    assert s.mean == pytest.approx(r.mean())
    assert s.variance == pytest.approx(r.var(ddof=1))
    assert s.hit_rate == pytest.approx(h.mean())


@given(st.lists(st.floats(-0.2, 0.2), min_size=2, max_size=60),
       st.lists(st.floats(-0.2, 0.2), min_size=2, max_size=60))
@settings(max_examples=60, deadline=None)
def test_sufficient_statistics_add_like_concatenation(a: list[float], b: list[float]) -> None:
    ha, hb = [x > 0 for x in a], [x > 0 for x in b]
    joined = ArmStats.from_arrays(ha + hb, a + b)
    summed = ArmStats.from_arrays(ha, a) + ArmStats.from_arrays(hb, b)
    assert summed.n == joined.n and summed.hits == joined.hits
    assert summed.variance == pytest.approx(joined.variance, rel=1e-6, abs=1e-12)


def test_invalid_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="invalid counts"):
        ArmStats(10, 11, 0.0, 0.0)


def test_welch_matches_scipy_on_raw_data() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.002, 0.01, 300), rng.normal(0.0, 0.02, 700)
    res = mean_return_test(ArmStats.from_arrays(a > 0, a), ArmStats.from_arrays(b > 0, b))
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.lower < res.estimate < res.upper
    assert res.estimate == pytest.approx(a.mean() - b.mean())


def test_two_proportion_z_matches_the_textbook() -> None:
    c, r = ArmStats(400, 230, 0.0, 0.0), ArmStats(600, 300, 0.0, 0.0)
    res = hit_rate_test(c, r)
    p = 530 / 1000
    z = (230 / 400 - 300 / 600) / math.sqrt(p * (1 - p) * (1 / 400 + 1 / 600))
    assert res.statistic == pytest.approx(z)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(abs(z)))
    assert res.lower < 0.075 < res.upper


def test_empty_arms_give_no_evidence() -> None:
    res = mean_return_test(ArmStats(0, 0, 0.0, 0.0), ArmStats(5, 2, 0.1, 0.01))
    assert res.p_value == 1.0 and res.to_dict()["lower"] is None


def test_srm_flags_a_skewed_split_and_passes_a_fair_one() -> None:
    weights = {"baseline": 70, "enhanced": 30}
    assert not srm_test({"baseline": 7040, "enhanced": 2960}, weights).mismatch
    bad = srm_test({"baseline": 7400, "enhanced": 2600}, weights)
    assert bad.mismatch and bad.p_value < 1e-10
    stray = srm_test({"baseline": 10, "enhanced": 5, "other": 1}, weights)
    assert stray.mismatch


def test_srm_p_value_is_uniform_under_the_configured_split() -> None:
    rng = np.random.default_rng(2)
    n1 = rng.binomial(1000, 0.3, 2000)
    ps = np.array([srm_test({"a": 1000 - k, "b": k}, {"a": 7, "b": 3}).p_value for k in n1])
    assert abs((ps < 0.05).mean() - 0.05) < 0.015


def test_mde_is_the_effect_with_80_percent_power() -> None:
    se = 0.001
    effect = mde(se, 0.05)
    assert effect == pytest.approx((1.959964 + 0.841621) * se, rel=1e-5)
    assert fixed_n_power(effect, se, 0.05) == pytest.approx(0.8, abs=1e-3)
    assert fixed_n_power(0.0, se, 0.05) == pytest.approx(0.05)


def test_mde_shrinks_like_one_over_root_n() -> None:
    rng = np.random.default_rng(3)
    small = mean_return_test(arm(rng, 100), arm(rng, 100))
    large = mean_return_test(arm(rng, 10_000), arm(rng, 10_000))
    ratio = mde(small.std_error) / mde(large.std_error)
    assert 8 < ratio < 12


def test_srm_with_three_arms_is_scipys_chi_square_with_two_degrees_of_freedom() -> None:
    counts, weights = {"a": 520, "b": 260, "c": 220}, {"a": 50, "b": 25, "c": 25}
    res = srm_test(counts, weights)
    ref = sps.chisquare([520, 260, 220], [500, 250, 250])
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
