"""Every figure of a universe book: the single-asset metrics and the benchmark-relative
ones of :mod:`finmlops.evaluation.relative`, plus IC, quantile spreads, turnover, capacity.

:func:`evaluate_book` is pure: panels in, a JSON-able dict out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from finmlops.config import EvaluationSettings, PortfolioSettings
from finmlops.errors import DataValidationError
from finmlops.evaluation._report_data import sharpe_statistics
from finmlops.evaluation.backtest import FloatArray, cost_per_unit
from finmlops.evaluation.overfitting import TrialStats, floored_variance
from finmlops.evaluation.performance import performance_metrics
from finmlops.evaluation.portfolio import (
    BENCHMARKS,
    benchmark_returns,
    capacity_curve,
    information_coefficient,
    information_coefficient_summary,
    quantile_returns,
    quantile_summary,
    simulate,
    target_weights,
)
from finmlops.evaluation.relative import hac_regression, information_ratio, sharpe_difference
from finmlops.evaluation.stress import window_mask
from finmlops.evaluation.tearsheet import drawdown_episodes


@dataclass(frozen=True)
class BookReport:
    """:func:`evaluate_book`'s result: the figures and the daily series the ledger keeps."""

    figures: dict[str, Any]
    dates: NDArray[np.datetime64]
    net: FloatArray
    benchmark: FloatArray
    """The option's benchmark (:data:`~finmlops.evaluation.portfolio.BENCHMARKS`)."""

    def trial_returns(self) -> Any:
        """The trial ledger's frame: ``date, net, benchmark, rf`` (rf 0)."""
        import pandas as pd

        return pd.DataFrame({"date": self.dates, "net": self.net, "benchmark": self.benchmark,
                             "rf": np.zeros_like(self.net)})


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def evaluate_book(scores: FloatArray, returns: FloatArray, *, dates: NDArray[np.datetime64],
                  market: FloatArray, portfolio: PortfolioSettings,
                  evaluation: EvaluationSettings, volatility: FloatArray | None = None,
                  adv: FloatArray | None = None, beta: FloatArray | None = None,
                  sectors: Sequence[int] | None = None, stats: TrialStats | None = None,
                  capacity: bool = True) -> BookReport:
    """The book of ``portfolio`` on ``scores`` and all of its figures.

    ``market`` is the market's return on the same days and timing (the HAC regression's
    regressor); ``stats`` the trial count and Sharpe variance that deflate the DSRs."""
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    if s.shape != r.shape or s.shape[0] != len(dates) or np.asarray(market).shape != (len(dates),):
        raise DataValidationError("scores, returns, dates and market must align")
    ppy = evaluation.periods_per_year
    target = target_weights(s, quantile=portfolio.quantile, weighting=portfolio.weighting,
                            neutral=portfolio.neutral, volatility=volatility, beta=beta,
                            sectors=sectors)
    c = cost_per_unit(evaluation.costs)
    book = simulate(target, r, dates=dates, cost_per_unit=c,
                    impact_coefficient=portfolio.impact_coefficient, capital=portfolio.capital,
                    participation=portfolio.participation, volatility=volatility, adv=adv)
    result = book.backtest()
    n_trials = stats.n_trials if stats is not None else 1
    var = stats.sr_variance if stats is not None else None
    metrics = performance_metrics(result, ppy, max(n_trials, 1), var).as_dict()
    bench = benchmark_returns(portfolio.neutral, s, r)
    active = result.net - bench
    active_var = stats.active_sr_variance if stats is not None else None
    active_stats = sharpe_statistics(active, max(n_trials, 1),
                                     floored_variance(active_var, active.size), ppy)
    relative: dict[str, Any] = {
        "benchmark": BENCHMARKS[portfolio.neutral],
        "active_total": float(np.prod(1.0 + active) - 1.0),
        "active_annual": float(active.mean()) * ppy,
        "tracking_error": float(active.std(ddof=1)) * np.sqrt(ppy) if active.size > 1 else None,
        "information_ratio": information_ratio(active, ppy),
        **{f"active_{k}": v for k, v in active_stats.items()},
        "sharpe_difference": (sharpe_difference(result.net, bench).as_dict()
                              if portfolio.neutral == "long_only" else None),
    }
    try:
        capm = hac_regression(result.net, np.asarray(market, dtype=np.float64)).as_dict()
    except DataValidationError:
        capm = None
    ic = information_coefficient(s, r)
    qret = quantile_returns(s, r, portfolio.quantiles)
    stress: dict[str, Any] = {}
    for name, w in evaluation.stress_windows.items():
        mask = window_mask(result.dates, w.start, w.end)
        if mask.sum() >= 2:
            part = result.slice(mask)
            stress[name] = {"days": int(mask.sum()),
                            "total_return": float(part.equity[-1] - 1.0),
                            "market_total": float(np.prod(1.0 + np.asarray(market)[mask]) - 1)}
    out: dict[str, Any] = {
        "days": int(result.net.size),
        "start": str(np.datetime_as_string(result.dates[0], "D")) if result.net.size else None,
        "end": str(np.datetime_as_string(result.dates[-1], "D")) if result.net.size else None,
        "settings": portfolio.model_dump(mode="json"),
        "cost_per_unit_bps": c * 1e4,
        "metrics": metrics,
        "gross_sharpe": _sharpe(result.gross, ppy),
        "relative": relative,
        "capm": capm,
        "ic": information_coefficient_summary(ic, ppy),
        "quantiles": quantile_summary(qret, ppy),
        "turnover": {"daily": float(book.traded.mean()) if book.traded.size else None,
                     "annual": float(book.traded.mean()) * ppy if book.traded.size else None},
        "exposure": {"long": float(book.long_exposure.mean()),
                     "short": float(book.short_exposure.mean()),
                     "net": float((book.long_exposure - book.short_exposure).mean()),
                     "names": float((np.abs(book.weights) > 0).sum(axis=1).mean())},
        "unfilled": float(book.unfilled.mean()),
        "stress": stress,
        "drawdowns": drawdown_episodes(result.dates, result.equity),
        "n_trials": n_trials,
    }
    if capacity:
        out["capacity"] = capacity_curve(
            target, r, dates=dates, capitals=portfolio.capacity_capitals, cost_per_unit=c,
            impact_coefficient=portfolio.impact_coefficient,
            participation=portfolio.participation, volatility=volatility, adv=adv,
            periods_per_year=ppy)
    return BookReport(figures=_finite(out), dates=result.dates, net=result.net, benchmark=bench)


def _sharpe(x: FloatArray, ppy: int) -> float | None:
    from finmlops.evaluation.portfolio import sharpe

    return sharpe(x, ppy)
