"""The settings sections of the honest evaluation: costs, stress windows and the evaluation
itself (:mod:`finmlops.config.settings` holds the tree)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from finmlops.config._section import Section


class CostSettings(Section):
    commission_bps: float = Field(1.0, ge=0)
    half_spread_bps: float = Field(1.0, ge=0)
    slippage_bps: float = Field(1.0, ge=0)
    impact_coefficient: float = Field(0.0, ge=0)
    """Square-root market impact: coefficient * sigma * sqrt(traded_notional / ADV)."""
    notional: float = Field(1_000_000.0, gt=0)


class StressWindow(Section):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> StressWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _default_windows() -> dict[str, StressWindow]:
    return {
        "gfc_2008": StressWindow(start=dt.date(2007, 10, 9), end=dt.date(2009, 3, 9)),
        "covid_crash": StressWindow(start=dt.date(2020, 2, 19), end=dt.date(2020, 3, 23)),
        "bear_2022": StressWindow(start=dt.date(2022, 1, 3), end=dt.date(2022, 10, 12)),
    }


class EvaluationSettings(Section):
    rule: Literal["long_flat", "long_short"] = "long_flat"
    threshold: float = Field(0.5, gt=0, lt=1)
    dead_band: float = Field(0.0, ge=0, lt=0.5)
    """Probabilities within threshold ± dead_band keep the previous position (flat at start)."""
    execution: Literal["same_close", "next_open", "next_close"] = "next_open"
    """When a position decided from the bars of day t (features use its close) is filled:
    ``same_close`` at the close of t itself (the price the features already used: only a
    market-on-close order placed just before the bell gets near it, so it flatters),
    ``next_open`` at the open of t+1 (an order sent overnight; the default, because it is the
    first price a strategy computed from the close can really trade at), ``next_close`` at the
    close of t+1 (a full day late). See :func:`finmlops.evaluation.execution_returns`."""
    risk_free_rate: float = Field(0.0, ge=-0.05, le=0.5)
    """Annual risk-free rate earned by the un-invested part of the capital (1 - position) and
    subtracted for Sharpe ratios. 0 by default: no rate series ships with the data."""
    risk_free_path: Path | None = None
    """CSV ``date,rate`` (annualised rate as a fraction, e.g. 0.0525) used instead of
    ``risk_free_rate``: forward-filled to trading days, it must start on or before the first
    evaluated day."""
    costs: CostSettings = Field(default_factory=CostSettings)
    stress_windows: dict[str, StressWindow] = Field(default_factory=_default_windows)
    cost_sweep_bps: list[float] = Field(
        default_factory=lambda: [0.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0]
    )
    periods_per_year: int = Field(252, ge=1)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    """Significance level of the tests the verdict needs (Sharpe difference, alpha, forecasts)."""
    hac_lags: int | None = Field(None, ge=0, le=250)
    """Newey-West lags for alpha/beta and the Sharpe-difference test; ``None`` means
    floor(4 (n/100)^(2/9)) (9 lags for 20 years of days)."""
    prior_trials: int = Field(0, ge=0)
    """Configurations backtested outside this tracking store (notebooks, another home, the
    system this one replaced): added to the ledger's count for the deflated Sharpe ratio."""
    pbo_splits: int = Field(16, ge=4, le=20)
    """Blocks of the combinatorially symmetric cross-validation (even; C(S, S/2) splits)."""
    pbo_min_trials: int = Field(4, ge=2)
    """Fewer trials with daily returns on common days than this give no PBO."""
    rolling_days: int = Field(126, ge=20, le=1000)
    """Window of the report's rolling Sharpe, volatility and beta (126 days: half a year)."""

    @field_validator("pbo_splits")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("must be even")
        return v
