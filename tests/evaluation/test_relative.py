"""Benchmark-relative statistics: HAC alpha/beta, information ratio, Sharpe-ratio difference
tests, against hand computations, closed forms and simulations with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from finmlops.errors import DataValidationError
from finmlops.evaluation import (
    backtest_positions,
    buy_and_hold,
    exposure_matched,
    hac_regression,
    information_ratio,
    long_run_covariance,
    memmel_test,
    newey_west_lags,
    sharpe_difference,
)


def _ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    e = rng.normal(0, 1, n)
    out = np.empty(n)
    out[0] = e[0]
    for t in range(1, n):
        out[t] = phi * out[t - 1] + e[t]
    return out


def test_newey_west_lag_rule():
    assert newey_west_lags(100) == 4
    assert newey_west_lags(5113) == 9  # 20 years of days
    assert newey_west_lags(1) == 1


def test_intercept_only_hac_t_is_the_mean_over_its_bartlett_long_run_variance():
    """With x uncorrelated noise the alpha's HAC variance is, to first order, the Bartlett
    long-run variance of y around its mean divided by n; checked by explicit loops."""
    rng = np.random.default_rng(7)
    y = 0.05 + _ar1(400, 0.5, rng)
    lags = 4
    d = y - y.mean()
    lrv = sum(d[t] * d[t] for t in range(400)) / 400
    for lag in range(1, lags + 1):
        w = 1 - lag / (lags + 1)
        lrv += 2 * w * sum(d[t] * d[t - lag] for t in range(lag, 400)) / 400
    u = d[:, None]
    assert long_run_covariance(u, lags)[0, 0] == pytest.approx(lrv, rel=1e-12)


def test_hac_regression_by_hand_with_loops():
    rng = np.random.default_rng(3)
    n, lags = 300, 3
    x = rng.normal(0, 0.01, n)
    y = 0.0002 + 0.8 * x + 0.004 * _ar1(n, 0.3, rng)
    reg = hac_regression(y, x, lags)
    # OLS by the normal equations
    xm, ym = x.mean(), y.mean()
    beta = ((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum()
    alpha = ym - beta * xm
    assert reg.beta == pytest.approx(beta, rel=1e-10)
    assert reg.alpha == pytest.approx(alpha, rel=1e-9)
    # sandwich with explicit sums: (X'X)^-1 S (X'X)^-1, S Bartlett-weighted
    e = y - alpha - beta * x
    g = [np.array([1.0, x[t]]) * e[t] for t in range(n)]
    s = sum(np.outer(g[t], g[t]) for t in range(n))
    for lag in range(1, lags + 1):
        w = 1 - lag / (lags + 1)
        gam = sum(np.outer(g[t], g[t - lag]) for t in range(lag, n))
        s = s + w * (gam + gam.T)
    xx = np.array([[n, x.sum()], [x.sum(), (x * x).sum()]])
    cov = np.linalg.inv(xx) @ s @ np.linalg.inv(xx)
    assert reg.alpha_se == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-9)
    assert reg.beta_se == pytest.approx(math.sqrt(cov[1, 1]), rel=1e-9)
    assert reg.alpha_t == pytest.approx(alpha / math.sqrt(cov[0, 0]), rel=1e-9)
    assert reg.beta_t == pytest.approx((beta - 1) / math.sqrt(cov[1, 1]), rel=1e-9)
    assert reg.lags == lags and reg.n == n


def test_hac_widens_the_alpha_interval_under_autocorrelated_errors():
    """Positively autocorrelated residuals: the iid (lags=0) t overstates significance."""
    rng = np.random.default_rng(11)
    x = rng.normal(0, 0.01, 2000)
    y = 0.5 * x + 0.01 * _ar1(2000, 0.6, rng)
    assert hac_regression(y, x, 10).alpha_se > 1.5 * hac_regression(y, x, 0).alpha_se


def test_a_pure_beta_strategy_has_no_alpha_and_its_beta(returns):
    """Holding 80% of the market and 20% cash: beta 0.8, alpha 0 to rounding."""
    scaled = exposure_matched(returns, 0.8)
    reg = hac_regression(scaled, returns)
    assert reg.beta == pytest.approx(0.8, abs=1e-12)
    assert abs(reg.alpha) < 1e-15 and reg.r_squared == pytest.approx(1.0)
    rf = np.full(returns.size, 1e-4)
    np.testing.assert_allclose(exposure_matched(returns, 0.8, rf), 0.8 * returns + 0.2e-4)


def test_information_ratio_by_hand():
    a = np.array([0.01, -0.005, 0.002, 0.0, 0.004])
    assert information_ratio(a, 252) == pytest.approx(a.mean() / a.std(ddof=1) * math.sqrt(252))
    assert information_ratio(np.zeros(10)) is None


@settings(max_examples=40, deadline=None)
@given(r=arrays(np.float64, st.integers(3, 80), elements=st.floats(-0.2, 0.2)))
def test_the_active_return_of_buy_and_hold_is_zero(r):
    bh = buy_and_hold(r)
    same = backtest_positions(np.ones_like(r), r, 0.0)
    np.testing.assert_array_equal(same.net - bh.net, np.zeros_like(r))
    assert same.equity[-1] / bh.equity[-1] - 1 == 0.0


def test_memmel_variance_matches_the_sampling_distribution():
    """Known answer: iid bivariate normal with SR 0.10 and 0.05 per period, correlation 0.6,
    500 periods; the spread of 2,000 sample differences matches Memmel's formula."""
    rng = np.random.default_rng(2024)
    n, sims, rho = 500, 2000, 0.6
    mu = np.array([0.10, 0.05]) * 0.01
    cov = 1e-4 * np.array([[1.0, rho], [rho, 1.0]])
    draws = rng.multivariate_normal(mu, cov, size=(sims, n))
    sr = draws.mean(axis=1) / draws.std(axis=1)
    diff = sr[:, 0] - sr[:, 1]
    theory = math.sqrt((2 - 2 * rho + 0.5 * (0.01 + 0.0025 - 2 * 0.1 * 0.05 * rho**2)) / n)
    assert diff.std() == pytest.approx(theory, rel=0.06)
    assert diff.mean() == pytest.approx(0.05, abs=3 * theory / math.sqrt(sims))
    one = memmel_test(draws[0, :, 0], draws[0, :, 1])
    assert one.se == pytest.approx(theory, rel=0.1)


def test_ledoit_wolf_equals_memmel_for_iid_normal_returns():
    rng = np.random.default_rng(5)
    rho = 0.5
    x = rng.multivariate_normal([0.001, 0.0003], 1e-4 * np.array([[1, rho], [rho, 1]]), 40_000)
    lw = sharpe_difference(x[:, 0], x[:, 1], lags=0)
    jk = memmel_test(x[:, 0], x[:, 1])
    assert lw.difference == pytest.approx(jk.difference, rel=1e-3)
    assert lw.se == pytest.approx(jk.se, rel=0.03)
    assert lw.p_value == pytest.approx(1 - 0.5 * math.erfc(-lw.z / math.sqrt(2)), abs=1e-12)


def test_ledoit_wolf_rejects_at_its_level_under_the_null():
    """Equal Sharpe ratios (0.05 per period, correlation 0.7, 1,000 days): the one-sided
    5% test rejects in about 5% of 400 samples."""
    rng = np.random.default_rng(99)
    rejections = 0
    for _ in range(400):
        x = rng.multivariate_normal([5e-4, 5e-4], 1e-4 * np.array([[1, .7], [.7, 1]]), 1000)
        rejections += sharpe_difference(x[:, 0], x[:, 1]).p_value < 0.05
    assert 0.02 <= rejections / 400 <= 0.085


def test_sharpe_difference_finds_a_real_gap():
    rng = np.random.default_rng(1)
    x = rng.multivariate_normal([1.5e-3, 0.0], 1e-4 * np.array([[1, .5], [.5, 1]]), 5000)
    assert sharpe_difference(x[:, 0], x[:, 1]).p_value < 1e-4


def test_bad_pairs_are_typed_errors():
    with pytest.raises(DataValidationError, match="equal length"):
        sharpe_difference([0.1, 0.2], [0.1])
    with pytest.raises(DataValidationError, match="finite"):
        hac_regression([0.1, np.nan, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(DataValidationError, match="constant"):
        hac_regression([0.1, 0.2, 0.3, 0.1], [0.01] * 4)
    assert sharpe_difference(np.zeros(10), np.ones(10)).p_value is None
