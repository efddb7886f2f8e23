"""Walk-forward splits: purge + embargo, disjoint covering test blocks, universe-aware."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.errors import ConfigError
from finmlops.evaluation import holdout_split, label_known_by, walk_forward


@st.composite
def date_index(draw: st.DrawFn) -> np.ndarray:
    """Business days over 3-9 years with random holes, repeated per ticker (a universe)."""
    start = draw(st.dates(dt.date(1995, 1, 1), dt.date(2020, 12, 31)))
    years = draw(st.integers(3, 9))
    days = pd.bdate_range(start, periods=252 * years + draw(st.integers(0, 251)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    days = days[rng.random(len(days)) > draw(st.sampled_from([0.0, 0.05, 0.3]))]
    tickers = draw(st.integers(1, 3))
    # Each ticker may start later (a listing); rows arrive in ticker order, like a frame.
    parts = [days[int(rng.integers(0, len(days) // 3)) if k else 0:] for k in range(tickers)]
    return np.concatenate([p.to_numpy() for p in parts])


@settings(max_examples=80, deadline=None)
@given(dates=date_index(), horizon=st.integers(1, 10), embargo=st.integers(0, 10),
       min_years=st.integers(1, 3), block=st.integers(1, 2))
def test_walk_forward_rules_hold_for_any_calendar(dates: np.ndarray, horizon: int, embargo: int,
                                                  min_years: int, block: int) -> None:
    folds = walk_forward(dates, horizon=horizon, min_train_years=min_years,
                         test_block_years=block, embargo_days=embargo)
    days = np.unique(dates.astype("datetime64[D]"))
    pos = np.searchsorted(days, dates.astype("datetime64[D]"))
    if not folds:
        return
    seen = np.zeros(len(dates), dtype=np.int64)
    previous_train = np.array([], dtype=np.int64)
    for f in folds:
        test_start = int(pos[f.test].min())
        # Every train label window (t+1 .. t+horizon) ends before test start minus embargo.
        assert int(pos[f.train].max()) + horizon < test_start - embargo
        # The train set is everything that rule allows (sizes add up) and it only grows.
        assert f.train.size == int((pos < test_start - embargo - horizon).sum())
        assert np.isin(previous_train, f.train).all()
        previous_train = f.train
        # Test blocks are calendar-year blocks, split by date (all tickers of a day together).
        years = dates[f.test].astype("datetime64[Y]").astype(int) + 1970
        assert years.min() == f.test_start.year and years.max() < f.test_start.year + block
        assert f.test.size == int(np.isin(pos, np.unique(pos[f.test])).sum())
        seen[f.test] += 1
    first_test = min(pos[f.test].min() for f in folds)
    # Disjoint and covering: every row from the first test day on is tested exactly once.
    assert (seen[pos >= first_test] == 1).all()
    assert (seen[pos < first_test] == 0).all()
    assert sum(f.test.size for f in folds) == int((pos >= first_test).sum())
    # At least min_train_years of data precede the first test block, which starts a year.
    first_day = days[0].astype(dt.date)
    assert folds[0].test_start >= dt.date(first_day.year + min_years, 1, 1)


def test_ibb_calendar_gives_yearly_folds_from_the_fifth_year() -> None:
    dates = pd.bdate_range("2001-05-09", "2026-05-01").to_numpy()
    folds = walk_forward(dates, horizon=1, min_train_years=4, embargo_days=5)
    assert [f.test_start.year for f in folds] == list(range(2006, 2027))
    assert folds[0].test_start == dt.date(2006, 1, 2)
    # 5 embargo days + 1 horizon day + the train end itself sit between train and test.
    gap = np.busday_count(folds[0].train_end, folds[0].test_start)
    assert gap == 7


@settings(max_examples=60, deadline=None)
@given(dates=date_index(), fraction=st.floats(0.05, 0.45), horizon=st.integers(1, 10))
def test_holdout_is_the_purged_time_ordered_tail(dates: np.ndarray, fraction: float,
                                                horizon: int) -> None:
    rows = np.arange(len(dates))
    fit, val = holdout_split(dates, rows, fraction=fraction, horizon=horizon)
    days = np.unique(dates.astype("datetime64[D]"))
    pos = np.searchsorted(days, dates.astype("datetime64[D]"))
    assert val.size > 0 and not np.isin(fit, val).any()
    if fit.size:
        assert pos[fit].max() + horizon < pos[val].min()
    n_val_days = np.unique(pos[val]).size
    assert n_val_days == max(1, round(days.size * fraction))


def test_label_known_by_the_cutoff() -> None:
    dates = pd.bdate_range("2018-12-20", "2019-01-10").to_numpy()
    rows = label_known_by(dates, dt.date(2018, 12, 31), horizon=1)
    assert pd.Timestamp(dates[rows].max()).date() == dt.date(2018, 12, 28)
    assert label_known_by(dates, None, horizon=2).size == len(dates) - 2


def test_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        walk_forward(np.array(["2020-01-01"], dtype="datetime64[D]"), horizon=0)
    with pytest.raises(ConfigError):
        holdout_split(np.array(["2020-01-01"], dtype="datetime64[D]"), [0], fraction=1.0)
