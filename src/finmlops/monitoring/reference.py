"""The drift reference a model carries (``model.json`` ``reference``): what each feature is
tested on, its distribution, and the null calibrated on windows of the training period.

The basis of each feature is chosen by rule: a *smoothed level* (lag-1 autocorrelation on the
reference of at least :data:`SMOOTH_AC1`: rolling means and volatilities, MACD, multi-day
returns, rolling beta and correlation) is tested on its daily changes, anything else on its
level. The prediction is always tested on its level (the positions follow from it), against the
walk-forward out-of-sample predictions. Plain JSON; :func:`prepare_reference` turns it into
arrays once for repeated comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from finmlops.errors import DataValidationError
from finmlops.monitoring import _stats

REFERENCE_FORMAT = 2
SAMPLE_SIZE = 512
SMOOTH_AC1 = 0.5
"""A feature whose lag-1 autocorrelation on the reference is at least this is a smoothed level
and is tested on its daily changes."""
DEFAULT_LENGTHS = _stats.LENGTHS
PREDICTION = "prediction"
"""Name of the prediction-distribution row (reference key and ``DriftRow.feature``)."""
LEVEL, CHANGE = "level", "change"

FloatArray = NDArray[np.float64]


def proportions(values: ArrayLike, edges: ArrayLike, pseudo_count: float = 0.0) -> FloatArray:
    """Share of finite ``values`` in each bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.

    ``pseudo_count`` is added to every bin first (0.5 is Jeffreys' prior), so that an empty
    bin of a short live window costs a bounded amount instead of ``ln(1 / eps)``.
    """
    x = _stats.finite(values)
    out: FloatArray = _stats.bin_shares(x[None, :], np.asarray(edges, dtype=np.float64),
                                        pseudo_count)[0]
    return out


def quantile_sample(values: ArrayLike, size: int = SAMPLE_SIZE) -> FloatArray:
    """A deterministic sample of at most ``size`` order statistics spread evenly over ``values``."""
    x = np.sort(_stats.finite(values))
    if x.size <= size:
        return x
    idx = ((np.arange(size) + 0.5) * x.size / size).astype(np.int64)
    out: FloatArray = x[idx]
    return out


def lag1_autocorrelation(values: ArrayLike, groups: ArrayLike | None = None) -> float:
    """Correlation of consecutive finite values (within a group); 0 for a constant series."""
    x = np.asarray(values, dtype=np.float64).ravel()
    ok = np.isfinite(x[:-1]) & np.isfinite(x[1:])
    if groups is not None:
        g = np.asarray(groups).ravel()
        ok &= g[:-1] == g[1:]
    a, b = x[:-1][ok], x[1:][ok]
    if a.size < 3:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else 0.0


def changes_of(values: ArrayLike, groups: ArrayLike | None = None) -> FloatArray:
    """First differences along rows (``[n]`` or ``[n, F]``), NaN on each group's first row."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full_like(x, np.nan)
    out[1:] = x[1:] - x[:-1]
    if groups is not None:
        g = np.asarray(groups).ravel()
        out[1:][g[1:] != g[:-1]] = np.nan
    return out


def _column_reference(values: ArrayLike, bins: int, basis: str, ac1: float) -> dict[str, Any]:
    x = _stats.finite(values)
    if x.size == 0:
        raise DataValidationError("a drift reference column has no finite values")
    edges = _stats.bin_edges(x, bins)
    return {
        "basis": basis,
        "ac1": round(ac1, 6),
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


def _group_codes(groups: ArrayLike | None, n: int) -> NDArray[np.int64] | None:
    if groups is None:
        return None
    g = np.asarray(groups).ravel()
    if g.size != n:
        raise DataValidationError(f"groups must have one label per row ({n}), got {g.size}")
    out: NDArray[np.int64] = np.concatenate([[0], np.cumsum(g[1:] != g[:-1])]).astype(np.int64)
    return out


def build_reference(
    x: ArrayLike,
    feature_names: Sequence[str],
    bins: int = 10,
    predictions: ArrayLike | None = None,
    *,
    lengths: Iterable[int] | None = None,
    groups: ArrayLike | None = None,
) -> dict[str, Any]:
    """The JSON-able drift reference of training rows ``x`` ``[n, F]`` (and OOS predictions).

    Rows (and ``predictions``) are days in time order; ``groups`` (a ticker per row,
    contiguous) keeps changes and windows inside one ticker. ``lengths`` are the live window
    lengths to calibrate (default :data:`DEFAULT_LENGTHS`; add the service's window); a length
    with fewer than 100 windows in the reference is left out.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(feature_names):
        raise DataValidationError(
            f"reference data must be [n, {len(feature_names)}] for {len(feature_names)} "
            f"feature names, got shape {list(arr.shape)}")
    if len(set(feature_names)) != len(feature_names):
        raise DataValidationError("feature names must be unique")
    codes = _group_codes(groups, arr.shape[0])
    want = tuple(DEFAULT_LENGTHS if lengths is None else lengths)
    tested = np.empty_like(arr)
    features: dict[str, Any] = {}
    for j, name in enumerate(feature_names):
        ac1 = lag1_autocorrelation(arr[:, j], codes)
        basis = CHANGE if ac1 >= SMOOTH_AC1 else LEVEL
        tested[:, j] = changes_of(arr[:, j], codes) if basis == CHANGE else arr[:, j]
        features[name] = _column_reference(tested[:, j], bins, basis, ac1)
    null = _stats.calibrate(
        tested, [np.asarray(features[n]["sample"]) for n in feature_names], want, codes)
    thresholds: dict[str, list[list[float]]] = null.pop("thresholds")
    for j, name in enumerate(feature_names):
        features[name]["thresholds"] = {k: v[j] for k, v in thresholds.items()}
    ref: dict[str, Any] = {
        "format": REFERENCE_FORMAT,
        "bins": int(bins),
        "feature_names": list(feature_names),
        "rule": {"smooth_ac1": SMOOTH_AC1, "null": "every window of the reference rows"},
        "features": features,
        "null": null,
    }
    if predictions is not None:
        p = np.asarray(predictions, dtype=np.float64).ravel()
        col = _column_reference(p, bins, LEVEL, lag1_autocorrelation(p))
        pnull = _stats.calibrate(p[:, None], [np.asarray(col["sample"])], want)
        col["null"] = {"lengths": pnull["lengths"], "windows": pnull["windows"],
                       "probs": pnull["probs"],
                       "thresholds": {k: v[0] for k, v in pnull["thresholds"].items()}}
        ref[PREDICTION] = col
    return ref


@dataclass(frozen=True)
class Column:
    """One tested series of a reference, as arrays."""

    basis: str
    sample: FloatArray
    edges: FloatArray
    expected: FloatArray
    thresholds: dict[int, FloatArray]
    probs: dict[int, FloatArray]


def _column(col: Mapping[str, Any], probs: Mapping[str, Any]) -> Column:
    thresholds = col.get("thresholds") or (col.get("null") or {}).get("thresholds") or {}
    return Column(
        basis=str(col.get("basis", LEVEL)),
        sample=np.asarray(col["sample"], dtype=np.float64),
        edges=np.asarray(col["edges"], dtype=np.float64),
        expected=np.asarray(col["expected"], dtype=np.float64),
        thresholds={int(k): np.asarray(v, dtype=np.float64) for k, v in thresholds.items()},
        probs={int(k): np.asarray(v, dtype=np.float64) for k, v in probs.items()})


@dataclass(frozen=True)
class PreparedReference:
    """A reference with its lists as arrays, for comparing many windows; ``compare`` and
    ``DriftMonitor`` take it in place of the mapping."""

    names: tuple[str, ...]
    bins: int | None
    columns: tuple[Column, ...]
    lengths: tuple[int, ...]
    family: dict[int, FloatArray]
    count: dict[int, dict[str, list[float]]]
    prediction: Column | None
    prediction_lengths: tuple[int, ...]
    format: int


def prepare_reference(reference: Mapping[str, Any] | PreparedReference) -> PreparedReference:
    """The arrays of a reference (the same object for one already prepared). A format-1
    reference (no null) prepares with no calibrated lengths."""
    if isinstance(reference, PreparedReference):
        return reference
    null: Mapping[str, Any] = reference.get("null") or {}
    names = tuple(reference.get("feature_names", []))
    missing = [n for n in names if n not in (reference.get("features") or {})]
    if missing:
        raise DataValidationError(f"drift reference lacks features: {', '.join(missing)}")
    pred = reference.get(PREDICTION)
    pnull: Mapping[str, Any] = (pred.get("null") or {}) if isinstance(pred, Mapping) else {}
    return PreparedReference(
        names=names,
        bins=reference.get("bins"),
        columns=tuple(_column(reference["features"][n], null.get("probs") or {})
                      for n in names),
        lengths=tuple(int(x) for x in null.get("lengths", [])),
        family={int(k): np.asarray(v, dtype=np.float64)
                for k, v in (null.get("family") or {}).items()},
        count={int(k): dict(v) for k, v in (null.get("count") or {}).items()},
        prediction=(_column(pred, pnull.get("probs") or {}) if isinstance(pred, Mapping)
                    else None),
        prediction_lengths=tuple(int(x) for x in pnull.get("lengths", [])),
        format=int(reference.get("format", 1)),
    )
