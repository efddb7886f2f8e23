"""Drift of live inputs (and predictions) against the training reference: PSI and KS.

The reference is plain JSON (stored in each exported model's ``model.json`` under
``reference``): per feature the quantile bin edges of the training data, the share of
training rows in each bin, a small deterministic quantile sample for the KS test and summary
statistics. Everything here is pure numpy/scipy; :class:`DriftMonitor` is the only stateful
piece (a thread-safe ring buffer of the last ``window`` live rows).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from finmlops.errors import DataValidationError

if TYPE_CHECKING:
    from finmlops.monitoring.metrics import Metrics

REFERENCE_FORMAT = 1
SAMPLE_SIZE = 512
PSI_EPSILON = 1e-4
LIVE_PSEUDO_COUNT = 0.5
"""Added to each bin of the live window (Jeffreys): live windows are short (tens of days)."""
PREDICTION = "prediction"
"""Name of the prediction-distribution row (reference key and ``DriftRow.feature``)."""

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class DriftRow:
    """Drift of one feature (or of the prediction): PSI, KS statistic and p-value, alarm."""

    feature: str
    psi: float
    ks: float
    p_value: float
    alarm: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(values: ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def bin_edges(values: ArrayLike, bins: int) -> FloatArray:
    """Inner quantile edges (at most ``bins - 1``, unique) of ``values``; outer bins are open."""
    if bins < 2:
        raise ValueError("bins must be at least 2")
    x = _finite(values)
    if x.size == 0:
        return np.empty(0, dtype=np.float64)
    qs = np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf")
    return np.unique(qs)


def proportions(values: ArrayLike, edges: ArrayLike, pseudo_count: float = 0.0) -> FloatArray:
    """Share of finite ``values`` in each bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.

    ``pseudo_count`` is added to every bin first (0.5 is Jeffreys' prior), so that an empty
    bin of a short live window costs a bounded amount instead of ``ln(1 / eps)``.
    """
    e = np.asarray(edges, dtype=np.float64)
    x = _finite(values)
    counts = np.bincount(np.searchsorted(e, x, side="left"), minlength=e.size + 1)
    smoothed = counts + pseudo_count
    total = smoothed.sum()
    if total == 0:
        return np.full(e.size + 1, 1.0 / (e.size + 1))
    out: FloatArray = (smoothed / total).astype(np.float64)
    return out


def quantile_sample(values: ArrayLike, size: int = SAMPLE_SIZE) -> FloatArray:
    """A deterministic sample of at most ``size`` order statistics spread evenly over ``values``."""
    x = np.sort(_finite(values))
    if x.size <= size:
        return x
    idx = ((np.arange(size) + 0.5) * x.size / size).astype(np.int64)
    return x[idx]


def _column_reference(values: ArrayLike, bins: int) -> dict[str, Any]:
    x = _finite(values)
    if x.size == 0:
        raise DataValidationError("a drift reference column has no finite values")
    edges = bin_edges(x, bins)
    return {
        "edges": edges.tolist(),
        "expected": proportions(x, edges).tolist(),
        "sample": quantile_sample(x).tolist(),
        "n": int(x.size),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "min": float(x.min()),
        "max": float(x.max()),
        "p05": float(np.quantile(x, 0.05)),
        "p50": float(np.quantile(x, 0.50)),
        "p95": float(np.quantile(x, 0.95)),
    }


def build_reference(
    x: ArrayLike,
    feature_names: Sequence[str],
    bins: int = 10,
    predictions: ArrayLike | None = None,
) -> dict[str, Any]:
    """The JSON-able drift reference of training rows ``x`` ``[n, F]`` (and OOS predictions)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(feature_names):
        raise DataValidationError(
            f"reference data must be [n, {len(feature_names)}] for {len(feature_names)} "
            f"feature names, got shape {list(arr.shape)}")
    if len(set(feature_names)) != len(feature_names):
        raise DataValidationError("feature names must be unique")
    ref: dict[str, Any] = {
        "format": REFERENCE_FORMAT,
        "bins": int(bins),
        "feature_names": list(feature_names),
        "features": {name: _column_reference(arr[:, j], bins)
                     for j, name in enumerate(feature_names)},
    }
    if predictions is not None:
        ref[PREDICTION] = _column_reference(predictions, bins)
    return ref


def psi(expected_props: ArrayLike, actual_props: ArrayLike, eps: float = PSI_EPSILON) -> float:
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
    """Two-sample Kolmogorov-Smirnov ``(statistic, p_value)``; ``(0, 1)`` when a side is empty."""
    from scipy.stats import ks_2samp

    r = _finite(reference_sample)
    v = _finite(live)
    if r.size == 0 or v.size == 0:
        return 0.0, 1.0
    res = ks_2samp(r, v)
    return float(res.statistic), float(res.pvalue)


def _row(name: str, col_ref: Mapping[str, Any], live: FloatArray, rebin: int | None,
         psi_threshold: float, ks_alpha: float) -> DriftRow:
    sample = np.asarray(col_ref["sample"], dtype=np.float64)
    if rebin is None:
        edges = np.asarray(col_ref["edges"], dtype=np.float64)
        expected = np.asarray(col_ref["expected"], dtype=np.float64)
    else:  # re-bin from the quantile sample, which represents the training distribution
        edges = bin_edges(sample, rebin)
        expected = proportions(sample, edges)
    value = psi(expected, proportions(live, edges, LIVE_PSEUDO_COUNT))
    stat, p = ks(sample, live)
    alarm = bool(value > psi_threshold and p < ks_alpha)
    return DriftRow(feature=name, psi=value, ks=stat, p_value=p, alarm=alarm)


def compare(
    reference: Mapping[str, Any],
    live: ArrayLike,
    psi_threshold: float = 0.2,
    ks_alpha: float = 0.01,
    predictions: ArrayLike | None = None,
    bins: int | None = None,
) -> list[DriftRow]:
    """Drift of each feature of ``live`` ``[n, F]`` (columns in the reference's order).

    A row alarms when the shift is both material (PSI above ``psi_threshold``) and significant
    (KS p-value below ``ks_alpha``): PSI alone is noisy on small windows, KS alone flags tiny
    shifts on large ones. ``predictions`` adds a ``"prediction"`` row when the reference has one;
    ``bins`` other than the reference's re-bins it from its quantile sample.
    """
    names: list[str] = list(reference.get("feature_names", []))
    arr = np.asarray(live, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise DataValidationError(
            f"live rows must be [n, {len(names)}] (features {', '.join(names) or 'none'}), "
            f"got shape {list(arr.shape)}")
    rebin = bins if bins is not None and bins != reference.get("bins") else None
    rows = [_row(name, reference["features"][name], arr[:, j], rebin, psi_threshold, ks_alpha)
            for j, name in enumerate(names)]
    if predictions is not None and PREDICTION in reference:
        rows.append(_row(PREDICTION, reference[PREDICTION], _finite(predictions), rebin,
                         psi_threshold, ks_alpha))
    return rows


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
    """Live drift over the last ``window`` observed rows (and predictions); thread-safe."""

    def __init__(self, reference: Mapping[str, Any], window: int = 60, bins: int | None = None,
                 psi_threshold: float = 0.2, ks_alpha: float = 0.01) -> None:
        if window < 2:
            raise ValueError("window must be at least 2")
        self.reference = reference
        self.feature_names: list[str] = list(reference.get("feature_names", []))
        self.window = window
        self.bins = bins
        self.psi_threshold = psi_threshold
        self.ks_alpha = ks_alpha
        self._lock = threading.Lock()
        self._rows = _Ring(window, len(self.feature_names))
        self._preds = _Ring(window, 1)

    def observe(self, rows: ArrayLike) -> None:
        """Add live feature rows ``[n, F]`` (for a windowed model input, its last time step)."""
        arr = np.asarray(rows, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != len(self.feature_names):
            raise DataValidationError(
                f"drift rows must be [n, {len(self.feature_names)}], got {list(arr.shape)}")
        with self._lock:
            self._rows.push(arr)

    def observe_predictions(self, p: ArrayLike) -> None:
        """Add served probabilities (compared with the reference's ``"prediction"``)."""
        arr = np.asarray(p, dtype=np.float64).reshape(-1, 1)
        with self._lock:
            self._preds.push(arr)

    @property
    def observed(self) -> int:
        with self._lock:
            return self._rows.count

    def snapshot(self) -> list[DriftRow]:
        """Drift rows for the current window; empty until at least two rows were observed."""
        with self._lock:
            rows = self._rows.values()
            preds = self._preds.values()[:, 0] if self._preds.count else None
        if rows.shape[0] < 2:
            return []
        return compare(self.reference, rows, self.psi_threshold, self.ks_alpha,
                       predictions=preds if preds is not None and preds.size >= 2 else None,
                       bins=self.bins)


def publish(metrics: Metrics, model: str, rows: Iterable[DriftRow]) -> None:
    """Set the ``finmlops_drift_*`` gauges of ``model`` from drift rows."""
    for r in rows:
        metrics.drift_psi.labels(model=model, feature=r.feature).set(r.psi)
        metrics.drift_ks.labels(model=model, feature=r.feature).set(r.ks)
        metrics.drift_alarm.labels(model=model, feature=r.feature).set(1.0 if r.alarm else 0.0)


def max_psi(rows: Iterable[DriftRow]) -> float:
    """The largest PSI among ``rows`` (0 when there are none)."""
    return max((r.psi for r in rows if math.isfinite(r.psi)), default=0.0)
