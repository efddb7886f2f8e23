"""Split-test statistics: agreement with scipy on raw data, the always-valid SRM test (one
segment and per experiment version), MDE and power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.special import betaln

from finmlops.abtest import (
    N_PLAN,
    ArmStats,
    fixed_n_power,
    hit_rate_test,
    mde,
    mean_return_test,
    srm_by_version,
    srm_concentration,
    srm_log_bf,
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
    assert res.p_value == 1.0 and (res.lower, res.upper) == (-math.inf, math.inf)


def test_srm_flags_a_skewed_split_and_passes_a_fair_one() -> None:
    weights = {"baseline": 70, "enhanced": 30}
    fair = srm_test({"baseline": 7040, "enhanced": 2960}, weights)
    assert not fair.mismatch and fair.p_value == 1.0
    bad = srm_test({"baseline": 7400, "enhanced": 2600}, weights)
    assert bad.mismatch and bad.p_value < 1e-10
    assert bad.p_value == pytest.approx(math.exp(-bad.log_bayes_factor))
    stray = srm_test({"baseline": 10, "enhanced": 5, "other": 1}, weights)
    assert stray.mismatch and stray.p_value == 0.0
    assert srm_test({"baseline": 10, "enhanced": 1}, {"baseline": 1, "enhanced": 0}).mismatch


def test_bayes_factor_by_hand() -> None:
    """Dirichlet(1, 1) prior (concentration 2) on a 50/50 split: the first assignment is
    predicted exactly as the null does (BF 1); two on the same arm give
    (Gamma(2)/Gamma(4)) (Gamma(3)/Gamma(1)) / 0.5**2 = 4/3."""
    assert float(srm_log_bf([1, 0], [0.5, 0.5], 2.0)) == pytest.approx(0.0, abs=1e-12)
    assert float(np.exp(srm_log_bf([2, 0], [0.5, 0.5], 2.0))) == pytest.approx(4 / 3)
    # one live arm: nothing to test
    assert float(srm_log_bf([3, 0], [1, 0], 5.0)) == pytest.approx(0.0, abs=1e-12)
    assert float(srm_log_bf([3, 1], [1, 0], 5.0)) == math.inf


@given(st.integers(0, 400), st.integers(0, 400), st.floats(0.05, 0.95), st.floats(1, 500))
@settings(max_examples=100, deadline=None)
def test_two_arm_bayes_factor_is_the_beta_binomial_one(x1: int, x2: int, theta: float,
                                                       c: float) -> None:
    got = float(srm_log_bf([x1, x2], [theta, 1 - theta], c))
    a1, a2 = c * theta, c * (1 - theta)
    want = (betaln(a1 + x1, a2 + x2) - betaln(a1, a2) - x1 * math.log(theta)
            - x2 * math.log(1 - theta))
    assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


@given(st.lists(st.integers(0, 200), min_size=3, max_size=3),
       st.lists(st.floats(0.05, 1), min_size=3, max_size=3), st.floats(1, 200))
@settings(max_examples=100, deadline=None)
def test_bayes_factor_is_a_martingale_under_the_configured_split(
        counts: list[int], weights: list[float], c: float) -> None:
    """E[BF after one more assignment | now] = BF now, when assignments follow the shares:
    what makes ``1 / BF`` valid whenever it is looked at (Ville's inequality)."""
    th = np.array(weights) / sum(weights)
    now = float(srm_log_bf(counts, th, c))
    nxt = [float(srm_log_bf([x + (i == j) for j, x in enumerate(counts)], th, c))
           for i in range(3)]
    assert float(np.dot(th, np.exp(np.array(nxt) - now))) == pytest.approx(1.0, rel=1e-9)


def test_concentration_is_tuned_to_the_planned_count() -> None:
    la = 2 * math.log(1000)
    assert srm_concentration(500, 0.001) + 1 == pytest.approx(500 / (la + math.log(1 + la)))
    assert srm_concentration(2000, 0.001) > srm_concentration(500, 0.001)
    assert srm_concentration(1, 0.001) == 1.0  # never a degenerate prior


def test_always_valid_p_value_is_conservative_at_one_look() -> None:
    rng = np.random.default_rng(2)
    k = rng.binomial(1000, 0.3, 4000)
    ps = np.array([srm_test({"a": 1000 - x, "b": int(x)}, {"a": 7, "b": 3}, 0.05).p_value
                   for x in k])
    assert (ps < 0.05).mean() <= 0.05


def test_chi_square_p_value_for_reading_is_uniform_under_the_configured_split() -> None:
    rng = np.random.default_rng(2)
    n1 = rng.binomial(1000, 0.3, 2000)
    ps = np.array([srm_test({"a": 1000 - k, "b": int(k)}, {"a": 7, "b": 3}).chi2_p_value
                   for k in n1])
    assert abs((ps < 0.05).mean() - 0.05) < 0.015


def test_one_version_is_the_single_segment_test() -> None:
    counts, weights = {"baseline": 7400, "enhanced": 2600}, {"baseline": 70, "enhanced": 30}
    one = srm_test(counts, weights)
    many = srm_by_version({3: counts}, {3: weights})
    assert (many.log_bayes_factor, many.p_value, many.mismatch, many.chi2) == (
        one.log_bayes_factor, one.p_value, one.mismatch, one.chi2)
    assert many.versions["3"].p_value == one.p_value


def test_versions_are_tested_against_their_own_weights() -> None:
    """70/30, then 50/50: served exactly as configured, so no mismatch per version, while the
    pooled counts against either version's weights would be one."""
    served = {1: {"baseline": 7000, "enhanced": 3000}, 2: {"baseline": 5000, "enhanced": 5000}}
    weights = {1: {"baseline": 70, "enhanced": 30}, 2: {"baseline": 50, "enhanced": 50}}
    res = srm_by_version(served, weights)
    assert not res.mismatch
    assert res.counts == {"baseline": 12000, "enhanced": 8000}
    assert res.expected_share == pytest.approx({"baseline": 0.6, "enhanced": 0.4})
    assert srm_test(res.counts, weights[2]).mismatch
    assert srm_test(res.counts, weights[1]).mismatch


def test_one_skewed_version_is_a_mismatch_and_named() -> None:
    served = {1: {"baseline": 7000, "enhanced": 3000}, 2: {"baseline": 5600, "enhanced": 4400}}
    weights = {1: {"baseline": 70, "enhanced": 30}, 2: {"baseline": 50, "enhanced": 50}}
    res = srm_by_version(served, weights)
    assert res.mismatch
    assert res.versions["2"].p_value < 1e-10 < res.versions["1"].p_value
    # the product of the versions' Bayes factors is the combined one
    assert res.log_bayes_factor == pytest.approx(
        sum(v.log_bayes_factor for v in res.versions.values()))
    assert res.versions["2"].counts == {"baseline": 5600, "enhanced": 4400}


def test_a_version_without_weights_is_an_error_and_without_traffic_is_no_evidence() -> None:
    with pytest.raises(ValueError, match="no target weights for experiment version"):
        srm_by_version({1: {"a": 5}, 2: {"a": 5}}, {1: {"a": 1, "b": 1}})
    res = srm_by_version({1: {"a": 500, "b": 500}}, {1: {"a": 1, "b": 1}, 2: {"a": 9, "b": 1}})
    assert res.versions["2"].log_bayes_factor == 0.0 and not res.mismatch
    assert srm_concentration(N_PLAN) > 1


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


def test_srm_with_three_arms_reports_scipys_chi_square_with_two_degrees_of_freedom() -> None:
    counts, weights = {"a": 520, "b": 260, "c": 220}, {"a": 50, "b": 25, "c": 25}
    res = srm_test(counts, weights)
    ref = sps.chisquare([520, 260, 220], [500, 250, 250])
    assert res.chi2 == pytest.approx(ref.statistic)
    assert res.chi2_p_value == pytest.approx(ref.pvalue)
    assert res.p_value > res.chi2_p_value  # the always-valid p pays for looking any time
