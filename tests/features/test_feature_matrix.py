"""The feature matrix: definitions, labels, universe pooling, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.errors import DataValidationError
from finmlops.features import (
    CORE_FEATURES,
    build_features,
    feature_names,
    make_windows,
    training_mask,
    window_ends,
)


def test_columns_order_and_no_missing_values(bars: pd.DataFrame) -> None:
    frame = build_features(bars, ["IBB"], ["SPY"], horizon=1)
    names = feature_names("full", ["SPY"])
    assert list(frame.columns) == ["date", "ticker", "session", *names, "forward_return",
                                   "label"]
    # No gaps in the bundled bars: after warm-up, IBB's rows are consecutive calendar days.
    assert (np.diff(frame["session"].to_numpy()) == 1).all()
    assert set(CORE_FEATURES) <= set(names)
    assert len(names) == len(set(names)) >= 20
    assert np.isfinite(frame[names].to_numpy()).all()
    assert frame["date"].is_monotonic_increasing
    assert (frame["ticker"] == "IBB").all()
    # The first row is the first day on which every feature has warmed up (60-day beta).
    first_ibb = bars.loc[bars["ticker"] == "IBB", "date"].min()
    assert frame["date"].iloc[0] > first_ibb + pd.Timedelta(days=80)


def test_feature_values_match_their_definitions(bars: pd.DataFrame) -> None:
    frame = build_features(bars, ["IBB"], ["SPY"], horizon=1).set_index("date")
    ibb = bars[bars["ticker"] == "IBB"].set_index("date")
    spy = bars[bars["ticker"] == "SPY"].set_index("date")
    day = frame.index[500]
    p = ibb["adj_close"]
    i = p.index.get_loc(day)
    row = frame.loc[day]
    assert row["ret_5"] == pytest.approx(np.log(p.iloc[i] / p.iloc[i - 5]))
    r1 = np.log(p / p.shift(1))
    assert row["vol_20"] == pytest.approx(r1.iloc[i - 19:i + 1].std())
    window = p.iloc[i - 19:i + 1]
    lower = window.mean() - 2 * window.std()
    assert row["bb_pct_b"] == pytest.approx((p.iloc[i] - lower) / (4 * window.std()))
    hl = (ibb["high"] - ibb["low"]) / ibb["close"]
    assert row["hl_range"] == pytest.approx(hl.loc[day])
    s = spy["adj_close"]
    spy_r20 = np.log(s.loc[day] / s.iloc[s.index.get_loc(day) - 20])
    assert row["spy_ret_20"] == pytest.approx(spy_r20)
    assert row["rel_spy_ret_20"] == pytest.approx(row["ret_20"] - spy_r20)
    assert frame["rsi_14"].between(0, 1).all()
    assert frame["corr_60_spy"].abs().max() <= 1


def test_label_is_the_direction_of_the_forward_return(bars: pd.DataFrame) -> None:
    for horizon in (1, 5):
        frame = build_features(bars, ["IBB"], ["SPY"], horizon=horizon).set_index("date")
        p = bars[bars["ticker"] == "IBB"].set_index("date")["adj_close"]
        expected = (p.shift(-horizon) / p - 1).reindex(frame.index)
        np.testing.assert_allclose(frame["forward_return"], expected, rtol=1e-12)
        known = frame["label"].notna()
        assert known.sum() == len(frame) - horizon  # only the last h days are unknown
        assert ((frame.loc[known, "forward_return"] > 0) == (frame.loc[known, "label"] == 1)).all()


def test_universe_pooled_equals_each_ticker_alone(universe_bars: pd.DataFrame) -> None:
    bars = universe_bars
    pooled = build_features(bars, ["AAA", "BBB", "CCC"], ["MKT"], horizon=2)
    for t in ("AAA", "BBB", "CCC"):
        alone = build_features(bars, [t], ["MKT"], horizon=2)
        got = pooled[pooled["ticker"] == t].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, alone, check_exact=False, rtol=1e-9)
    assert list(pooled["ticker"].unique()) == ["AAA", "BBB", "CCC"]


def test_unknown_ticker_and_missing_columns_are_readable_errors(bars: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match="XBI"):
        build_features(bars, ["XBI"], ["SPY"])
    with pytest.raises(DataValidationError, match="adj_close"):
        build_features(bars.drop(columns="adj_close"), ["IBB"], ["SPY"])


def test_dead_band_drops_small_moves_from_training_only(bars: pd.DataFrame) -> None:
    frame = build_features(bars, ["IBB"], ["SPY"])
    mask = training_mask(frame, dead_band=0.002)
    fwd = frame["forward_return"]
    assert not mask[fwd.isna().to_numpy()].any()
    assert (fwd[mask].abs() >= 0.002).all()
    assert mask.sum() == int((fwd.abs() >= 0.002).sum())
    assert training_mask(frame, 0.0).sum() == fwd.notna().sum()


def test_windows_end_at_the_row_and_never_cross_tickers() -> None:
    tickers = np.array(["A"] * 5 + ["B"] * 3)
    values = np.arange(16, dtype=np.float64).reshape(8, 2)
    ends = window_ends(tickers, 3)
    assert ends.tolist() == [2, 3, 4, 7]
    w = make_windows(values, ends, 3)
    assert w.shape == (4, 3, 2) and w.dtype == np.float32
    np.testing.assert_array_equal(w[0], values[0:3])
    np.testing.assert_array_equal(w[-1], values[5:8])


def test_windows_are_not_formed_across_a_missing_session() -> None:
    # A's session 3 is missing (a gap, or a row without every feature): rows 0..4 of A sit on
    # sessions 0, 1, 2, 4, 5, so the only full 3-day window of A ends at session 2.
    tickers = np.array(["A"] * 5 + ["B"] * 3)
    sessions = np.array([0, 1, 2, 4, 5, 7, 8, 9])
    assert window_ends(tickers, 3).tolist() == [2, 3, 4, 7]  # by rows alone: across the gap
    assert window_ends(tickers, 3, sessions).tolist() == [2, 7]
    assert window_ends(tickers, 2, sessions).tolist() == [1, 2, 4, 6, 7]
    assert window_ends(tickers, 1, sessions).tolist() == list(range(8))
    with pytest.raises(ValueError, match="length"):
        window_ends(tickers, 3, sessions[:-1])


@settings(max_examples=20, deadline=None)
@given(cut=st.integers(min_value=120, max_value=360), seed=st.integers(0, 2**32 - 1))
def test_changing_bars_after_t_never_changes_features_at_t(short_bars: pd.DataFrame, cut: int,
                                                           seed: int) -> None:
    dates = np.sort(short_bars["date"].unique())
    t = dates[cut]
    rng = np.random.default_rng(seed)
    changed = short_bars.copy()
    later = changed["date"] > t
    factor = rng.uniform(0.5, 1.5, size=later.sum())
    for col in ("open", "high", "low", "close", "adj_close"):
        changed.loc[later, col] = changed.loc[later, col] * factor
    changed.loc[later, "volume"] = rng.integers(1, 10**8, size=later.sum())
    names = feature_names("full", ["SPY"])
    before = build_features(short_bars, ["IBB", "SPY"], ["SPY"])
    after = build_features(changed, ["IBB", "SPY"], ["SPY"])
    a = before[before["date"] <= t].reset_index(drop=True)
    b = after[after["date"] <= t].reset_index(drop=True)
    pd.testing.assert_frame_equal(a[["date", "ticker", *names]], b[["date", "ticker", *names]])
