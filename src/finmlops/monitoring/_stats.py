"""Distances between live windows and a reference (PSI, KS), and their calibrated null.

Daily market features are strongly autocorrelated (lag-1 autocorrelation 0.9 and more for
rolling means and volatilities), so a live window of ``n`` days is far fewer than ``n``
independent draws and textbook KS p-values alarm on most windows of the training period. The
null used here is empirical instead: the KS distance to the whole reference of every window of
``n`` consecutive reference rows, which keeps the autocorrelation (and the volatility regimes)
a live window has. From those windows, for each calibrated length ``n``:

- per series, the distance reached by at most a share ``P`` of the windows, for each ``P`` of
  :data:`PROBS`; a live distance maps to the smallest share whose distance it reaches (a
  p-value on the :data:`PROBS` grid, conservative between grid points);
- ``family``: the share of windows in which *some* series is at least that unusual (the
  max-statistic, or min-p, correction, which respects the dependence between series);
- ``count``: for each level of :data:`ALPHAS`, the share of windows in which at least ``k``
  series have p <= level (the aggregate alarm).

Shares carry the usual Monte Carlo ``+1`` (the live window counts as one more draw). Every
function works on batches (one row per window), so a live window and the reference's windows
go through the same arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

PROBS: tuple[float, ...] = tuple(
    round(m * 10.0 ** -d, 6) for d in range(5) for m in (1.0, 0.7, 0.5, 0.3, 0.2, 0.15))
"""Tail probabilities of the per-series tables, 1 down to 1.5e-5 (a table over ``W`` windows
keeps those of at least ``1 / W``)."""
ALPHAS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
"""Levels at which the aggregate count is calibrated (a requested level uses the largest of
these not above it)."""
LENGTHS: tuple[int, ...] = (10, 12, 15, 20, 24, 30, 40, 50, 60, 80, 100, 120)
"""Window lengths calibrated by default; a live window uses the longest calibrated length not
above its own, which is conservative: KS distances shrink as windows grow."""
MIN_WINDOWS = 100
"""A length is calibrated only when the reference has at least this many windows of it."""
PSI_EPSILON = 1e-4
_DECIMALS = 6


def finite(values: ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    out: FloatArray = arr[np.isfinite(arr)]
    return out


def bin_edges(values: ArrayLike, bins: int) -> FloatArray:
    """Inner quantile edges (at most ``bins - 1``, unique) of ``values``; outer bins are open."""
    if bins < 2:
        raise ValueError("bins must be at least 2")
    x = finite(values)
    if x.size == 0:
        return np.empty(0, dtype=np.float64)
    qs = np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf")
    out: FloatArray = np.unique(qs)
    return out


def bin_shares(values: FloatArray, edges: FloatArray, pseudo_count: float = 0.0) -> FloatArray:
    """Share of each row's finite values ``[k, n]`` in each bin ``(-inf, e0], ..., (e_last,
    inf)``, after adding ``pseudo_count`` to every bin."""
    k = values.shape[0]
    bins = edges.size + 1
    ok = np.isfinite(values)
    idx = np.searchsorted(edges, np.where(ok, values, 0.0), side="left")
    flat = (np.arange(k)[:, None] * bins + idx)[ok]
    counts = np.bincount(flat, minlength=k * bins).reshape(k, bins) + pseudo_count
    total = counts.sum(axis=1, keepdims=True)
    out: FloatArray = np.where(total > 0, counts / np.where(total > 0, total, 1.0), 1.0 / bins)
    return out


def psi_rows(expected: FloatArray, actual: FloatArray, eps: float = PSI_EPSILON) -> FloatArray:
    """Population stability index ``sum((a - e) * ln(a / e))`` of each row of ``actual``
    ``[k, B]`` against ``expected`` ``[B]``; empty bins count as ``eps``."""
    e = np.maximum(expected, eps)
    e = e / e.sum()
    a = np.maximum(actual, eps)
    a = a / a.sum(axis=1, keepdims=True)
    out: FloatArray = ((a - e) * (np.log(a) - np.log(e))).sum(axis=1)
    return out


def rank_keys(sample: FloatArray, values: FloatArray) -> IntArray:
    """Each value's place in the sorted ``sample`` as one sortable integer: the count of sample
    points <= it times ``m + 1`` plus the count < it (both rise with the value)."""
    m = sample.size
    right = np.searchsorted(sample, values, side="right").astype(np.int64)
    left = np.searchsorted(sample, values, side="left").astype(np.int64)
    out: IntArray = right * (m + 1) + left
    return out


def ks_rows(sample: FloatArray, values: FloatArray) -> tuple[FloatArray, IntArray]:
    """KS distance of each row's finite values ``[k, n]`` to the sorted ``sample``, and the
    number of finite values per row."""
    ok = np.isfinite(values)
    keys = rank_keys(sample, np.where(ok, values, np.inf))  # non-finite sort last
    counts = ok.sum(axis=1).astype(np.int64)
    return ks_from_keys(keys, sample.size, counts), counts


def ks_from_keys(keys: IntArray, m: int, counts: IntArray | None = None) -> FloatArray:
    """KS distances of windows given as :func:`rank_keys` rows ``[k, n]`` whose first
    ``counts`` sorted keys are real values (all ``n`` by default).

    Exact, in integers, with ties: between two window points the window's ECDF is flat while
    the sample's grows, so the supremum sits at a window point, from the left or the right.
    """
    k, n = keys.shape
    if k == 0 or n == 0 or m == 0:
        return np.zeros(k, dtype=np.float64)
    # int32 is exact here (keys < (m + 1) ** 2, products < n * m) and halves the traffic
    dtype = np.int32 if (m + 1) ** 2 < 2**31 and n * m < 2**31 else np.int64
    w: NDArray[np.signedinteger[Any]] = np.sort(keys.astype(dtype), axis=1)
    right = w // (m + 1)  # sample points <= the i-th smallest value
    left = w - right * (m + 1)  # sample points < it
    i = np.arange(1, n + 1, dtype=w.dtype)[None, :]
    if counts is None:
        up = (i * m - n * right).max(axis=1)
        down = (n * left - (i - 1) * m).max(axis=1)
        full: FloatArray = np.maximum(up, down) / float(n * m)
        return full
    c = counts.astype(w.dtype)[:, None]
    real = i <= c
    low = int(np.iinfo(dtype).min)
    up = np.where(real, i * m - c * right, low).max(axis=1)
    down = np.where(real, c * left - (i - 1) * m, low).max(axis=1)
    out: FloatArray = np.where(c[:, 0] > 0, np.maximum(up, down) / np.maximum(c[:, 0] * m, 1),
                               0.0)
    return out


def window_starts(valid: NDArray[np.bool_], groups: IntArray | None, n: int) -> IntArray:
    """Starts of the windows of ``n`` rows that are all ``valid`` and inside one group."""
    size = valid.size
    if size < n:
        return np.empty(0, dtype=np.int64)
    bad = np.concatenate([[0], np.cumsum(~valid)])
    ok = (bad[n:] - bad[:-n]) == 0
    if groups is not None:
        ok &= groups[: size - n + 1] == groups[n - 1:]
    return np.flatnonzero(ok).astype(np.int64)


def tail_thresholds(stats: FloatArray, probs: Sequence[float]) -> list[float]:
    """For each ``P``: the smallest distance reached by at most ``floor(P * W)`` of the ``W``
    windows, rounded up to 6 decimals (rounding up keeps every p-value valid)."""
    s = np.sort(stats)
    w = s.size
    values = np.unique(s)
    reached = w - np.searchsorted(s, values, side="left")  # windows at least that far
    out: list[float] = []
    scale = 10.0 ** _DECIMALS
    for p in probs:
        allowed = math.floor(p * w + 1e-9)
        idx = int(np.searchsorted(-reached, -allowed, side="left"))  # first reached <= allowed
        t = float(values[idx]) if idx < values.size else float(s[-1]) + 1.0 / scale
        out.append(math.ceil(t * scale) / scale)
    return out


def p_indices(stats: FloatArray, thresholds: FloatArray) -> IntArray:
    """Index of the smallest tail probability whose threshold each distance reaches (-1: none,
    p = 1); thresholds rise as the probabilities fall."""
    out: IntArray = (np.searchsorted(thresholds, stats, side="right") - 1).astype(np.int64)
    return out


def p_from_indices(idx: IntArray, probs: FloatArray) -> FloatArray:
    out: FloatArray = np.where(idx >= 0, probs[np.clip(idx, 0, None)], 1.0)
    return out


def probs_for(windows: int) -> list[float]:
    """The :data:`PROBS` a table over ``windows`` windows can resolve."""
    return [p for p in PROBS if p * windows >= 1.0 - 1e-9]


def _share(hits: int, w: int) -> float:
    """``(hits + 1) / (w + 1)``, rounded up to 6 decimals (up: never a smaller p-value)."""
    scale = 10.0 ** _DECIMALS
    return math.ceil((hits + 1) / (w + 1) * scale) / scale


def calibrate(series: FloatArray, samples: Sequence[FloatArray], lengths: Sequence[int],
              groups: IntArray | None = None) -> dict[str, Any]:
    """The null tables of ``series`` ``[N, S]`` (time-ordered rows, NaN where undefined)
    against each column's sorted reference ``samples``, for every length with enough windows.

    A reference window is part of the reference, so it sits closer to it than a new window
    would: each distance is taken against the rest of the reference instead, which for an
    ECDF is exactly the distance to the whole times ``N / (N - n)``. ``groups`` (one integer
    per row, contiguous) keeps windows inside one ticker's rows.
    """
    valid: NDArray[np.bool_] = np.asarray(np.isfinite(series).all(axis=1))
    out: dict[str, Any] = {"lengths": [], "windows": {}, "probs": {}, "thresholds": {},
                           "family": {}, "count": {}}
    ranked = [rank_keys(sample, series[:, j]) for j, sample in enumerate(samples)]
    sizes = np.isfinite(series).sum(axis=0)
    for n in sorted({int(x) for x in lengths}):
        starts = window_starts(valid, groups, n) if n >= 2 else np.empty(0, np.int64)
        w = int(starts.size)
        if w < MIN_WINDOWS:
            continue
        probs = probs_for(w)
        grid = np.asarray(probs)
        rows = starts[:, None] + np.arange(n)[None, :]
        thresholds: list[list[float]] = []
        pv = np.empty((w, len(samples)), dtype=np.float64)
        for j, keys in enumerate(ranked):
            d = ks_from_keys(keys[rows], samples[j].size) * (sizes[j] / (sizes[j] - n))
            t = tail_thresholds(d, probs)
            thresholds.append(t)
            pv[:, j] = p_from_indices(p_indices(d, np.asarray(t)), grid)
        min_p = pv.min(axis=1)
        key = str(n)
        out["lengths"].append(n)
        out["windows"][key] = w
        out["probs"][key] = probs
        out["thresholds"][key] = thresholds
        out["family"][key] = [_share(int(np.count_nonzero(min_p <= p + 1e-12)), w)
                              for p in probs]
        counts: dict[str, list[float]] = {}
        for a in ALPHAS:
            if a >= probs[-1] - 1e-12:
                k = np.count_nonzero(pv <= a + 1e-12, axis=1)
                counts[repr(a)] = [_share(int(np.count_nonzero(k >= c)), w) if c else 1.0
                                   for c in range(len(samples) + 1)]
        out["count"][key] = counts
    return out


def length_for(n: int, lengths: Sequence[int]) -> int | None:
    """The longest calibrated length not above ``n`` (None when ``n`` is below them all)."""
    fitting = [x for x in lengths if x <= n]
    return max(fitting) if fitting else None


def alpha_for(alpha: float, counts: Mapping[str, Any]) -> float | None:
    """The largest calibrated aggregate level not above ``alpha``."""
    levels = [float(a) for a in counts if float(a) <= alpha + 1e-12]
    return max(levels) if levels else None
