"""Direction accuracy with a confidence interval, naive baselines and a reliability table,
as the report's verdict needs them (computed from the out-of-sample predictions)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from finmlops.evaluation.backtest import FloatArray
from finmlops.evaluation.classification import wilson_interval

RELIABILITY_BINS = 10


def direction_summary(probability: FloatArray, label: NDArray[Any], threshold: float,
                      groups: NDArray[Any] | None = None) -> dict[str, Any]:
    """Accuracy [95% CI], always-up and yesterday's-direction baselines, Brier score, log
    loss and a reliability table (mean predicted vs observed frequency per probability bin).

    ``groups`` (e.g. tickers) keeps the "yesterday" baseline from crossing instruments; rows
    are assumed in date order within a group.
    """
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    n = int(y.shape[0])
    pred = (p > threshold).astype(np.float64)
    hits = int((pred == y).sum())
    lo, hi = wilson_interval(hits, n)
    yesterday = np.full(n, np.nan)
    keys = np.zeros(n) if groups is None else np.asarray(groups)
    for g in np.unique(keys):
        idx = np.flatnonzero(keys == g)
        yesterday[idx[1:]] = y[idx[:-1]]
    have = ~np.isnan(yesterday)
    eps = 1e-12
    pc = np.clip(p, eps, 1 - eps)
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, RELIABILITY_BINS - 1)
    bins = []
    for b in range(RELIABILITY_BINS):
        m = which == b
        if m.any():
            bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(m.sum()),
                         "mean_predicted": float(p[m].mean()), "observed": float(y[m].mean())})
    return {
        "n": n,
        "accuracy": hits / n if n else None,
        "accuracy_ci": [lo, hi],
        "always_up": float(y.mean()) if n else None,
        "yesterday": float((yesterday[have] == y[have]).mean()) if have.any() else None,
        "brier": float(((p - y) ** 2).mean()) if n else None,
        "log_loss": float(-(y * np.log(pc) + (1 - y) * np.log(1 - pc)).mean()) if n else None,
        "reliability": bins,
    }
