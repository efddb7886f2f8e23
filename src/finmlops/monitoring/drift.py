"""Drift of live inputs (and predictions) against the training reference, with a calibrated null.

Each feature is tested on its basis (daily changes for a smoothed level, the level otherwise;
:mod:`finmlops.monitoring.reference`) by its KS distance to the reference, whose p-value comes
from the reference's own windows of the same length (:mod:`finmlops.monitoring._stats`).
Three alarms, each at the false-alarm rate ``ks_alpha`` per window on the reference:

- a feature alarms when its family-wise p-value (the share of reference windows in which some
  feature is that unusual) is at most ``ks_alpha`` and its PSI is above ``psi_threshold`` (a
  materiality floor);
- the aggregate alarm counts the features with p-value at most ``ks_alpha`` and fires when at
  most that share of reference windows reach the count;
- the prediction alarms when its level, against the out-of-sample predictions, has p-value at
  most ``ks_alpha`` (and PSI above the floor).

:class:`DriftMonitor` is the only stateful piece (thread-safe rings of the last ``window``
live rows).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from finmlops.errors import DataValidationError
from finmlops.monitoring import _stats
from finmlops.monitoring.reference import (
    CHANGE,
    DEFAULT_LENGTHS,
    LEVEL,
    PREDICTION,
    SMOOTH_AC1,
    Column,
    PreparedReference,
    build_reference,
    changes_of,
    prepare_reference,
    proportions,
)

if TYPE_CHECKING:
    from finmlops.monitoring.metrics import Metrics

__all__ = [
    "DEFAULT_LENGTHS",
    "PREDICTION",
    "SMOOTH_AC1",
    "AggregateDrift",
    "DriftMonitor",
    "DriftResult",
    "DriftRow",
    "PreparedReference",
    "build_reference",
    "changes_of",
    "compare",
    "compare_windows",
    "ks",
    "max_psi",
    "prepare_reference",
    "proportions",
    "psi",
    "publish",
]

LIVE_PSEUDO_COUNT = 0.5
"""Added to each bin of the live window (Jeffreys): live windows are short (tens of days)."""

FloatArray = NDArray[np.float64]
log = logging.getLogger("finmlops.monitoring")


@dataclass(frozen=True)
class DriftRow:
    """Drift of one feature (or of the prediction) over a live window.

    ``p_value`` is calibrated: the share of reference windows of the calibrated length at
    least as far in KS distance (on a grid, rounded up); ``p_family`` the share of reference
    windows in which some feature is that unusual (the prediction's equals ``p_value``).
    ``basis`` is ``level`` or ``change`` (daily differences); ``n`` the live values tested.
    """

    feature: str
    psi: float
    ks: float
    p_value: float
    alarm: bool
    p_family: float = 1.0
    basis: str = LEVEL
    n: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AggregateDrift:
    """The one alarm over all features: ``unusual`` of ``features`` have p-value <= ``alpha``;
    ``threshold`` is the smallest count that alarms, ``p_value`` the share of reference
    windows with at least ``unusual``. ``alpha`` and ``length`` are the calibrated level and
    window length used (None: uncalibrated, never alarms)."""

    unusual: int
    features: int
    threshold: int | None
    p_value: float
    alarm: bool
    alpha: float | None
    length: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DriftResult(Sequence[DriftRow]):
    """One comparison: a sequence of its rows (features in reference order, then the
    prediction) with the aggregate alarm and the settings used."""

    rows: tuple[DriftRow, ...] = ()
    aggregate: AggregateDrift | None = None
    live_rows: int = 0
    alpha: float = 0.01
    psi_threshold: float = 0.2
    calibrated: bool = False

    @overload
    def __getitem__(self, i: int) -> DriftRow: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[DriftRow]: ...
    def __getitem__(self, i: int | slice) -> DriftRow | Sequence[DriftRow]:
        return self.rows[i]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[DriftRow]:
        return iter(self.rows)

    @property
    def drifted(self) -> list[str]:
        """Names of the rows that alarm."""
        return [r.feature for r in self.rows if r.alarm]

    @property
    def alarm(self) -> bool:
        """Any alarm: the aggregate, a feature or the prediction."""
        return bool(self.drifted) or bool(self.aggregate and self.aggregate.alarm)


def psi(expected_props: ArrayLike, actual_props: ArrayLike,
        eps: float = _stats.PSI_EPSILON) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))``; empty bins count as ``eps``.

    Every term is >= 0 and swapping the arguments gives exactly the same value.
    """
    e = np.asarray(expected_props, dtype=np.float64)
    a = np.asarray(actual_props, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ValueError(f"proportions must be 1-d of equal length, got {e.shape} and {a.shape}")
    e = np.maximum(e, eps)
    a = np.maximum(a, eps)
    e = e / e.sum()
    a = a / a.sum()
    return float(np.sum((a - e) * (np.log(a) - np.log(e))))


def ks(reference_sample: ArrayLike, live: ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov ``(statistic, p_value)`` assuming independent rows;
    ``(0, 1)`` when a side is empty. Not the alarm rule (see :func:`compare`)."""
    from scipy.stats import ks_2samp

    r = _stats.finite(reference_sample)
    v = _stats.finite(live)
    if r.size == 0 or v.size == 0:
        return 0.0, 1.0
    res = ks_2samp(r, v)
    return float(res.statistic), float(res.pvalue)


def _distances(col: Column, values: FloatArray, rebin: int | None
               ) -> tuple[FloatArray, FloatArray, NDArray[np.int64]]:
    """PSI, KS distance and finite count of each window ``[k, n]`` against one column."""
    if rebin is None:
        edges, expected = col.edges, col.expected
    else:  # re-bin from the quantile sample, which represents the training distribution
        edges = _stats.bin_edges(col.sample, rebin)
        expected = proportions(col.sample, edges)
    value = _stats.psi_rows(expected, _stats.bin_shares(values, edges, LIVE_PSEUDO_COUNT))
    distance, counts = _stats.ks_rows(col.sample, values)
    return value, distance, counts


def _calibrated(col: Column, distances: FloatArray, lengths: NDArray[np.int64]
                ) -> tuple[FloatArray, NDArray[np.int64]]:
    """p-values of each window's distance at its length (0: uncalibrated, p = 1), and the
    grid index (-1 for p = 1)."""
    p = np.ones(distances.size)
    idx = np.full(distances.size, -1, dtype=np.int64)
    for length in np.unique(lengths[lengths > 0]):
        rows = lengths == length
        t = col.thresholds.get(int(length))
        if t is None:
            continue
        idx[rows] = _stats.p_indices(distances[rows], t)
        p[rows] = _stats.p_from_indices(idx[rows], col.probs[int(length)])
    return p, idx


def _lengths(counts: NDArray[np.int64], calibrated: Sequence[int]) -> NDArray[np.int64]:
    return np.array([_stats.length_for(int(c), calibrated) or 0 for c in counts],
                    dtype=np.int64)


def _aggregate(ref: PreparedReference, length: int, p_values: FloatArray,
               alpha: float) -> AggregateDrift:
    counts = ref.count.get(length, {})
    level = _stats.alpha_for(alpha, counts)
    if level is None:
        return AggregateDrift(0, p_values.size, None, 1.0, False, None, None)
    unusual = int(np.count_nonzero(p_values <= level + 1e-12))
    tail = [float(t) for t in counts[repr(level)]]
    threshold = next((k for k, t in enumerate(tail) if t <= level), None)
    p = tail[min(unusual, len(tail) - 1)]
    return AggregateDrift(unusual, p_values.size, threshold, p, p <= level, level, length)


def compare_windows(
    reference: Mapping[str, Any] | PreparedReference,
    live: ArrayLike,
    psi_threshold: float = 0.2,
    ks_alpha: float = 0.01,
    predictions: ArrayLike | None = None,
    bins: int | None = None,
    changes: ArrayLike | None = None,
) -> list[DriftResult]:
    """:func:`compare` for ``k`` windows at once: ``live`` and ``changes`` ``[k, n, F]``,
    ``predictions`` ``[k, m]`` (NaN where a window has fewer)."""
    ref = prepare_reference(reference)
    width = len(ref.names)
    arr = np.asarray(live, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != width:
        raise DataValidationError(f"live windows must be [k, n, {width}], got {list(arr.shape)}")
    if changes is None:
        diffs = np.full_like(arr, np.nan)
        diffs[:, 1:] = arr[:, 1:] - arr[:, :-1]
    else:
        diffs = np.asarray(changes, dtype=np.float64)
    if diffs.shape != arr.shape:
        raise DataValidationError(f"changes must have the live rows' shape {list(arr.shape)}, "
                                  f"got {list(diffs.shape)}")
    k = arr.shape[0]
    rebin = bins if bins is not None and bins != ref.bins else None
    psi_m = np.zeros((k, width))
    ks_m = np.zeros((k, width))
    n_m = np.zeros((k, width), dtype=np.int64)
    for j, col in enumerate(ref.columns):
        values = diffs[:, :, j] if col.basis == CHANGE else arr[:, :, j]
        psi_m[:, j], ks_m[:, j], n_m[:, j] = _distances(col, values, rebin)
    lengths = _lengths(n_m.min(axis=1) if width else np.zeros(k, np.int64), ref.lengths)
    p_m = np.ones((k, width))
    fam_m = np.ones((k, width))
    for j, col in enumerate(ref.columns):
        p_m[:, j], idx = _calibrated(col, ks_m[:, j], lengths)
        for length in np.unique(lengths[lengths > 0]):
            rows = (lengths == length) & (idx >= 0)
            fam_m[rows, j] = ref.family[int(length)][idx[rows]]
    alarm_m = (lengths[:, None] > 0) & (fam_m <= ks_alpha) & (psi_m > psi_threshold)
    pred: tuple[FloatArray, ...] | None = None
    if predictions is not None and ref.prediction is not None:
        pv = np.asarray(predictions, dtype=np.float64)
        if pv.ndim != 2 or pv.shape[0] != k:
            raise DataValidationError(f"predictions must be [{k}, m], got {list(pv.shape)}")
        p_psi, p_ks, p_n = _distances(ref.prediction, pv, rebin)
        p_len = _lengths(p_n, ref.prediction_lengths)
        p_p, _ = _calibrated(ref.prediction, p_ks, p_len)
        p_alarm = (p_len > 0) & (p_p <= ks_alpha) & (p_psi > psi_threshold)
        pred = (p_psi, p_ks, p_p, p_alarm.astype(np.float64), p_n.astype(np.float64))
    out: list[DriftResult] = []
    for i in range(k):
        rows = [DriftRow(name, float(psi_m[i, j]), float(ks_m[i, j]), float(p_m[i, j]),
                         bool(alarm_m[i, j]), float(fam_m[i, j]), col.basis, int(n_m[i, j]))
                for j, (name, col) in enumerate(zip(ref.names, ref.columns, strict=True))]
        if pred is not None and pred[4][i] > 0:
            rows.append(DriftRow(PREDICTION, float(pred[0][i]), float(pred[1][i]),
                                 float(pred[2][i]), bool(pred[3][i]), float(pred[2][i]),
                                 LEVEL, int(pred[4][i])))
        length = int(lengths[i])
        agg = (_aggregate(ref, length, p_m[i], ks_alpha) if length
               else AggregateDrift(0, width, None, 1.0, False, None, None))
        out.append(DriftResult(tuple(rows), agg, int(arr.shape[1]), ks_alpha, psi_threshold,
                               length > 0))
    return out


def compare(
    reference: Mapping[str, Any] | PreparedReference,
    live: ArrayLike,
    psi_threshold: float = 0.2,
    ks_alpha: float = 0.01,
    predictions: ArrayLike | None = None,
    bins: int | None = None,
    changes: ArrayLike | None = None,
) -> DriftResult:
    """Drift of each feature of ``live`` ``[n, F]`` (columns in the reference's order, rows
    consecutive days) and of ``predictions``, against the reference's calibrated null.

    ``changes`` are the rows' daily changes (each row minus the day before); without them they
    are taken between consecutive rows, so the first row has none. ``ks_alpha`` is the
    false-alarm rate per window of each alarm (the aggregate, any feature, the prediction);
    ``bins`` other than the reference's re-bins the PSI from its quantile sample. A window
    shorter than every calibrated length, or a reference without a null (format 1), is
    reported but never alarms.
    """
    ref = prepare_reference(reference)
    names = ref.names
    arr = np.asarray(live, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise DataValidationError(
            f"live rows must be [n, {len(names)}] (features {', '.join(names) or 'none'}), "
            f"got shape {list(arr.shape)}")
    diffs = changes_of(arr) if changes is None else np.asarray(changes, dtype=np.float64)
    if diffs.shape != arr.shape:
        raise DataValidationError(f"changes must have the live rows' shape {list(arr.shape)}, "
                                  f"got {list(diffs.shape)}")
    preds = None if predictions is None else _stats.finite(predictions)[None, :]
    return compare_windows(ref, arr[None], psi_threshold, ks_alpha, predictions=preds,
                           bins=bins, changes=diffs[None])[0]


class _Ring:
    """Fixed-size buffer of the last ``size`` rows of width ``width``."""

    def __init__(self, size: int, width: int) -> None:
        self.data = np.empty((size, width), dtype=np.float64)
        self.next = 0
        self.count = 0

    def push(self, rows: FloatArray) -> None:
        size = self.data.shape[0]
        if rows.shape[0] >= size:
            self.data[:] = rows[-size:]
            self.next, self.count = 0, size
            return
        end = self.next + rows.shape[0]
        if end <= size:
            self.data[self.next:end] = rows
        else:
            first = size - self.next
            self.data[self.next:] = rows[:first]
            self.data[: end - size] = rows[first:]
        self.next = end % size
        self.count = min(size, self.count + rows.shape[0])

    def values(self) -> FloatArray:
        """The buffered rows, oldest first (a copy)."""
        if self.count < self.data.shape[0]:
            return self.data[: self.count].copy()
        return np.concatenate([self.data[self.next:], self.data[: self.next]])


class DriftMonitor:
    """Live drift over the last ``window`` observed rows (and predictions); thread-safe.

    Rows are days in order. :meth:`observe` takes each day's features ``[n, F]``, or model
    inputs ``[n, T, F]`` (T >= 2), whose last two steps give each row's exact daily change
    whatever the routing; from ``[n, F]`` the change is taken from the previous observed row,
    which is right only when the monitor sees every day.
    """

    def __init__(self, reference: Mapping[str, Any] | PreparedReference, window: int = 20,
                 bins: int | None = None, psi_threshold: float = 0.2,
                 ks_alpha: float = 0.01) -> None:
        if window < 2:
            raise ValueError("window must be at least 2")
        self.reference = prepare_reference(reference)
        self.feature_names: list[str] = list(self.reference.names)
        self.window = window
        self.bins = bins
        self.psi_threshold = psi_threshold
        self.ks_alpha = ks_alpha
        self._lock = threading.Lock()
        width = len(self.feature_names)
        self._rows = _Ring(window, width)
        self._changes = _Ring(window, width)
        self._last: FloatArray | None = None
        self._preds = _Ring(window, 1)
        lengths = self.reference.lengths
        if not lengths or min(lengths) > window:
            log.warning("drift reference (format %d) has no null calibrated for windows of %d "
                        "rows or fewer: drift is reported without alarms; retrain to calibrate "
                        "it", self.reference.format, window)

    def observe(self, rows: ArrayLike) -> None:
        """Add live feature rows ``[n, F]`` or model inputs ``[n, T, F]`` (oldest first)."""
        arr = np.asarray(rows, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        width = len(self.feature_names)
        if arr.ndim not in (2, 3) or arr.shape[-1] != width:
            raise DataValidationError(
                f"drift rows must be [n, {width}] or [n, T, {width}], got {list(arr.shape)}")
        with self._lock:
            if arr.ndim == 3 and arr.shape[1] >= 2:
                level, change = arr[:, -1, :], arr[:, -1, :] - arr[:, -2, :]
            else:
                level = arr[:, -1, :] if arr.ndim == 3 else arr
                before = (np.full((1, width), np.nan) if self._last is None
                          else self._last[None, :])
                change = changes_of(np.concatenate([before, level]))[1:]
            if level.shape[0]:
                self._last = level[-1].copy()
            self._rows.push(level)
            self._changes.push(change)

    def observe_predictions(self, p: ArrayLike) -> None:
        """Add served probabilities (compared with the reference's ``"prediction"``)."""
        arr = np.asarray(p, dtype=np.float64).reshape(-1, 1)
        with self._lock:
            self._preds.push(arr)

    @property
    def observed(self) -> int:
        with self._lock:
            return self._rows.count

    def snapshot(self) -> DriftResult:
        """Drift of the current window; empty until at least two rows were observed."""
        with self._lock:
            rows = self._rows.values()
            changes = self._changes.values()
            preds = self._preds.values()[:, 0] if self._preds.count else None
        if rows.shape[0] < 2:
            return DriftResult(alpha=self.ks_alpha, psi_threshold=self.psi_threshold)
        return compare(self.reference, rows, self.psi_threshold, self.ks_alpha,
                       predictions=preds if preds is not None and preds.size >= 2 else None,
                       bins=self.bins, changes=changes)


def publish(metrics: Metrics, model: str, rows: Iterable[DriftRow]) -> None:
    """Set the ``finmlops_drift_*`` gauges of ``model`` from drift rows (and, for a
    :class:`DriftResult`, the aggregate gauges)."""
    for r in rows:
        metrics.drift_psi.labels(model=model, feature=r.feature).set(r.psi)
        metrics.drift_ks.labels(model=model, feature=r.feature).set(r.ks)
        metrics.drift_alarm.labels(model=model, feature=r.feature).set(1.0 if r.alarm else 0.0)
        metrics.drift_p_value.labels(model=model, feature=r.feature).set(r.p_value)
    agg = rows.aggregate if isinstance(rows, DriftResult) else None
    if agg is not None:
        metrics.drift_unusual.labels(model=model).set(agg.unusual)
        metrics.drift_unusual_threshold.labels(model=model).set(
            math.nan if agg.threshold is None else agg.threshold)
        metrics.drift_aggregate_alarm.labels(model=model).set(1.0 if agg.alarm else 0.0)


def max_psi(rows: Iterable[DriftRow]) -> float:
    """The largest PSI among ``rows`` (0 when there are none)."""
    return max((r.psi for r in rows if math.isfinite(r.psi)), default=0.0)
