"""Everything the evaluate stage computes from out-of-sample predictions, as a plain dict.

Input: per variant, the OOS prediction frame from training (``date, ticker, probability,
label, forward_return, fold``; one row per day per ticker). Several tickers make an
equal-weight portfolio per day. Benchmarks (buy-and-hold, always-long) use the same days;
only the strategy is deflated by the number of trials (a benchmark's DSR is its PSR).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from finmlops.config import EvaluationSettings
from finmlops.errors import DataValidationError
from finmlops.evaluation._direction import direction_summary
from finmlops.evaluation.backtest import (
    BacktestResult,
    backtest_positions,
    buy_and_hold,
    cost_per_unit,
    equal_weight,
    run_backtest,
)
from finmlops.evaluation.performance import performance_metrics, sharpe_moments
from finmlops.evaluation.sensitivity import break_even_cost_bps, cost_sweep
from finmlops.evaluation.stress import stress_metrics

PREDICTION_COLUMNS = ("date", "ticker", "probability", "label", "forward_return")
BENCHMARKS = ("buy_and_hold", "always_long")
ImpactInputs = Mapping[str, pd.DataFrame]
"""Per ticker, a frame indexed by date with ``sigma`` and ``adv_notional`` columns."""


def backtests_for(frame: pd.DataFrame, settings: EvaluationSettings,
                  impact: ImpactInputs | None = None) -> dict[str, BacktestResult]:
    """The strategy and both benchmarks for one variant's predictions (portfolio if several
    tickers): ``{"strategy": ..., "buy_and_hold": ..., "always_long": ...}``."""
    strat, bh, al = [], [], []
    for ticker, g in frame.groupby("ticker", sort=True):
        g = g.sort_values("date")
        dates = g["date"].to_numpy("datetime64[ns]")
        r = g["forward_return"].to_numpy(np.float64)
        kw: dict[str, Any] = {}
        if impact is not None and str(ticker) in impact:
            inp = impact[str(ticker)].reindex(pd.DatetimeIndex(dates))
            kw = {"sigma": inp["sigma"].to_numpy(np.float64),
                  "adv_notional": inp["adv_notional"].to_numpy(np.float64)}
        strat.append(run_backtest(g["probability"].to_numpy(np.float64), r, settings,
                                  dates=dates, **kw))
        al.append(backtest_positions(np.ones_like(r), r, settings.costs, dates=dates, **kw))
        bh.append(buy_and_hold(r, dates))
    return {"strategy": equal_weight(strat), "buy_and_hold": equal_weight(bh),
            "always_long": equal_weight(al)}


def clean_predictions(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Checked predictions sorted by ticker and date, without rows lacking a forward return
    (the last days, whose outcome is unknown); returns the frame and how many were dropped."""
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(f"predictions lack columns: {', '.join(missing)}")
    out = frame.loc[:, list(PREDICTION_COLUMNS)].copy()
    out["date"] = pd.to_datetime(out["date"])
    out["ticker"] = out["ticker"].astype(str)
    keep = np.isfinite(out["forward_return"].to_numpy(np.float64)) & out["probability"].notna()
    dropped = int((~keep).sum())
    out = out[keep]
    if out.empty:
        raise DataValidationError("no predictions with a known forward return")
    if out.duplicated(["ticker", "date"]).any():
        raise DataValidationError("predictions repeat a (ticker, date) row")
    return out.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True), dropped


def evaluate_predictions(
    predictions: Mapping[str, pd.DataFrame],
    settings: EvaluationSettings,
    *,
    n_trials: int | None = None,
    trials_source: str = "variants",
    impact: ImpactInputs | None = None,
) -> dict[str, Any]:
    """Metrics net of the configured costs, stress windows, the cost sweep, the break-even
    cost and direction accuracy, for each variant and its benchmarks.

    The DSR deflates by ``n_trials`` (default: the number of variants) with the variance of
    the variants' per-period Sharpe ratios, floored at the null variance 1/(n-1) of each
    series' length (the null variance alone with fewer than two variants).
    """
    if not predictions:
        raise DataValidationError("no variants to evaluate")
    ppy = settings.periods_per_year
    frames: dict[str, tuple[pd.DataFrame, int]] = {
        v: clean_predictions(f) for v, f in predictions.items()}
    runs = {v: backtests_for(f, settings, impact) for v, (f, _) in frames.items()}
    srs = [s for s in (sharpe_moments(r["strategy"].net)[0] for r in runs.values())
           if s is not None]
    notes: list[str] = []
    trials = n_trials if n_trials is not None else len(predictions)
    if n_trials is None:
        notes.append(f"DSR trials = {trials}, the number of variants evaluated "
                     "(no count from the tracking store)")
    if len(srs) >= 2:
        sr_var: float | None = float(np.var(srs, ddof=1))
        var_source = ("variance of the evaluated variants' Sharpe ratios, at least the null "
                      "variance 1/(n-1)")
    else:
        sr_var = None
        var_source = "null variance 1/(n-1) (fewer than two variants)"
    variants: dict[str, Any] = {}
    for v, runs_v in runs.items():
        frame, dropped = frames[v]
        strat, bh = runs_v["strategy"], runs_v["buy_and_hold"]
        variants[v] = {
            "days": len(strat),
            "start": str(strat.dates[0]),
            "end": str(strat.dates[-1]),
            "tickers": sorted(frame["ticker"].unique().tolist()),
            "dropped_rows": dropped,
            "metrics": {k: performance_metrics(r, ppy, *_deflation(k, trials, sr_var)).as_dict()
                        for k, r in runs_v.items()},
            "stress": _stress(runs_v, settings, trials, sr_var),
            "cost_sweep": cost_sweep(strat, settings.cost_sweep_bps, ppy, trials, sr_var),
            "break_even_bps": break_even_cost_bps(strat, float(bh.equity[-1]) - 1.0),
            "direction": direction_summary(
                frame["probability"].to_numpy(np.float64), frame["label"].to_numpy(),
                settings.threshold, frame["ticker"].to_numpy()),
            "series": _series(runs_v),
        }
    out: dict[str, Any] = _finite({
        "format": 1,
        "settings": settings.model_dump(mode="json"),
        "cost_bps": cost_per_unit(settings.costs) * 1e4,
        "trials": {"n": trials, "source": trials_source if n_trials is not None else "variants",
                   "sr_variance": sr_var,
                   "sr_variance_source": var_source},
        "windows": {k: {"start": str(w.start), "end": str(w.end)}
                    for k, w in settings.stress_windows.items()},
        "notes": notes,
        "variants": variants,
    })
    return out


def summarize(evaluation: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The few headline numbers per variant, for the run state and one-line summaries."""
    out: dict[str, dict[str, Any]] = {}
    for v, e in evaluation["variants"].items():
        m, bh = e["metrics"]["strategy"], e["metrics"]["buy_and_hold"]
        out[v] = {
            "sharpe": m["sharpe"], "total_return": m["total_return"], "dsr": m["dsr"],
            "max_drawdown": m["max_drawdown"], "break_even_bps": e["break_even_bps"],
            "accuracy": e["direction"]["accuracy"],
            "buy_and_hold_sharpe": bh["sharpe"], "buy_and_hold_total_return": bh["total_return"],
        }
    return out


def _deflation(line: str, trials: int, sr_var: float | None) -> tuple[int, float | None]:
    """Only the strategy was selected among trials; a benchmark's DSR is its plain PSR."""
    return (trials, sr_var) if line == "strategy" else (1, None)


def _stress(runs: Mapping[str, BacktestResult], settings: EvaluationSettings, trials: int,
            sr_var: float | None) -> dict[str, dict[str, Any]]:
    windows, ppy = settings.stress_windows, settings.periods_per_year
    out: dict[str, dict[str, Any]] = {w: {} for w in windows}
    for line, res in runs.items():
        per = stress_metrics({line: res}, windows, ppy, *_deflation(line, trials, sr_var))
        for w, row in per.items():
            out[w].update(row)
    return out


def _finite(value: Any) -> Any:
    """The same data with NaN/inf as ``None``, so the JSON is valid for browsers too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _series(runs: Mapping[str, BacktestResult]) -> dict[str, Any]:
    """Daily equity per line (rounded, for plots) and the strategy's position."""
    strat = runs["strategy"]
    out: dict[str, Any] = {"dates": [str(d) for d in strat.dates]}
    for k, r in runs.items():
        out[k] = [float(f"{x:.7g}") for x in r.equity]
    out["position"] = [float(f"{x:.4g}") for x in strat.position]
    return out

