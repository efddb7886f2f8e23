"""Everything the evaluate stage computes from out-of-sample predictions, as the contract of
``evaluation.json`` (:class:`~finmlops.contracts.EvaluationFile`).

Input: per variant, the OOS prediction frame from training (``date, ticker, probability,
label, forward_return, fold``; one row per day per ticker), ``forward_return`` being the
return a position decided that day earns under the execution setting. Several tickers make
an equal-weight portfolio per day. Benchmarks use the same days: buy-and-hold, always-long
(buy-and-hold plus one entry cost) and exposure-matched (buy-and-hold scaled to the
strategy's mean position, the rest in cash). Only the strategy is deflated by the number
of trials (a benchmark's DSR is its PSR).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from finmlops.config import EvaluationSettings
from finmlops.contracts import EvaluationFile, EvaluationSummary
from finmlops.errors import DataValidationError
from finmlops.evaluation import _report_data as rd
from finmlops.evaluation._direction import direction_summary
from finmlops.evaluation.backtest import (
    BacktestResult,
    backtest_positions,
    buy_and_hold,
    cost_per_unit,
    equal_weight,
    run_backtest,
)
from finmlops.evaluation.execution import DESCRIPTIONS
from finmlops.evaluation.overfitting import Trials, TrialStats, trial_stats
from finmlops.evaluation.performance import performance_metrics, sharpe_moments
from finmlops.evaluation.sensitivity import cost_sweep
from finmlops.evaluation.stress import stress_metrics
from finmlops.files import json_safe

PREDICTION_COLUMNS = ("date", "ticker", "probability", "label", "forward_return")
LINES = ("strategy", "buy_and_hold", "always_long", "exposure_matched")
BENCHMARKS = LINES[1:]
ImpactInputs = Mapping[str, pd.DataFrame]
"""Per ticker, a frame indexed by date with ``sigma`` and ``adv_notional`` columns."""


def backtests_for(frame: pd.DataFrame, settings: EvaluationSettings,
                  impact: ImpactInputs | None = None,
                  rf: pd.Series | None = None) -> dict[str, BacktestResult]:
    """The strategy and every benchmark for one variant's predictions (portfolio if several
    tickers), keyed by :data:`LINES`. ``rf`` is the per-period risk-free return by date."""
    strat, bh, al = [], [], []
    for ticker, g in frame.groupby("ticker", sort=True):
        g = g.sort_values("date")
        dates = g["date"].to_numpy("datetime64[ns]")
        r = g["forward_return"].to_numpy(np.float64)
        kw: dict[str, Any] = {"rf": _rates(rf, dates)}
        if impact is not None and str(ticker) in impact:
            inp = impact[str(ticker)].reindex(pd.DatetimeIndex(dates))
            kw.update(sigma=inp["sigma"].to_numpy(np.float64),
                      adv_notional=inp["adv_notional"].to_numpy(np.float64))
        strat.append(run_backtest(g["probability"].to_numpy(np.float64), r, settings,
                                  dates=dates, **kw))
        al.append(backtest_positions(np.ones_like(r), r, settings.costs, dates=dates, **kw))
        bh.append(buy_and_hold(r, dates, rf=kw["rf"]))
    s, b = equal_weight(strat), equal_weight(bh)
    exposure = float(s.position.mean()) if len(s) else 0.0
    # buy-and-hold's gross return is the market's; the matched line holds it at `exposure`
    matched = backtest_positions(np.full(len(b), exposure), b.gross, 0.0, dates=b.dates,
                                 rf=b.rf)
    return {"strategy": s, "buy_and_hold": b, "always_long": equal_weight(al),
            "exposure_matched": matched}


def trial_returns(runs: Mapping[str, BacktestResult]) -> pd.DataFrame:
    """What the trial ledger keeps of one backtest: per day the strategy's net return, the
    buy-and-hold return on the same days and the risk-free return."""
    strat, bh = runs["strategy"], runs["buy_and_hold"]
    return pd.DataFrame({
        "date": pd.DatetimeIndex(strat.dates), "net": strat.net, "benchmark": bh.net,
        "rf": np.zeros(len(strat)) if strat.rf is None else strat.rf})


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
    keep &= out["label"].notna()
    dropped = int((~keep).sum())
    out = out[keep]
    if out.empty:
        raise DataValidationError("no predictions with a known forward return")
    if out.duplicated(["ticker", "date"]).any():
        raise DataValidationError("predictions repeat a (ticker, date) row")
    return out.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True), dropped


def variant_trials(runs: Mapping[str, Mapping[str, BacktestResult]], prior: int = 0) -> Trials:
    """Without a ledger: the evaluated variants themselves are the trials."""
    srs = [sharpe_moments(r["strategy"].excess)[0] for r in runs.values()]
    act = [sharpe_moments(r["strategy"].net - r["buy_and_hold"].net)[0] for r in runs.values()]
    stats = trial_stats([np.nan if s is None else s for s in srs],
                        [np.nan if s is None else s for s in act], prior)
    counted = [f"{len(runs)} variants evaluated in this run (no trial ledger)"]
    if prior:
        counted.append(f"{prior} trials declared in evaluation.prior_trials")
    return Trials(stats, "variants", counted, None, "no trial ledger: PBO not computed")


def evaluate_predictions(
    predictions: Mapping[str, pd.DataFrame],
    settings: EvaluationSettings,
    *,
    trials: Trials | None = None,
    impact: ImpactInputs | None = None,
    rf: pd.Series | None = None,
    horizon: int = 1,
) -> EvaluationFile:
    """Metrics net of the configured costs against every benchmark, benchmark-relative
    statistics, forecast tests, stress windows, the cost sweep, break-even costs and the
    tear sheet's figures, for each variant.

    The DSRs deflate by ``trials`` (default: the variants evaluated) with the variance of
    the trials' per-period Sharpe ratios, floored at the null variance 1/(n-1) of each
    series' length (the null variance alone with fewer than two trials).
    """
    if not predictions:
        raise DataValidationError("no variants to evaluate")
    ppy = settings.periods_per_year
    frames: dict[str, tuple[pd.DataFrame, int]] = {
        v: clean_predictions(f) for v, f in predictions.items()}
    runs = {v: backtests_for(f, settings, impact, rf) for v, (f, _) in frames.items()}
    trials = trials or variant_trials(runs, settings.prior_trials)
    stats = trials.stats
    notes: list[str] = []
    if trials.source == "variants":
        notes.append(f"DSR trials = {stats.n_trials}: the variants evaluated "
                     "(no trial ledger from the tracking store)")
    variants: dict[str, Any] = {}
    for v, runs_v in runs.items():
        frame, dropped = frames[v]
        strat = runs_v["strategy"]
        metrics = {k: performance_metrics(r, ppy, *_deflation(k, stats)).as_dict()
                   for k, r in runs_v.items()}
        relative = rd.relative(runs_v, settings, stats)
        variants[v] = {
            "days": len(strat),
            "start": str(strat.dates[0]),
            "end": str(strat.dates[-1]),
            "tickers": sorted(frame["ticker"].unique().tolist()),
            "dropped_rows": dropped,
            "metrics": metrics,
            "relative": relative,
            "dsr_by_trials": rd.dsr_by_trials(runs_v, stats),
            "stress": (stress := _stress(runs_v, settings, stats)),
            "stress_active": _stress_active(stress),
            "cost_sweep": cost_sweep(strat, settings.cost_sweep_bps, ppy, stats.n_trials,
                                     stats.sr_variance),
            "break_even_bps": relative["buy_and_hold"]["break_even_bps"],
            "direction": direction_summary(
                frame["probability"].to_numpy(np.float64), frame["label"].to_numpy(),
                settings.threshold, frame["ticker"].to_numpy()),
            "forecast": rd.forecast_tests(frame, settings.threshold, horizon),
            "tearsheet": rd.tearsheet(runs_v),
            "series": rd.series(runs_v, settings.rolling_days, ppy),
        }
    return EvaluationFile.model_validate(json_safe({
        "format": 2,
        "settings": settings.model_dump(mode="json"),
        "cost_bps": cost_per_unit(settings.costs) * 1e4,
        "execution": {"setting": settings.execution,
                      "description": DESCRIPTIONS[settings.execution]},
        "trials": {"n": stats.n_trials, "recorded": stats.recorded, "prior": stats.prior,
                   "source": trials.source, "counted": trials.counted,
                   "sr_variance": stats.sr_variance,
                   "active_sr_variance": stats.active_sr_variance,
                   "sr_variance_source": _variance_source(stats),
                   "pbo": trials.pbo, "pbo_note": trials.pbo_note},
        "windows": {k: {"start": str(w.start), "end": str(w.end)}
                    for k, w in settings.stress_windows.items()},
        "notes": notes,
        "variants": variants,
    }))


def summarize(evaluation: EvaluationFile) -> dict[str, EvaluationSummary]:
    """The few headline numbers per variant, for the run state and one-line summaries."""
    out: dict[str, EvaluationSummary] = {}
    for v, e in evaluation.variants.items():
        m, bh = e.metrics["strategy"], e.metrics["buy_and_hold"]
        act, capm = e.relative.buy_and_hold, e.relative.capm
        out[v] = EvaluationSummary(
            sharpe=m.sharpe, total_return=m.total_return, dsr=m.dsr,
            max_drawdown=m.max_drawdown, break_even_bps=e.break_even_bps,
            accuracy=e.direction.accuracy,
            buy_and_hold_sharpe=bh.sharpe, buy_and_hold_total_return=bh.total_return,
            active_total_return=act.active_total, information_ratio=act.information_ratio,
            active_psr=act.psr, active_dsr=act.dsr,
            sharpe_difference_p=act.sharpe_difference.p_value,
            alpha_t=capm.alpha_t, beta=capm.beta, n_trials=m.n_trials,
        )
    return out


def _deflation(line: str, stats: TrialStats) -> tuple[int, float | None]:
    """Only the strategy was selected among trials; a benchmark's DSR is its plain PSR."""
    return (stats.n_trials, stats.sr_variance) if line == "strategy" else (1, None)


def _variance_source(stats: TrialStats) -> str:
    if stats.sr_variance is None:
        return "null variance 1/(n-1) (fewer than two trials' Sharpe ratios known)"
    return (f"variance of {stats.recorded} trials' Sharpe ratios, at least the null variance "
            "1/(n-1)")


def _rates(rf: pd.Series | None, dates: np.ndarray) -> np.ndarray | None:
    if rf is None:
        return None
    rates = rf.reindex(pd.DatetimeIndex(dates)).to_numpy(np.float64)
    if not np.isfinite(rates).all():
        raise DataValidationError("the risk-free series does not cover every evaluated day")
    return rates


def _stress(runs: Mapping[str, BacktestResult], settings: EvaluationSettings,
            stats: TrialStats) -> dict[str, dict[str, Any]]:
    """Every line's metrics per window (totals compounded inside the window)."""
    windows, ppy = settings.stress_windows, settings.periods_per_year
    out: dict[str, dict[str, Any]] = {w: {} for w in windows}
    for line, res in runs.items():
        per = stress_metrics({line: res}, windows, ppy, *_deflation(line, stats))
        for w, row in per.items():
            out[w].update(row)
    return out


def _stress_active(stress: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per window, the strategy's active return against each benchmark, compounded:
    (1 + R_strategy) / (1 + R_benchmark) - 1 over the window (not a sum of daily gaps)."""
    out: dict[str, dict[str, Any]] = {}
    for w, row in stress.items():
        s = row.get("strategy")
        out[w] = {b: (None if not s or not row.get(b) else
                      (1 + s["total_return"]) / (1 + row[b]["total_return"]) - 1)
                  for b in ("buy_and_hold", "exposure_matched")}
    return out


