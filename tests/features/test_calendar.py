"""The master trading calendar: gaps found and reported, features and windows never across one."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.features import (
    align,
    feature_matrix,
    feature_names,
    find_gaps,
    gap_warning,
    master_calendar,
    window_ends,
)

NAMES = feature_names("full", ["SPY"])


def without(bars: pd.DataFrame, ticker: str, *days: str | pd.Timestamp) -> pd.DataFrame:
    """``bars`` with ``ticker``'s bars on ``days`` deleted."""
    drop = (bars["ticker"] == ticker) & bars["date"].isin(pd.to_datetime(list(days)))
    assert drop.sum() == len(days)
    return bars.loc[~drop].reset_index(drop=True)


def calendar_day(bars: pd.DataFrame, day: str, offset: int) -> pd.Timestamp:
    """The trading day ``offset`` sessions after ``day`` on the bars' calendar."""
    cal = master_calendar(bars["date"])
    return pd.Timestamp(cal[int(np.searchsorted(cal, np.datetime64(day))) + offset])


def test_gaps_are_days_inside_a_tickers_span_only(universe_bars: pd.DataFrame) -> None:
    days = pd.bdate_range("2018-01-01", "2019-12-31")
    cal = master_calendar(universe_bars["date"])
    assert cal.size == len(days)
    # BBB lacks one day; CCC lists late (days before its first bar are not gaps).
    assert find_gaps(universe_bars) == {"BBB": [days[300].date()]}
    assert find_gaps(universe_bars, tickers=["AAA", "CCC", "MKT"]) == {}


def test_align_puts_every_ticker_on_the_calendar(universe_bars: pd.DataFrame) -> None:
    bars = universe_bars.sort_values(["ticker", "date"]).reset_index(drop=True)
    cal = master_calendar(bars["date"])
    aligned = align(bars, cal)
    assert list(aligned.columns) == ["ticker", "date", "session",
                                     *[c for c in bars.columns if c not in ("ticker", "date")]]
    for ticker, rows in aligned.groupby("ticker"):
        s = rows["session"].to_numpy()
        assert (np.diff(s) == 1).all(), ticker  # one row per calendar day of its span
        assert (cal[s] == rows["date"].to_numpy()).all()
    gap = aligned[aligned["close"].isna()]
    assert gap[["ticker", "date"]].values.tolist() == [["BBB", cal[300]]]
    present = aligned.dropna(subset=["close"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(present.drop(columns="session"), bars, check_dtype=False)


def test_a_missing_spy_day_is_reported_and_costs_four_ibb_rows(bars: pd.DataFrame) -> None:
    gap = "2010-03-10"
    base = feature_matrix(bars, ["IBB"], ["SPY"])
    gapped = feature_matrix(without(bars, "SPY", gap), ["IBB"], ["SPY"])
    assert base.gaps == {} and base.dropped_rows == {} and base.warning() is None
    assert gapped.gaps == {"SPY": [dt.date(2010, 3, 10)]}
    assert gapped.calendar_days == base.calendar_days  # IBB still trades that day
    # Lost: the gap day (no SPY features), the next day (no SPY 1-day return) and the days
    # whose SPY 5- and 20-day returns start on the gap. Not sixty rows of 60-day beta.
    lost = set(base.frame["date"]) - set(gapped.frame["date"])
    assert lost == {calendar_day(bars, gap, k) for k in (0, 1, 5, 20)}
    assert gapped.dropped_rows == {"IBB": 4}
    assert gapped.warning() == ("warning: calendar gaps: SPY lacks 1 day (2010-03-10); "
                                "4 target rows dropped (IBB 4)")
    assert gapped.metadata() == {"calendar_days": base.calendar_days,
                                 "gaps": {"SPY": ["2010-03-10"]}, "dropped_rows": {"IBB": 4}}
    # Rows whose lookbacks miss the gap are untouched; the 60-day beta and 20-day SPY
    # volatility of the sixty days after it are computed from the days present.
    a = base.frame.set_index("date")
    b = gapped.frame.set_index("date")
    before = a.index < pd.Timestamp(gap)
    pd.testing.assert_frame_equal(a[before], b[b.index < pd.Timestamp(gap)])
    late = a.index > calendar_day(bars, gap, 60)
    pd.testing.assert_frame_equal(a[late], b[b.index > calendar_day(bars, gap, 60)],
                                  check_exact=False, rtol=1e-9)
    near = b.index[(b.index > pd.Timestamp(gap)) & (b.index <= calendar_day(bars, gap, 60))]
    np.testing.assert_allclose(b.loc[near, "beta_60_spy"], a.loc[near, "beta_60_spy"],
                               rtol=0.1)
    assert not np.allclose(b.loc[near, "beta_60_spy"], a.loc[near, "beta_60_spy"], rtol=1e-9)


def test_no_window_spans_the_missing_day(bars: pd.DataFrame) -> None:
    gap, window = "2010-03-10", 20
    frame = feature_matrix(without(bars, "SPY", gap), ["IBB"], ["SPY"]).frame
    sessions = frame["session"].to_numpy()
    dates = frame["date"].to_numpy()

    def spans(ends: np.ndarray) -> list[tuple[np.datetime64, np.datetime64, int]]:
        return [(dates[e - window + 1], dates[e], int(sessions[e] - sessions[e - window + 1]))
                for e in ends]

    rows_only = window_ends(frame["ticker"], window)
    ends = window_ends(frame["ticker"], window, sessions)
    # By rows alone, windows would run across the missing rows (more than W-1 days wide) ...
    assert any(width > window - 1 for _, _, width in spans(rows_only))
    # ... with the calendar, every window is W consecutive days and none contains the gap.
    assert all(width == window - 1 for _, _, width in spans(ends))
    day = np.datetime64(gap)
    assert not any(first <= day <= last for first, last, _ in spans(ends))
    # Exactly the windows touching a lost row (gap day, +1, +5, +20) are not formed.
    touched = {calendar_day(bars, gap, k) for k in range(0, 20 + window)}
    assert len(rows_only) - len(ends) == len(touched) - 4  # 4 of those days have no row


def test_a_missing_target_day_leaves_the_day_before_without_a_label(bars: pd.DataFrame) -> None:
    gap = "2012-06-13"
    before = calendar_day(bars, gap, -1)
    m = feature_matrix(without(bars, "IBB", gap), ["IBB"], ["SPY"])
    assert m.gaps == {"IBB": [dt.date(2012, 6, 13)]}
    row = m.frame.set_index("date").loc[before]
    # The next day's close is unknown, so its label is too: never a two-day return instead.
    assert np.isnan(row["forward_return"]) and np.isnan(row["label"])
    # Lost after the gap: IBB's own 1-day return and 5-day volatility (days +1..+5), and the
    # 10- and 20-day returns that start on the gap; the gap day itself is a gap, not a loss.
    lost = {calendar_day(bars, gap, k) for k in (1, 2, 3, 4, 5, 10, 20)}
    full = feature_matrix(bars, ["IBB"], ["SPY"]).frame
    assert set(full["date"]) - set(m.frame["date"]) == lost | {pd.Timestamp(gap)}
    assert m.dropped_rows == {"IBB": len(lost)}


def test_the_warning_names_a_few_tickers_and_days() -> None:
    days = [dt.date(2020, 1, d) for d in (2, 3, 6, 7)]
    assert gap_warning({}, {}) is None
    line = gap_warning({"A": days, "B": days[:1], "C": days[:2], "D": days[:1]},
                       {"A": 3, "B": 1, "C": 2, "E": 5})
    assert line == ("warning: calendar gaps: A lacks 4 days (2020-01-02, 2020-01-03, "
                    "2020-01-06, +1 more); B lacks 1 day (2020-01-02); C lacks 2 days "
                    "(2020-01-02, 2020-01-03); 1 more tickers have gaps; 11 target rows "
                    "dropped (A 3, B 1, C 2, +1 more)")


@settings(max_examples=15, deadline=None)
@given(offsets=st.lists(st.integers(min_value=80, max_value=300), min_size=1, max_size=3,
                        unique=True))
def test_spy_gaps_only_touch_rows_whose_lookback_holds_them(short_bars: pd.DataFrame,
                                                            offsets: list[int]) -> None:
    spy_days = np.sort(short_bars.loc[short_bars["ticker"] == "SPY", "date"].unique())
    deleted = sorted(pd.Timestamp(spy_days[o]) for o in offsets)
    base = feature_matrix(short_bars, ["IBB"], ["SPY"])
    gapped = feature_matrix(without(short_bars, "SPY", *deleted), ["IBB"], ["SPY"])
    assert gapped.gaps == {"SPY": [d.date() for d in deleted]}
    a, b = base.frame, gapped.frame
    # Every lost row is counted, and no row sits on a deleted day.
    assert gapped.dropped_rows.get("IBB", 0) == len(a) - len(b) >= 2 * len(deleted)
    assert not set(b["date"]) & set(deleted)
    assert set(b["date"]) <= set(a["date"])
    # Before the first gap, nothing changes; 60 sessions after the last, nothing but rounding.
    first, last = deleted[0], calendar_day(short_bars, str(deleted[-1].date()), 60)
    pd.testing.assert_frame_equal(a[a["date"] < first].reset_index(drop=True),
                                  b[b["date"] < first].reset_index(drop=True))
    pd.testing.assert_frame_equal(a[a["date"] > last].reset_index(drop=True),
                                  b[b["date"] > last].reset_index(drop=True),
                                  check_exact=False, rtol=1e-9)
    # Every full window of the gapped frame is W consecutive calendar days.
    ends = window_ends(b["ticker"], 10, b["session"])
    s = b["session"].to_numpy()
    assert (s[ends] - s[ends - 9] == 9).all()
    assert all(not ((b["date"].iloc[e - 9] <= d) & (d <= b["date"].iloc[e]))
               for e in ends for d in deleted)


def test_gapless_bars_give_the_same_rows_as_each_ticker_alone(
        universe_bars: pd.DataFrame) -> None:
    # Pooling does not move a ticker's calendar when the calendars agree.
    pooled = feature_matrix(universe_bars, ["AAA", "CCC"], ["MKT"])
    alone = feature_matrix(universe_bars, ["AAA"], ["MKT"])
    assert pooled.gaps == {} == alone.gaps
    got = pooled.frame[pooled.frame["ticker"] == "AAA"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, alone.frame, check_exact=False, rtol=1e-9)
    with pytest.raises(ValueError, match="at least 1"):
        window_ends(got["ticker"], 0, got["session"])
