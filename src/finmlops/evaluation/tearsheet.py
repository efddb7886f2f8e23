"""The figures of a tear sheet, from daily returns: calendar returns, rolling statistics,
the worst drawdowns and the return distribution with its tail risk. Pure numpy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from finmlops.evaluation.backtest import FloatArray

VAR_LEVELS = (0.95, 0.99)
HISTOGRAM_BINS = 60


def calendar_returns(dates: ArrayLike, returns: ArrayLike) -> dict[str, list[dict[str, Any]]]:
    """Compounded returns per calendar month and year: ``{"monthly": [{year, month,
    return, days}], "yearly": [{year, return, days}]}`` in date order."""
    d = np.asarray(dates).astype("datetime64[D]")
    r = np.asarray(returns, dtype=np.float64)
    months = d.astype("datetime64[M]")
    out: dict[str, list[dict[str, Any]]] = {"monthly": [], "yearly": []}
    for unit, key in ((months, "monthly"), (d.astype("datetime64[Y]"), "yearly")):
        keys, start = np.unique(unit, return_index=True)
        stops = [*start[1:], r.size]
        for k, a, b in zip(keys, start, stops, strict=True):
            total = float(np.prod(1.0 + r[a:b]) - 1.0)
            year = int(k.astype("datetime64[Y]").astype(np.int64) + 1970)
            row: dict[str, Any] = {"year": year, "return": total, "days": int(b - a)}
            if key == "monthly":
                row["month"] = int(k.astype(np.int64) % 12 + 1)
            out[key].append(row)
    return out


def rolling_stats(returns: ArrayLike, benchmark: ArrayLike, window: int,
                  periods_per_year: int = 252) -> dict[str, list[float | None]]:
    """Trailing-``window`` annualised Sharpe ratio and volatility of ``returns`` (excess
    returns) and its beta to ``benchmark``; ``None`` until a full window exists."""
    r = np.asarray(returns, dtype=np.float64)
    b = np.asarray(benchmark, dtype=np.float64)
    n = r.size
    empty: dict[str, list[float | None]] = {"sharpe": [None] * n, "volatility": [None] * n,
                                            "beta": [None] * n}
    if n < window or window < 2:
        return empty

    def trailing(x: FloatArray) -> FloatArray:
        c = np.concatenate([[0.0], np.cumsum(x)])
        out: FloatArray = c[window:] - c[:-window]
        return out

    # centre first: the cumulative sums of squares then lose no precision
    rc, bc = r - r.mean(), b - b.mean()
    sr_, sb_ = trailing(rc), trailing(bc)
    srr, sbb, srb = trailing(rc * rc), trailing(bc * bc), trailing(rc * bc)
    w = float(window)
    var_r = np.maximum(srr - sr_**2 / w, 0.0) / (w - 1)
    var_b = np.maximum(sbb - sb_**2 / w, 0.0) / (w - 1)
    cov = (srb - sr_ * sb_ / w) / (w - 1)
    mean_r = sr_ / w + r.mean()
    sd = np.sqrt(var_r)
    ppy = float(periods_per_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(sd > 1e-12, mean_r / sd * math.sqrt(ppy), np.nan)
        beta = np.where(var_b > 1e-16, cov / var_b, np.nan)
    pad: list[float | None] = [None] * (window - 1)
    return {"sharpe": pad + _clean(sharpe), "volatility": pad + _clean(sd * math.sqrt(ppy)),
            "beta": pad + _clean(beta)}


def drawdown_episodes(dates: ArrayLike, equity: ArrayLike, top: int = 5) -> list[dict[str, Any]]:
    """The ``top`` deepest drawdowns: peak (last day at the high before the fall), trough,
    recovery (first day back at the peak; ``None`` if not yet), depth (negative) and
    length in trading days from peak to recovery (to the last day when not recovered).
    The start counts as a peak at 1."""
    d = np.asarray(dates).astype("datetime64[D]")
    eq = np.asarray(equity, dtype=np.float64)
    n = eq.size
    if n == 0:
        return []
    level = np.concatenate([[1.0], eq])  # index 0 is the start, before the first day
    peak = np.maximum.accumulate(level)
    under = level < peak
    episodes: list[dict[str, Any]] = []
    i = 1
    while i <= n:
        if not under[i]:
            i += 1
            continue
        start = i - 1  # the last index at the peak
        j = i
        while j <= n and under[j]:
            j += 1
        seg = level[i:j] / peak[i:j] - 1.0
        trough = i + int(np.argmin(seg))
        recovered = j <= n
        episodes.append({
            "peak": _day(d, start), "trough": _day(d, trough),
            "recovery": _day(d, j) if recovered else None,
            "depth": float(seg.min()),
            "days": int((j if recovered else n) - start),
            "recovered": recovered,
        })
        i = j
    episodes.sort(key=lambda e: e["depth"])
    return episodes[:top]


def distribution(returns: ArrayLike, bins: int = HISTOGRAM_BINS,
                 levels: tuple[float, ...] = VAR_LEVELS) -> dict[str, Any]:
    """Histogram of daily returns and historical VaR/CVaR (losses as positive fractions:
    VaR is the loss exceeded on 1 - level of days, CVaR the mean loss on those days)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size == 0:
        return {"n": 0, "histogram": {"edges": [], "counts": []}, "var": {}, "cvar": {}}
    counts, edges = np.histogram(r, bins=bins)
    var: dict[str, float] = {}
    cvar: dict[str, float] = {}
    for level in levels:
        q = float(np.quantile(r, 1.0 - level))
        var[f"{level:g}"] = -q
        cvar[f"{level:g}"] = -float(r[r <= q].mean())
    return {
        "n": int(r.size), "mean": float(r.mean()),
        "std": float(r.std(ddof=1)) if r.size > 1 else None,
        "best": float(r.max()), "worst": float(r.min()),
        "positive_days": float((r > 0).mean()),
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        "var": var, "cvar": cvar,
    }


def _day(dates: NDArray[np.datetime64], index: int) -> str:
    """Level index -> date: index 0 is the start (before the first day), shown as that day."""
    return str(dates[max(index - 1, 0)])


def _clean(values: FloatArray) -> list[float | None]:
    return [float(f"{v:.5g}") if math.isfinite(v) else None for v in values.tolist()]
