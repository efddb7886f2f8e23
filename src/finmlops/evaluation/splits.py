"""Walk-forward splits over a date index: expanding train window, yearly test blocks, purged
by the label horizon and separated from the test block by an embargo.

Pure functions over arrays of dates. A universe has several rows per date (one per ticker);
splits are made over the distinct trading days and mapped back to rows, so no ticker's train
rows can sit beside another ticker's test rows on the same day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from finmlops.errors import ConfigError

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Fold:
    """One walk-forward step: row positions to train on and to test on."""

    index: int
    train: IntArray
    test: IntArray
    train_end: dt.date
    """Last training day (its label window ends before ``test_start - embargo``)."""
    test_start: dt.date
    test_end: dt.date


def _days(dates: npt.ArrayLike) -> tuple[npt.NDArray[np.datetime64], IntArray]:
    """Distinct days (sorted) and, per row, the position of its day among them."""
    arr = np.asarray(dates, dtype="datetime64[D]")
    if arr.ndim != 1:
        raise ConfigError("dates must be one-dimensional")
    days, inverse = np.unique(arr, return_inverse=True)
    return days, inverse.astype(np.int64)


def _to_date(day: np.datetime64) -> dt.date:
    value: dt.date = day.astype("datetime64[D]").item()
    return value


def purged_train_end(test_start: int, horizon: int, embargo: int) -> int:
    """Exclusive end (a day position) of training days for a block starting at ``test_start``:
    day ``i`` may train only if its label window ``i+1..i+horizon`` ends before
    ``test_start - embargo``."""
    return test_start - embargo - horizon


def walk_forward(dates: npt.ArrayLike, *, horizon: int = 1, min_train_years: int = 4,
                 test_block_years: int = 1, embargo_days: int = 0) -> list[Fold]:
    """Expanding-window folds with calendar-year test blocks of ``test_block_years``.

    The first block starts on the first 1 January at least ``min_train_years`` after the first
    day; blocks follow back to back until the last day, so every day from the first test day on
    is tested exactly once. ``embargo_days`` and ``horizon`` count trading days of ``dates``.
    """
    if horizon < 1 or min_train_years < 1 or test_block_years < 1 or embargo_days < 0:
        raise ConfigError("horizon, min_train_years and test_block_years must be >= 1, "
                          "embargo_days >= 0")
    days, inverse = _days(dates)
    if days.size == 0:
        return []
    first = _to_date(days[0])
    earliest = dt.date(first.year + min_train_years, first.month, min(first.day, 28))
    year = earliest.year + (0 if (earliest.month, earliest.day) == (1, 1) else 1)
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    order = np.argsort(inverse, kind="stable")
    row_starts = np.searchsorted(inverse[order], np.arange(days.size + 1))
    folds: list[Fold] = []
    last_year = int(years[-1])
    while year <= last_year:
        start = int(np.searchsorted(years, year))
        stop = int(np.searchsorted(years, year + test_block_years))
        train_stop = purged_train_end(start, horizon, embargo_days)
        if stop > start and train_stop > 0:
            folds.append(Fold(
                index=len(folds),
                train=np.sort(order[: row_starts[train_stop]]).astype(np.int64),
                test=np.sort(order[row_starts[start]: row_starts[stop]]).astype(np.int64),
                train_end=_to_date(days[train_stop - 1]),
                test_start=_to_date(days[start]),
                test_end=_to_date(days[stop - 1]),
            ))
        year += test_block_years
    return folds


def holdout_split(dates: npt.ArrayLike, rows: npt.ArrayLike, *, fraction: float,
                  horizon: int = 1) -> tuple[IntArray, IntArray]:
    """Split training ``rows`` in time: the last ``fraction`` of their days validate (early
    stopping), the rest fit, purged so no fit label window reaches a validation day."""
    if not 0 < fraction < 1:
        raise ConfigError("validation fraction must be in (0, 1)")
    idx = np.asarray(rows, dtype=np.int64)
    row_days = np.asarray(dates, dtype="datetime64[D]")[idx]
    days, inverse = np.unique(row_days, return_inverse=True)
    n_val = max(1, round(days.size * fraction))
    start = days.size - n_val
    fit_stop = purged_train_end(start, horizon, 0)
    return idx[inverse < fit_stop], idx[inverse >= start]


def label_known_by(dates: npt.ArrayLike, cutoff: dt.date | None, *,
                   horizon: int = 1) -> IntArray:
    """Rows whose label window ends on or before ``cutoff`` (all rows but the last
    ``horizon`` days when ``cutoff`` is None): what a model deployed at the cutoff may see."""
    days, inverse = _days(dates)
    last = days.size - horizon if cutoff is None else (
        int(np.searchsorted(days, np.datetime64(cutoff, "D"), side="right")) - horizon)
    return np.flatnonzero(inverse < max(last, 0)).astype(np.int64)
