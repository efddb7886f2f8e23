"""Forecast tests on the same days: is the model's direction call, its probability, its
ranking better than a naive forecast's, beyond luck?

- :func:`mcnemar_exact`: paired hit/miss against another forecast (always-up), exact
  binomial on the days the two disagree.
- :func:`diebold_mariano`: equal expected loss (log-loss here) of two forecasts, with the
  Harvey-Leybourne-Newbold (1997) small-sample factor and Student-t tail.
- :func:`delong_auc`: the AUC's variance by DeLong, DeLong & Clarke-Pearson (1988), in the
  midrank form of Sun & Xu (2014), and its normal confidence interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binom, norm, rankdata
from scipy.stats import t as student_t

from finmlops.errors import DataValidationError
from finmlops.evaluation.backtest import FloatArray
from finmlops.evaluation.classification import EPS


@dataclass(frozen=True)
class McNemar:
    """``wins``: days only the model called right; ``losses``: days only the other did."""

    n: int
    wins: int
    losses: int
    p_value: float
    """Two-sided exact p of wins vs losses ~ Binomial(wins + losses, 1/2)."""
    p_better: float
    """One-sided: the probability of at least ``wins`` if the model is no better."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DieboldMariano:
    """Mean loss difference (model - other; negative favours the model) and its test."""

    n: int
    mean_difference: float
    statistic: float | None
    p_value: float | None
    """Two-sided."""
    p_better: float | None
    """One-sided: the probability of a mean difference this low if the model is no better."""
    horizon: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DeLong:
    auc: float
    se: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    """Two-sided p of AUC = 0.5."""
    positives: int
    negatives: int

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = list(self.ci) if self.ci is not None else None
        return out


def mcnemar_exact(model_correct: ArrayLike, other_correct: ArrayLike) -> McNemar:
    """Exact McNemar test of two forecasts' hits on the same days.

    Against always-up, the discordant days are the model's "down" calls: a win when the day
    fell, a loss when it rose. So the test asks whether its down calls beat a coin.
    """
    a = np.asarray(model_correct, dtype=bool)
    b = np.asarray(other_correct, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise DataValidationError("hit series must be one-dimensional and of equal length")
    wins = int((a & ~b).sum())
    losses = int((~a & b).sum())
    k = wins + losses
    if k == 0:
        return McNemar(int(a.size), 0, 0, 1.0, 1.0)
    p = min(1.0, 2.0 * float(binom.cdf(min(wins, losses), k, 0.5)))
    return McNemar(int(a.size), wins, losses, p, float(binom.sf(wins - 1, k, 0.5)))


def log_loss_terms(label: ArrayLike, probability: ArrayLike) -> FloatArray:
    """Per-row log-loss, probabilities clipped to [EPS, 1 - EPS] as in the metrics."""
    y = np.asarray(label, dtype=np.float64)
    p = np.clip(np.asarray(probability, dtype=np.float64), EPS, 1 - EPS)
    out: FloatArray = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return out


def base_rate_forecast(label: ArrayLike, horizon: int = 1) -> FloatArray:
    """Always-up as a probability: P(up) = the share of up days among the labels already
    known (``horizon`` rows back and earlier), with one pseudo-count each way, so the first
    forecast is 0.5 and none is 0 or 1. Rows are one instrument in date order."""
    y = np.asarray(label, dtype=np.float64)
    ups = np.concatenate([np.zeros(horizon), np.cumsum(y)[: max(y.size - horizon, 0)]])
    seen = np.concatenate([np.zeros(horizon), np.arange(1, max(y.size - horizon, 0) + 1)])
    out: FloatArray = (ups[: y.size] + 1.0) / (seen[: y.size] + 2.0)
    return out


def diebold_mariano(loss_model: ArrayLike, loss_other: ArrayLike, horizon: int = 1
                    ) -> DieboldMariano:
    """DM test of equal mean loss with autocovariances up to ``horizon - 1`` (rectangular,
    as for h-step forecasts) and the HLN correction sqrt((n + 1 - 2h + h(h-1)/n) / n)."""
    d = np.asarray(loss_model, dtype=np.float64) - np.asarray(loss_other, dtype=np.float64)
    if d.ndim != 1 or not np.isfinite(d).all():
        raise DataValidationError("losses must be finite, one-dimensional and aligned")
    n = d.shape[0]
    mean = float(d.mean()) if n else math.nan
    if n < 3:
        return DieboldMariano(n, mean, None, None, None, horizon)
    c = d - mean
    lrv = float(c @ c) / n
    for lag in range(1, min(horizon, n)):
        lrv += 2.0 * float(c[lag:] @ c[:-lag]) / n
    if not lrv > 0:
        return DieboldMariano(n, mean, None, None, None, horizon)
    h = horizon
    stat = mean / math.sqrt(lrv / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    df = n - 1
    return DieboldMariano(n, mean, stat, float(2 * student_t.sf(abs(stat), df)),
                          float(student_t.cdf(stat, df)), horizon)


def delong_auc(labels: ArrayLike, scores: ArrayLike, confidence: float = 0.95) -> DeLong:
    """AUC (ties count half) with DeLong's variance and a normal interval clipped to [0, 1]."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise DataValidationError("labels and scores must be one-dimensional and aligned")
    pos, neg = s[y == 1], s[y == 0]
    m, k = pos.size, neg.size
    if m == 0 or k == 0:
        return DeLong(math.nan, None, None, None, m, k)
    both = rankdata(np.concatenate([pos, neg]))
    v10 = (both[:m] - rankdata(pos)) / k  # per positive: share of negatives ranked below
    v01 = 1.0 - (both[m:] - rankdata(neg)) / m  # per negative: share of positives above
    auc = float(v10.mean())
    if m < 2 or k < 2:
        return DeLong(auc, None, None, None, m, k)
    var = float(v10.var(ddof=1)) / m + float(v01.var(ddof=1)) / k
    se = math.sqrt(var)
    if not se > 0:
        return DeLong(auc, 0.0, (auc, auc), None, m, k)
    z = float(norm.ppf(0.5 + confidence / 2))
    ci = (max(0.0, auc - z * se), min(1.0, auc + z * se))
    return DeLong(auc, se, ci, float(2 * norm.sf(abs(auc - 0.5) / se)), m, k)
