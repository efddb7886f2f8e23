"""The tear sheet's figures: calendar returns, rolling statistics, drawdown episodes, VaR."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from finmlops.evaluation import calendar_returns, distribution, drawdown_episodes, rolling_stats


def test_calendar_returns_compound_within_months_and_years():
    dates = pd.to_datetime(["2020-01-30", "2020-01-31", "2020-02-03", "2021-03-01"]).to_numpy()
    r = np.array([0.1, -0.05, 0.02, 0.03])
    cal = calendar_returns(dates, r)
    assert cal["monthly"] == [
        {"year": 2020, "month": 1, "return": pytest.approx(1.1 * 0.95 - 1), "days": 2},
        {"year": 2020, "month": 2, "return": pytest.approx(0.02), "days": 1},
        {"year": 2021, "month": 3, "return": pytest.approx(0.03), "days": 1}]
    assert cal["yearly"][0]["return"] == pytest.approx(1.1 * 0.95 * 1.02 - 1)
    assert cal["yearly"][0]["return"] != pytest.approx(0.1 - 0.05 + 0.02)  # not summed


def test_rolling_stats_match_a_direct_window_computation(returns):
    bench = np.random.default_rng(2).normal(0.0003, 0.01, returns.size)
    roll = rolling_stats(returns, bench, 60, 252)
    assert roll["sharpe"][:59] == [None] * 59
    for t in (59, 200, returns.size - 1):
        w, b = returns[t - 59:t + 1], bench[t - 59:t + 1]
        assert roll["sharpe"][t] == pytest.approx(w.mean() / w.std(ddof=1) * math.sqrt(252),
                                                  rel=1e-4)
        assert roll["volatility"][t] == pytest.approx(w.std(ddof=1) * math.sqrt(252), rel=1e-4)
        assert roll["beta"][t] == pytest.approx(np.cov(w, b)[0, 1] / b.var(ddof=1), rel=1e-4)


def test_drawdown_episodes_by_hand():
    dates = pd.bdate_range("2020-01-01", periods=9).to_numpy()
    equity = np.array([1.1, 1.0, 0.9, 1.2, 1.15, 1.2, 1.3, 1.0, 1.1])
    eps = drawdown_episodes(dates, equity, top=5)
    assert [round(e["depth"], 6) for e in eps] == [round(1.0 / 1.3 - 1, 6),
                                                   round(0.9 / 1.1 - 1, 6),
                                                   round(1.15 / 1.2 - 1, 6)]
    deepest, second = eps[0], eps[1]
    assert deepest["peak"] == str(dates[6])[:10] and deepest["trough"] == str(dates[7])[:10]
    assert deepest["recovery"] is None and deepest["days"] == 2 and not deepest["recovered"]
    assert second["peak"] == str(dates[0])[:10] and second["trough"] == str(dates[2])[:10]
    assert second["recovery"] == str(dates[3])[:10] and second["days"] == 3
    assert drawdown_episodes(dates, np.linspace(1, 2, 9)) == []


def test_historical_var_and_cvar():
    r = np.linspace(-0.10, 0.09, 20)  # -10%, -9%, ..., 9%
    d = distribution(r, bins=10, levels=(0.9,))
    q = np.quantile(r, 0.1)
    assert d["var"]["0.9"] == pytest.approx(-q)
    assert d["cvar"]["0.9"] == pytest.approx(-r[r <= q].mean())
    assert d["cvar"]["0.9"] >= d["var"]["0.9"]
    assert sum(d["histogram"]["counts"]) == 20 and d["worst"] == pytest.approx(-0.10)
