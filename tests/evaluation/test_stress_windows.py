"""Stress windows: inclusive date slicing, restarted equity, carried-over positions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from finmlops.config import EvaluationSettings, StressWindow
from finmlops.evaluation import backtest_positions, buy_and_hold, stress_metrics, window_mask


def test_window_mask_is_inclusive_at_both_ends():
    dates = pd.bdate_range("2020-02-17", "2020-03-27").to_numpy()
    mask = window_mask(dates, dt.date(2020, 2, 19), dt.date(2020, 3, 23))
    chosen = dates[mask].astype("datetime64[D]")
    assert str(chosen[0]) == "2020-02-19" and str(chosen[-1]) == "2020-03-23"
    assert mask.sum() == len(pd.bdate_range("2020-02-19", "2020-03-23"))


def test_every_metric_per_window_and_line():
    dates = pd.bdate_range("2019-12-02", periods=120).to_numpy()
    r = np.random.default_rng(5).normal(0, 0.02, 120)
    pos = (np.arange(120) % 3 == 0).astype(float)
    strat = backtest_positions(pos, r, 0.001, dates=dates)
    bh = buy_and_hold(r, dates)
    windows = {
        "covid_crash": StressWindow(start=dt.date(2020, 2, 19), end=dt.date(2020, 3, 23)),
        "later": StressWindow(start=dt.date(2025, 1, 1), end=dt.date(2025, 6, 1)),
    }
    out = stress_metrics({"strategy": strat, "buy_and_hold": bh}, windows)
    assert out["later"] == {"strategy": None, "buy_and_hold": None}
    mask = window_mask(strat.dates, windows["covid_crash"].start, windows["covid_crash"].end)
    m = out["covid_crash"]["strategy"]
    assert m is not None
    assert m["days"] == mask.sum()
    assert m["total_return"] == pytest.approx(np.prod(1 + strat.net[mask]) - 1, rel=1e-12)
    assert out["covid_crash"]["buy_and_hold"]["total_return"] == pytest.approx(
        np.prod(1 + r[mask]) - 1, rel=1e-12)
    # the position held on entering the window is not charged again
    assert m["cost_drag"] == pytest.approx(strat.cost[mask].mean() * 252, rel=1e-12)
    assert set(m) >= {"sharpe", "sortino", "calmar", "max_drawdown", "psr", "dsr", "hit_rate"}


def test_default_windows_are_2008_covid_and_2022():
    assert set(EvaluationSettings().stress_windows) == {"gfc_2008", "covid_crash", "bear_2022"}
