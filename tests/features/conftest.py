"""Fixtures for feature tests: real IBB/SPY bars from the bundled files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BUNDLED = Path(__file__).resolve().parents[2] / "src" / "finmlops" / "data" / "bundled"


def read_bundled(*tickers: str, start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Bars of the bundled tickers in the data contract's columns."""
    frames = []
    for t in tickers:
        f = pd.read_csv(BUNDLED / f"{t}.csv.gz", parse_dates=["date"])
        f.insert(0, "ticker", t)
        if start:
            f = f[f["date"] >= start]
        if end:
            f = f[f["date"] <= end]
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def bars() -> pd.DataFrame:
    return read_bundled("IBB", "SPY")


@pytest.fixture(scope="session")
def short_bars() -> pd.DataFrame:
    """About a year and a half of both tickers: enough for every feature's warm-up."""
    return read_bundled("IBB", "SPY", start="2015-01-01", end="2016-06-30")


def random_walk_bars(ticker: str, dates: pd.DatetimeIndex, seed: int,
                     level: float) -> pd.DataFrame:
    """Valid synthetic bars (low <= open/close <= high) following a random walk."""
    rng = np.random.default_rng(seed)
    close = level * np.exp(np.cumsum(rng.normal(0.0003, 0.015, len(dates))))
    open_ = close * np.exp(rng.normal(0, 0.005, len(dates)))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, len(dates)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, len(dates)))
    return pd.DataFrame({
        "ticker": ticker, "date": dates, "open": open_, "high": high, "low": low,
        "close": close, "adj_close": close * 0.97, "volume": rng.integers(10**5, 10**7, len(dates)),
    })


@pytest.fixture(scope="session")
def universe_bars() -> pd.DataFrame:
    """Three targets on different calendars (a late listing, a missing day) plus a market,
    priced on very different scales."""
    days = pd.bdate_range("2018-01-01", "2019-12-31")
    return pd.concat([
        random_walk_bars("MKT", days, 0, 250.0),
        random_walk_bars("AAA", days, 1, 40.0),
        random_walk_bars("BBB", days.delete(300), 2, 4000.0),
        random_walk_bars("CCC", days[150:], 3, 3.0),
    ], ignore_index=True)
