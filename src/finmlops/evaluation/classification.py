"""Classification metrics of direction forecasts, with the naive baselines to beat.

Pure numpy/scipy. Accuracy carries a 95% Wilson interval so a reader can see whether a model
beats a coin (or always-up) by more than luck; AUC is the rank (Mann-Whitney) statistic with
ties counted half.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri
from scipy.stats import rankdata

from finmlops.errors import DataValidationError

EPS = 1e-7
"""Probabilities are clipped to [EPS, 1 - EPS] for log-loss (so 0/1 baselines stay finite)."""

METRIC_NAMES: tuple[str, ...] = (
    "n", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "balanced_accuracy", "log_loss",
    "brier", "auc", "positive_rate",
)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (well-behaved near 0, 1 and small n)."""
    if n <= 0:
        return (math.nan, math.nan)
    z = float(ndtri(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve via ranks (ties get average ranks); NaN with one class only."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    pos = int((y == 1).sum())
    neg = y.size - pos
    if pos == 0 or neg == 0:
        return math.nan
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _check(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> tuple[
        npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise DataValidationError(f"labels ({y.size}) and probabilities ({p.size}) differ in size")
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataValidationError("labels must be 0 or 1")
    if not (np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()):
        raise DataValidationError("probabilities must be finite and within [0, 1]")
    return y, p


def classification_metrics(labels: npt.ArrayLike, probabilities: npt.ArrayLike,
                           threshold: float = 0.5) -> dict[str, float]:
    """Accuracy (+ Wilson 95% CI), balanced accuracy, log-loss, Brier, AUC of P(up) forecasts.

    A forecast says "up" when its probability is > ``threshold``.
    """
    y, p = _check(labels, probabilities)
    n = y.size
    if n == 0:
        return {k: (0.0 if k == "n" else math.nan) for k in METRIC_NAMES}
    pred = (p > threshold).astype(np.float64)
    hits = int((pred == y).sum())
    low, high = wilson_interval(hits, n)
    recalls = [float((pred[y == c] == c).mean()) for c in (0.0, 1.0) if (y == c).any()]
    pc = np.clip(p, EPS, 1 - EPS)
    return {
        "n": float(n),
        "accuracy": hits / n,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "balanced_accuracy": float(np.mean(recalls)),
        "log_loss": float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
        "brier": float(np.mean((p - y) ** 2)),
        "auc": auc(y, p),
        "positive_rate": float(pred.mean()),
    }


def naive_probabilities(previous_return: npt.ArrayLike) -> dict[str, npt.NDArray[np.float64]]:
    """The baselines as probabilities: ``always_up`` (1) and ``yesterday`` (1 if the return
    known at t, i.e. the last day's, was > 0, else 0)."""
    r = np.asarray(previous_return, dtype=np.float64).ravel()
    return {"always_up": np.ones_like(r), "yesterday": (r > 0).astype(np.float64)}


def baseline_metrics(labels: npt.ArrayLike, previous_return: npt.ArrayLike,
                     threshold: float = 0.5) -> dict[str, dict[str, float]]:
    """:func:`classification_metrics` of each naive baseline on the same rows."""
    return {name: classification_metrics(labels, p, threshold)
            for name, p in naive_probabilities(previous_return).items()}
