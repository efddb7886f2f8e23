"""Paired statistics: McNemar, Newey-West HAC (direct and prefix-vectorised), the daily test."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import signal as sps_signal
from scipy import stats as sps

from finmlops.abtest import (
    PairedStats,
    daily_diff_test,
    hac_prefix,
    iid_diff_test,
    mcnemar,
    newey_west_lrv,
    nw_lag,
)


def test_paired_stats_count_discordant_pairs() -> None:
    s = PairedStats.from_arrays([1, 1, 0, 0, 1], [1, 0, 1, 0, 0], [0.1, 0.2, 0, 0, 0.3],
                                [0.0, 0.1, 0.1, 0, 0.1])
    assert (s.n, s.b, s.c) == (5, 2, 1)
    assert s.sum_diff == pytest.approx(0.3)
    assert s.hit_diff == pytest.approx(0.2)


def test_mcnemar_is_exact_for_few_discordant_pairs() -> None:
    res = mcnemar(PairedStats(100, 9, 1, 0.0, 0.0))
    assert res.p_value == pytest.approx(sps.binomtest(9, 10, 0.5).pvalue)


def test_mcnemar_uses_continuity_corrected_chi_square_for_many() -> None:
    res = mcnemar(PairedStats(1000, 80, 50, 0.0, 0.0))
    chi2 = (abs(80 - 50) - 1) ** 2 / 130
    assert res.statistic == pytest.approx(chi2)
    assert res.p_value == pytest.approx(sps.chi2.sf(chi2, 1))
    assert res.lower < 0.03 < res.upper


def test_lag_rule() -> None:
    assert nw_lag(100) == 4
    assert nw_lag(250) == 4
    assert nw_lag(1500) == 7
    assert nw_lag(np.array([1, 10, 100])).tolist() == [1, 2, 4]


def test_newey_west_with_lag_zero_is_the_biased_variance() -> None:
    x = np.random.default_rng(0).normal(size=200)
    assert newey_west_lrv(x, 0) == pytest.approx(x.var())


def test_hac_recovers_the_long_run_variance_of_an_ar1() -> None:
    rng = np.random.default_rng(1)
    phi, n = 0.5, 100_000
    x = sps_signal.lfilter([1.0], [1.0, -phi], rng.normal(size=n))
    true = 1 / (1 - phi) ** 2
    assert newey_west_lrv(x, 100) == pytest.approx(true, rel=0.1)
    assert newey_west_lrv(x, 0) < 0.5 * true  # the iid variance is far too small


@given(arrays(np.float64, st.integers(2, 80), elements=st.floats(-1, 1)))
@settings(max_examples=80, deadline=None)
def test_prefix_hac_equals_the_direct_computation(x: np.ndarray) -> None:
    mean, lrv = hac_prefix(x)
    for t in (2, len(x) // 2 + 1, len(x)):
        assert mean[t - 1] == pytest.approx(x[:t].mean(), abs=1e-12)
        assert lrv[t - 1] == pytest.approx(newey_west_lrv(x[:t]), rel=1e-7, abs=1e-10)


def test_prefix_hac_is_vectorised_over_leading_axes() -> None:
    x = np.random.default_rng(2).normal(size=(3, 50))
    mean, lrv = hac_prefix(x)
    assert mean.shape == lrv.shape == (3, 50)
    assert lrv[1, -1] == pytest.approx(newey_west_lrv(x[1]))


def test_daily_test_and_iid_test_agree_without_autocorrelation_at_lag_zero() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(0.001, 0.01, 400)
    hac = daily_diff_test(d, lag=0)
    iid = iid_diff_test(PairedStats(400, 0, 0, float(d.sum()), float((d * d).sum())))
    assert hac.estimate == pytest.approx(iid.estimate)
    assert hac.std_error == pytest.approx(iid.std_error, rel=0.01)
    ref = sps.ttest_1samp(d, 0.0)
    assert iid.p_value == pytest.approx(ref.pvalue, rel=1e-9)
