"""``finmlops.data.check_bars``: what ``data validate`` adds to the schema checks — each rule
holds for every input (hypothesis), and each failure names what is wrong."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.data import check_bars
from finmlops.data.quality import weekdays_between

RULES = {"max_age_days": 4, "recent_days": 20, "max_abs_return": 0.5}
START = dt.date(2021, 1, 4)


def _bars(n: int, seed: int, tickers: tuple[str, ...] = ("IBB", "SPY")) -> pd.DataFrame:
    days = pd.bdate_range(START, periods=n)
    rng = np.random.default_rng(seed)
    frames = []
    for t in tickers:
        close = 100 * np.cumprod(1 + rng.normal(0, 0.02, n))
        frames.append(pd.DataFrame({"ticker": t, "date": days, "open": close,
                                    "high": close * 1.01, "low": close * 0.99,
                                    "close": close, "adj_close": close, "volume": 1000}))
    return pd.concat(frames, ignore_index=True)


def _last(bars: pd.DataFrame) -> dt.date:
    return bars["date"].max().date()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(30, 120), seed=st.integers(0, 10_000), lag=st.integers(0, 12))
def test_fresh_clean_bars_pass_and_staleness_is_counted_in_weekdays(n: int, seed: int,
                                                                    lag: int) -> None:
    bars = _bars(n, seed)
    as_of = _last(bars) + dt.timedelta(days=lag)
    report = check_bars(bars, ["IBB", "SPY"], as_of, **RULES)
    stale = weekdays_between(_last(bars), as_of) > RULES["max_age_days"]
    assert report.ok is not stale
    assert all("stale data" in p for p in report.problems)
    assert report.newest == {"IBB": _last(bars), "SPY": _last(bars)}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(40, 120), seed=st.integers(0, 10_000), data=st.data())
def test_a_missing_day_fails_when_recent_and_is_reported_when_older(n: int, seed: int,
                                                                    data: st.DataObject) -> None:
    bars = _bars(n, seed)
    spy_days = bars.loc[bars["ticker"] == "SPY", "date"].reset_index(drop=True)
    i = data.draw(st.integers(1, n - 2))  # inside SPY's own span
    gapped = bars.drop(bars.index[(bars["ticker"] == "SPY") & (bars["date"] == spy_days[i])])
    report = check_bars(gapped, ["IBB", "SPY"], _last(bars), **RULES)
    recent = i >= n - RULES["recent_days"]
    assert report.ok is not recent
    if recent:
        (problem,) = report.problems
        assert problem.startswith("SPY: 1 calendar gap(s) in the last 20 sessions (")
        assert str(spy_days[i].date()) in problem
    else:
        assert report.notes == ["SPY: 1 older calendar gap(s) (reported by the features, "
                                "never bridged)"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), jump=st.floats(0.51, 5.0), data=st.data())
def test_an_implausible_move_fails(seed: int, jump: float, data: st.DataObject) -> None:
    bars = _bars(60, seed)
    i = data.draw(st.integers(1, 59))
    ibb = bars.index[bars["ticker"] == "IBB"]
    rows = ibb[i:]
    # Scale day i onward so that day i's own adj_close move is exactly ``jump`` (scaling by
    # 1 + jump alone would add it to the day's noise, which can pull the move back below 0.5).
    before, at = bars.loc[ibb[i - 1], "adj_close"], bars.loc[ibb[i], "adj_close"]
    bars.loc[rows, ["open", "high", "low", "close", "adj_close"]] *= (1 + jump) * before / at
    report = check_bars(bars, ["IBB", "SPY"], _last(bars), **RULES)
    (problem,) = report.problems
    assert problem.startswith("IBB: adj_close moved +") and "unadjusted split" in problem


def test_partial_and_missing_tickers_fail() -> None:
    bars = _bars(40, 1)
    short = bars.drop(bars.index[(bars["ticker"] == "SPY")][-1:])
    report = check_bars(short, ["IBB", "SPY", "QQQ"], _last(bars), **RULES)
    assert report.problems[0] == "no bars for QQQ"
    assert any(p.startswith("tickers end on different days (IBB ") for p in report.problems)
    future = check_bars(bars, ["IBB", "SPY"], _last(bars) - dt.timedelta(days=3), **RULES)
    assert any("after the as-of date" in p for p in future.problems)
    assert future.to_json()["ok"] is False
