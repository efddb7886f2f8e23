"""Sequence windows ``[n, W, F]`` of raw feature rows: never crossing from one ticker to another,
and never across a missing row (a calendar gap, or a day whose features are incomplete)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd


def window_ends(tickers: pd.Series | np.ndarray, window: int,
                sessions: pd.Series | npt.ArrayLike | None = None) -> np.ndarray:
    """Row positions (in a frame sorted by ``ticker, date``) at which a full window can end:
    ``window - 1`` earlier rows of the same ticker, and with ``sessions`` (the feature frame's
    ``session`` column) those rows on the ``window - 1`` calendar days just before, so a window
    that would span a missing row is not formed."""
    if window < 1:
        raise ValueError("window must be at least 1")
    t = pd.Series(np.asarray(tickers))
    position = t.groupby(t, sort=False).cumcount().to_numpy()
    ends = np.flatnonzero(position >= window - 1)
    if sessions is None:
        return ends
    s = np.asarray(sessions, dtype=np.int64)
    if s.shape != position.shape:
        raise ValueError("sessions and tickers differ in length")
    contiguous: np.ndarray = ends[s[ends] - s[ends - window + 1] == window - 1]
    return contiguous


def make_windows(values: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """``values[end - window + 1 : end + 1]`` for each end, oldest first: ``[n, W, F]`` float32."""
    offsets = np.arange(-window + 1, 1)
    idx = np.asarray(ends, dtype=np.int64)[:, None] + offsets[None, :]
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32)[idx])
