"""The master trading calendar of a set of tickers, each ticker's gaps on it, and bars aligned
to it.

The master calendar is the union of the days on which any of the tickers has a bar. A ticker's
*gap* is a calendar day between its own first and last bar on which it has none (days before a
listing or after the last bar are not gaps). Aligning puts every ticker on the calendar: one row
per calendar day of its span, numbered by ``session`` (the day's position in the calendar), with
missing values on its gap days, so no return or window silently reaches across a missing day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

SESSION = "session"
"""Column holding a row's position in the master calendar (consecutive days differ by 1)."""

Days = npt.NDArray[np.datetime64]


def master_calendar(dates: pd.Series | npt.ArrayLike) -> Days:
    """The sorted distinct days of ``dates`` (midnight, in the dates' own datetime64 unit)."""
    days = pd.to_datetime(pd.Series(np.asarray(dates))).dt.normalize()
    out: Days = np.unique(days.to_numpy())
    return out


def _spans(bars: pd.DataFrame, calendar: Days) -> tuple[list[str], npt.NDArray[np.int64],
                                                         npt.NDArray[np.int64]]:
    """Tickers in order of appearance and each one's first and last session."""
    first = bars.groupby("ticker", sort=False)["date"].min()
    last = bars.groupby("ticker", sort=False)["date"].max()
    start = np.searchsorted(calendar, first.to_numpy())
    stop = np.searchsorted(calendar, last.to_numpy())
    return [str(t) for t in first.index], start.astype(np.int64), stop.astype(np.int64)


def align(bars: pd.DataFrame, calendar: Days) -> pd.DataFrame:
    """``bars`` (sorted by ``ticker, date``, days on ``calendar``) with one row per calendar day
    of each ticker's span: a ``session`` column after ``date``, and NaN bar values on gaps.

    Row order stays ``ticker, date``; a frame without gaps keeps its values unchanged.
    """
    tickers, start, stop = _spans(bars, calendar)
    lengths = stop - start + 1
    owner = np.repeat(np.arange(len(tickers)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    sessions = np.repeat(start, lengths) + offsets
    grid = pd.DataFrame({"ticker": np.asarray(tickers, dtype=object)[owner],
                         "date": calendar[sessions], SESSION: sessions.astype(np.int64)})
    out = grid.merge(bars, on=["ticker", "date"], how="left", validate="one_to_one", sort=False)
    columns = ["ticker", "date", SESSION, *[c for c in bars.columns if c not in ("ticker", "date")]]
    return out.loc[:, columns]


def find_gaps(bars: pd.DataFrame, calendar: Days | None = None,
              tickers: Sequence[str] | None = None) -> dict[str, list[dt.date]]:
    """Per ticker (of ``tickers``, default all) with at least one gap, its missing days in order.

    ``calendar`` defaults to the master calendar of ``bars``.
    """
    frame = bars if tickers is None else bars[bars["ticker"].isin(list(tickers))]
    frame = frame.loc[:, ["ticker", "date"]].assign(date=pd.to_datetime(frame["date"]))
    if frame.empty:
        return {}
    cal = master_calendar(frame["date"]) if calendar is None else calendar
    aligned = align(frame.assign(present=True), cal)
    missing = aligned[aligned["present"].isna()]
    out: dict[str, list[dt.date]] = {}
    for ticker, days in missing.groupby("ticker", sort=True)["date"]:
        out[str(ticker)] = [d.date() for d in pd.to_datetime(days)]
    return out
