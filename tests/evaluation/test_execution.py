"""Execution timing: the return a position decided at a close earns, per setting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.errors import DataValidationError
from finmlops.evaluation import EXECUTIONS, backtest_positions, execution_returns


def _bars() -> pd.DataFrame:
    # adj_close = close * 0.5 on the first two days (a dividend adjusts earlier prices)
    return pd.DataFrame({
        "ticker": "X", "date": pd.bdate_range("2020-01-01", periods=5),
        "open": [10.0, 11.0, 12.0, 10.0, 13.0], "close": [10.5, 11.5, 11.0, 12.0, 12.5],
        "adj_close": [5.25, 5.75, 11.0, 12.0, 12.5],
    })


def test_each_setting_by_hand():
    b = _bars()
    same = execution_returns(b, "same_close")["return"].to_numpy()
    np.testing.assert_allclose(same[:4], [5.75 / 5.25 - 1, 11 / 5.75 - 1, 12 / 11 - 1,
                                          12.5 / 12 - 1])
    nxt = execution_returns(b, "next_close")["return"].to_numpy()
    np.testing.assert_allclose(nxt[:3], same[1:4])
    adj_open = b["open"] * b["adj_close"] / b["close"]
    opn = execution_returns(b, "next_open")["return"].to_numpy()
    np.testing.assert_allclose(opn[:3], adj_open[2:5].to_numpy() / adj_open[1:4].to_numpy() - 1)
    assert np.isnan(opn[3:]).all() and np.isnan(nxt[3:]).all() and np.isnan(same[4])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 40), seed=st.integers(0, 10_000), split=st.integers(1, 39))
def test_a_one_day_delay_shifts_returns_exactly_one_day_per_ticker(n, seed, split):
    rng = np.random.default_rng(seed)
    frames = []
    for t in ("A", "B"):
        close = 50 * np.cumprod(1 + rng.normal(0, 0.02, n))
        frames.append(pd.DataFrame({"ticker": t, "date": pd.bdate_range("2021-01-01",
                                                                        periods=n),
                                    "open": close * (1 + rng.normal(0, 0.005, n)),
                                    "close": close, "adj_close": close * 0.9}))
    bars = pd.concat(frames[::-1], ignore_index=True)  # unsorted input
    same = execution_returns(bars, "same_close")
    late = execution_returns(bars, "next_close")
    for _, g in same.groupby("ticker"):
        got = late.loc[g.index, "return"].to_numpy()
        np.testing.assert_array_equal(got[:-1], g["return"].to_numpy()[1:])
    # a position decided at t earns the delayed return: net[t] = pos[t] * r_late[t] - cost
    g = late[late["ticker"] == "A"].dropna()
    pos = (np.arange(len(g)) % 2).astype(float)
    res = backtest_positions(pos, g["return"], 0.0)
    np.testing.assert_array_equal(res.net, pos * g["return"].to_numpy())


def test_bad_bars_are_typed_errors():
    b = _bars()
    with pytest.raises(DataValidationError, match="lack columns: open"):
        execution_returns(b.drop(columns="open"), "next_open")
    assert execution_returns(b.drop(columns="open"), "same_close").shape[0] == 5
    with pytest.raises(DataValidationError, match="one of"):
        execution_returns(b, "tomorrow")  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="repeat"):
        execution_returns(pd.concat([b, b]), "same_close")
    with pytest.raises(DataValidationError, match="positive"):
        execution_returns(b.assign(adj_close=-1.0), "same_close")
    assert EXECUTIONS == ("same_close", "next_open", "next_close")
