"""The parts of one variant's evaluation beyond the per-line metrics: benchmark-relative
statistics, forecast tests, the tear sheet's figures and the plotted daily series."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from finmlops.config import EvaluationSettings
from finmlops.evaluation.backtest import BacktestResult, FloatArray
from finmlops.evaluation.forecast import (
    base_rate_forecast,
    delong_auc,
    diebold_mariano,
    log_loss_terms,
    mcnemar_exact,
)
from finmlops.evaluation.overfitting import TrialStats, floored_variance
from finmlops.evaluation.performance import (
    expected_max_sharpe,
    min_track_record_length,
    probabilistic_sharpe_ratio,
    sharpe_moments,
)
from finmlops.evaluation.relative import (
    hac_regression,
    information_ratio,
    memmel_test,
    sharpe_difference,
)
from finmlops.evaluation.sensitivity import break_even_active_bps
from finmlops.evaluation.tearsheet import (
    calendar_returns,
    distribution,
    drawdown_episodes,
    rolling_stats,
)

ACTIVE_BENCHMARKS = ("buy_and_hold", "exposure_matched")
DSR_SENSITIVITY = (1, 2, 10, 50, 100)
"""Trial counts at which the report shows what the DSR would be."""
TEARSHEET_LINES = ("strategy", "buy_and_hold")


def sharpe_statistics(returns: FloatArray, n_trials: int, sr_variance: float | None,
                      periods_per_year: int) -> dict[str, Any]:
    """Per-period and annual Sharpe ratio of any series with its PSR (vs 0), MinTRL and DSR
    deflated by ``n_trials`` trials of variance ``sr_variance`` (floored at the null)."""
    n = returns.shape[0]
    sr, g3, g4 = sharpe_moments(returns)
    sr0 = expected_max_sharpe(n_trials, floored_variance(sr_variance, n))
    out: dict[str, Any] = {"sharpe_per_period": sr, "sharpe": None, "psr": None,
                           "min_trl": None, "dsr": None, "dsr_benchmark_sharpe": sr0,
                           "n_trials": n_trials}
    if sr is None or g3 is None or g4 is None:
        return out
    out.update(sharpe=sr * math.sqrt(periods_per_year),
               psr=probabilistic_sharpe_ratio(sr, n, g3, g4),
               min_trl=min_track_record_length(sr, g3, g4),
               dsr=probabilistic_sharpe_ratio(sr, n, g3, g4, sr0))
    return out


def relative(runs: Mapping[str, BacktestResult], settings: EvaluationSettings,
             stats: TrialStats) -> dict[str, Any]:
    """Active return against buy-and-hold and the exposure-matched benchmark (total
    compounded, annual mean, tracking error, IR, PSR/DSR/MinTRL of the active returns,
    the Sharpe-difference tests, the break-even cost) and CAPM alpha/beta vs buy-and-hold."""
    ppy = settings.periods_per_year
    strat = runs["strategy"]
    out: dict[str, Any] = {"exposure": float(strat.position.mean()) if len(strat) else 0.0}
    for name in ACTIVE_BENCHMARKS:
        bench = runs[name]
        active = strat.net - bench.net
        sd = float(active.std(ddof=1)) if active.size > 1 else 0.0
        out[name] = {
            "active_total": float(strat.equity[-1] / bench.equity[-1] - 1.0),
            "active_annual": float(active.mean()) * ppy,
            "tracking_error": sd * math.sqrt(ppy),
            "information_ratio": information_ratio(active, ppy),
            **sharpe_statistics(active, stats.n_trials, stats.active_sr_variance, ppy),
            "sharpe_difference": sharpe_difference(strat.excess, bench.excess,
                                                   settings.hac_lags).as_dict(),
            "sharpe_difference_iid": memmel_test(strat.excess, bench.excess).as_dict(),
            "break_even_bps": break_even_active_bps(strat, bench.net),
        }
    reg = hac_regression(strat.excess, runs["buy_and_hold"].excess, settings.hac_lags)
    out["capm"] = {**reg.as_dict(), "alpha_annual": reg.alpha * ppy}
    return out


def dsr_by_trials(runs: Mapping[str, BacktestResult], stats: TrialStats) -> dict[str, Any]:
    """The strategy's DSR (absolute and active vs buy-and-hold) at other trial counts, with
    the same Sharpe-ratio variance: how much the verdict hangs on the count.
    ``{"trials": [1, 2, ...], "absolute": [...], "active": [...]}``."""
    strat = runs["strategy"]
    out: dict[str, Any] = {"trials": list(DSR_SENSITIVITY)}
    for key, series, var in (
            ("absolute", strat.excess, stats.sr_variance),
            ("active", strat.net - runs["buy_and_hold"].net, stats.active_sr_variance)):
        n = series.shape[0]
        sr, g3, g4 = sharpe_moments(series)
        v = floored_variance(var, n)
        out[key] = [None if sr is None or g3 is None or g4 is None else
                    probabilistic_sharpe_ratio(sr, n, g3, g4, expected_max_sharpe(k, v))
                    for k in DSR_SENSITIVITY]
    return out


def forecast_tests(frame: pd.DataFrame, threshold: float, horizon: int = 1) -> dict[str, Any]:
    """The model against naive forecasts on the same rows: exact McNemar against always-up,
    Diebold-Mariano on log-loss against a coin (0.5) and the running base rate of up days,
    DeLong's interval for the AUC. Loss differences are averaged per day across tickers."""
    p = frame["probability"].to_numpy(np.float64)
    y = frame["label"].to_numpy(np.float64)
    model_right = (p > threshold) == (y == 1)
    base = np.empty_like(p)
    for _, idx in frame.groupby("ticker", sort=False).indices.items():
        base[idx] = base_rate_forecast(y[idx], horizon)  # frame is sorted by ticker, date
    loss = log_loss_terms(y, p)
    dates = frame["date"].to_numpy()
    daily = pd.DataFrame({"date": dates, "model": loss, "coin": math.log(2.0),
                          "base_rate": log_loss_terms(y, base)}).groupby("date").mean()
    return {
        "mcnemar_vs_always_up": mcnemar_exact(model_right, y == 1).as_dict(),
        "diebold_mariano": {
            k: {**diebold_mariano(daily["model"].to_numpy(), daily[k].to_numpy(),
                                  horizon).as_dict(),
                "mean_loss_model": float(daily["model"].mean()),
                "mean_loss_other": float(daily[k].mean())}
            for k in ("coin", "base_rate")},
        "auc": delong_auc(y, p).as_dict(),
    }


def tearsheet(runs: Mapping[str, BacktestResult]) -> dict[str, Any]:
    """Calendar returns, the five worst drawdowns and the return distribution with VaR and
    CVaR, for the strategy and buy-and-hold."""
    out: dict[str, Any] = {"calendar": {}, "drawdowns": {}, "distribution": {}}
    for line in TEARSHEET_LINES:
        r = runs[line]
        out["calendar"][line] = calendar_returns(r.dates, r.net)
        out["drawdowns"][line] = drawdown_episodes(r.dates, r.equity)
        out["distribution"][line] = distribution(r.net)
    return out


def series(runs: Mapping[str, BacktestResult], window: int, periods_per_year: int
           ) -> dict[str, Any]:
    """Daily equity per line and the strategy's position (rounded, for plots), and the
    rolling Sharpe/volatility (strategy, buy-and-hold) and beta (strategy)."""
    strat, bh = runs["strategy"], runs["buy_and_hold"]
    out: dict[str, Any] = {"dates": [str(d) for d in strat.dates]}
    for k, r in runs.items():
        out[k] = [float(f"{x:.6g}") for x in r.equity]
    out["position"] = [float(f"{x:.4g}") for x in strat.position]
    roll = rolling_stats(strat.excess, bh.excess, window, periods_per_year)
    roll_bh = rolling_stats(bh.excess, bh.excess, window, periods_per_year)
    out["rolling"] = {"window": window, "strategy": roll,
                      "buy_and_hold": {k: roll_bh[k] for k in ("sharpe", "volatility")}}
    return out
