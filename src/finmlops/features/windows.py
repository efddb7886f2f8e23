"""Sequence windows ``[n, W, F]`` of raw feature rows, never crossing from one ticker to another."""

from __future__ import annotations

import numpy as np
import pandas as pd


def window_ends(tickers: pd.Series | np.ndarray, window: int) -> np.ndarray:
    """Row positions (in a frame sorted by ``ticker, date``) with ``window - 1`` earlier rows
    of the same ticker, i.e. the rows a full window can end at."""
    if window < 1:
        raise ValueError("window must be at least 1")
    t = pd.Series(np.asarray(tickers))
    position = t.groupby(t, sort=False).cumcount().to_numpy()
    return np.flatnonzero(position >= window - 1)


def make_windows(values: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """``values[end - window + 1 : end + 1]`` for each end, oldest first: ``[n, W, F]`` float32."""
    offsets = np.arange(-window + 1, 1)
    idx = np.asarray(ends, dtype=np.int64)[:, None] + offsets[None, :]
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32)[idx])
