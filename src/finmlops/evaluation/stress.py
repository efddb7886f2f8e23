"""Stress windows: every metric over named date ranges (2008, the COVID crash, 2022, ...)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from finmlops.config import StressWindow
from finmlops.evaluation.backtest import BacktestResult
from finmlops.evaluation.performance import performance_metrics

MIN_WINDOW_DAYS = 2
"""Fewer days than this in a window give no metrics (``None``) rather than noise."""


def window_mask(dates: NDArray[np.datetime64], start: dt.date, end: dt.date) -> NDArray[np.bool_]:
    """Days from ``start`` to ``end``, both inclusive."""
    d = dates.astype("datetime64[D]")
    mask: NDArray[np.bool_] = (d >= np.datetime64(start, "D")) & (d <= np.datetime64(end, "D"))
    return mask


def stress_metrics(
    results: Mapping[str, BacktestResult],
    windows: Mapping[str, StressWindow],
    periods_per_year: int = 252,
    n_trials: int = 1,
    sr_variance: float | None = None,
) -> dict[str, dict[str, dict[str, Any] | None]]:
    """``{window: {name: metrics or None}}`` for each backtest (variant or benchmark).

    A window restarts equity at 1 but keeps the positions held on entering it, so the first
    day pays only for the trade actually made that day.
    """
    out: dict[str, dict[str, dict[str, Any] | None]] = {}
    for wname, w in windows.items():
        row: dict[str, dict[str, Any] | None] = {}
        for name, res in results.items():
            part = res.slice(window_mask(res.dates, w.start, w.end))
            row[name] = (
                performance_metrics(part, periods_per_year, n_trials, sr_variance).as_dict()
                if len(part) >= MIN_WINDOW_DAYS else None
            )
        out[wname] = row
    return out
