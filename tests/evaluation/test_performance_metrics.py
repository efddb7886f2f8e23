"""Performance metrics and the Sharpe ratio's statistics, against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.stats import norm

from finmlops.evaluation import (
    backtest_positions,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    max_drawdown,
    min_track_record_length,
    performance_metrics,
    probabilistic_sharpe_ratio,
    sharpe_moments,
)

GAMMA = 0.5772156649015329


def test_psr_worked_example():
    # SR 0.1 per day over 250 days, skew -0.5, kurtosis 4 (non-excess), against SR* = 0
    sr, n, g3, g4 = 0.1, 250, -0.5, 4.0
    denominator = math.sqrt(1 + 0.5 * 0.1 + 3 / 4 * 0.01)  # sqrt(1.0575)
    expected = norm.cdf(0.1 * math.sqrt(249) / denominator)
    assert expected == pytest.approx(0.93754, abs=1e-5)
    assert probabilistic_sharpe_ratio(sr, n, g3, g4) == pytest.approx(expected, rel=1e-12)
    # against SR* = 0.05 the probability falls
    lower = norm.cdf(0.05 * math.sqrt(249) / denominator)
    assert probabilistic_sharpe_ratio(sr, n, g3, g4, 0.05) == pytest.approx(lower, rel=1e-12)


def test_min_track_record_length_worked_example():
    # 1 + 1.0575 * (1.644854 / 0.1)^2 = 287.11 days
    expected = 1 + 1.0575 * (norm.ppf(0.95) / 0.1) ** 2
    assert expected == pytest.approx(287.11, abs=0.01)
    assert min_track_record_length(0.1, -0.5, 4.0) == pytest.approx(expected, rel=1e-12)
    assert min_track_record_length(-0.1, 0.0, 3.0) is None
    # at exactly MinTRL observations, PSR equals the confidence level
    n = expected
    z = 0.1 * math.sqrt(n - 1) / math.sqrt(1.0575)
    assert norm.cdf(z) == pytest.approx(0.95, abs=1e-12)


def test_deflated_sharpe_ratio_paper_example():
    """Bailey & López de Prado (2014), section 4: annual SR 2.5 over 1250 days, 100 trials
    with annualised SR variance 0.5, skew -3, kurtosis 10 -> DSR 0.9004."""
    sr, n, v = 2.5 / math.sqrt(250), 1250, 0.5 / 250
    sr0 = math.sqrt(v) * ((1 - GAMMA) * norm.ppf(1 - 1 / 100)
                          + GAMMA * norm.ppf(1 - 1 / (100 * math.e)))
    assert sr0 * math.sqrt(250) == pytest.approx(1.7894, abs=1e-4)
    assert expected_max_sharpe(100, v) == pytest.approx(sr0, rel=1e-12)
    dsr = norm.cdf((sr - sr0) * math.sqrt(n - 1) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2))
    assert dsr == pytest.approx(0.9004, abs=1e-4)
    assert deflated_sharpe_ratio(sr, n, -3.0, 10.0, 100, v) == pytest.approx(dsr, rel=1e-12)


def test_one_trial_is_not_deflated():
    assert expected_max_sharpe(1, 0.01) == 0.0
    assert deflated_sharpe_ratio(0.05, 500, 0.0, 3.0, 1, 0.01) == pytest.approx(
        probabilistic_sharpe_ratio(0.05, 500, 0.0, 3.0), rel=1e-15)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 10_000), v=st.floats(1e-6, 1.0))
def test_more_trials_never_lower_the_bar(n, v):
    assert expected_max_sharpe(n + 1, v) >= expected_max_sharpe(n, v) >= 0.0


def test_moments_are_per_period_skew_and_non_excess_kurtosis(returns):
    sr, skew, kurt = sharpe_moments(returns)
    assert sr == pytest.approx(returns.mean() / returns.std(ddof=1), rel=1e-12)
    assert skew == pytest.approx(stats.skew(returns), rel=1e-9)
    assert kurt == pytest.approx(stats.kurtosis(returns, fisher=False), rel=1e-9)
    assert sharpe_moments(np.full(10, 0.01)) == (None, None, None)


def test_max_drawdown_and_its_duration():
    equity = np.array([1.1, 0.99, 1.05, 1.2, 0.9, 0.96, 1.0])
    dd, days = max_drawdown(equity)
    assert dd == pytest.approx(0.9 / 1.2 - 1)
    assert days == 3  # below the 1.2 peak for the last three days
    dd, days = max_drawdown(np.array([0.9, 0.95, 1.01]))
    assert dd == pytest.approx(-0.1) and days == 2  # the start is a peak at 1
    assert max_drawdown(np.array([1.0, 1.1])) == (0.0, 0)


def test_metrics_by_hand():
    r = np.array([0.01, -0.02, 0.03, 0.0, -0.01])
    pos = np.array([1.0, 1.0, 0.0, 0.0, 1.0])
    res = backtest_positions(pos, r, 0.001)
    m = performance_metrics(res, periods_per_year=252)
    net = pos * r - 0.001 * np.array([1, 0, 1, 0, 1])
    assert m.days == 5
    assert m.total_return == pytest.approx(np.prod(1 + net) - 1, rel=1e-12)
    assert m.annual_return == pytest.approx(np.prod(1 + net) ** (252 / 5) - 1, rel=1e-12)
    assert m.volatility == pytest.approx(net.std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert m.sharpe == pytest.approx(net.mean() / net.std(ddof=1) * math.sqrt(252), rel=1e-12)
    downside = math.sqrt(np.mean(np.minimum(net, 0) ** 2))
    assert m.sortino == pytest.approx(net.mean() / downside * math.sqrt(252), rel=1e-12)
    assert m.hit_rate == pytest.approx(1 / 3)  # in the market 3 days, up on one
    assert m.exposure == pytest.approx(0.6)
    assert m.turnover == pytest.approx(3 / 5 * 252)
    assert m.cost_drag == pytest.approx(0.003 / 5 * 252)
    assert m.calmar == pytest.approx(m.annual_return / -m.max_drawdown)
    assert m.min_trl is None  # a losing record never proves skill


def test_trials_that_agree_still_deflate(returns):
    """A spread of zero across trials (two variants that happen to agree) must not switch the
    deflation off: unskilled trials' SRs scatter by at least their sampling noise 1/(n-1)."""
    res = backtest_positions(np.ones_like(returns), returns, 0.0)
    n = len(returns)
    agree = performance_metrics(res, 252, n_trials=50, sr_variance=0.0)
    assert agree.dsr_benchmark_sharpe == pytest.approx(expected_max_sharpe(50, 1 / (n - 1)))
    assert agree.dsr is not None and agree.psr is not None and agree.dsr < agree.psr
    assert agree.dsr == performance_metrics(res, 252, n_trials=50).dsr  # the null default
    wide = performance_metrics(res, 252, n_trials=50, sr_variance=0.01)
    assert wide.dsr_benchmark_sharpe == pytest.approx(expected_max_sharpe(50, 0.01))
    assert wide.dsr is not None and wide.dsr < agree.dsr
