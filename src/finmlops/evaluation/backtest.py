"""A vectorised daily backtest with costs: probabilities to positions to net returns.

Input convention (arrays aligned by day ``t``):

- ``probability[t]``: P(up) decided with data up to the close of day ``t``;
- ``forward_return[t]``: the return the position decided at ``t`` earns, from its fill to
  the next decision's fill. Which prices those are is the ``evaluation.execution`` setting
  (:mod:`finmlops.evaluation.execution`): by default the open of ``t+1`` to the open of
  ``t+2``; with ``same_close``, the close of ``t`` (the price the features used) to the close
  of ``t+1``.
- ``rf[t]`` (optional): the risk-free return of the same period, earned by the capital not
  in the position: a position ``w`` returns ``w * forward_return + (1 - w) * rf``.

The trade ``|position[t] - position[t-1]|`` (flat before the first day) pays the costs on
day ``t``. Nothing is liquidated after the last day. Everything here is pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from finmlops.config import CostSettings, EvaluationSettings
from finmlops.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

FloatArray = NDArray[np.float64]
Rule = Literal["long_flat", "long_short"]

IMPACT_WINDOW = 20
"""Trailing days for the volatility and average daily traded notional of the impact term."""


@dataclass(frozen=True)
class BacktestResult:
    """Daily arrays of one backtest (or an equal-weight portfolio of several).

    ``turnover[t]`` is the (mean) absolute position change traded on day ``t``;
    ``net = gross - cost`` and ``equity`` is the compounded net return, starting at 1.
    """

    dates: NDArray[np.datetime64]
    position: FloatArray
    turnover: FloatArray
    gross: FloatArray
    cost: FloatArray
    net: FloatArray
    equity: FloatArray
    impact: FloatArray
    """The market-impact part of ``cost`` (zero without an impact coefficient)."""
    rf: FloatArray | None = None
    """The per-period risk-free return (``None``: zero); Sharpe ratios use ``net - rf``."""

    def __len__(self) -> int:
        return int(self.net.shape[0])

    def slice(self, mask: NDArray[np.bool_]) -> BacktestResult:
        """The days where ``mask`` holds; equity restarts at 1 (positions carry over)."""
        net = self.net[mask]
        return BacktestResult(
            dates=self.dates[mask], position=self.position[mask],
            turnover=self.turnover[mask], gross=self.gross[mask], cost=self.cost[mask],
            net=net, equity=compound(net), impact=self.impact[mask],
            rf=None if self.rf is None else self.rf[mask],
        )

    def repriced(self, cost_per_unit: float) -> BacktestResult:
        """The same trades at a flat ``cost_per_unit`` of position change (no impact)."""
        cost = cost_per_unit * self.turnover
        net = self.gross - cost
        return BacktestResult(
            dates=self.dates, position=self.position, turnover=self.turnover,
            gross=self.gross, cost=cost, net=net, equity=compound(net),
            impact=np.zeros_like(cost), rf=self.rf,
        )

    @property
    def excess(self) -> FloatArray:
        """Net returns above the risk-free rate (``net`` itself when there is none)."""
        return self.net if self.rf is None else self.net - self.rf

    def to_frame(self) -> pd.DataFrame:
        """A pandas DataFrame indexed by date (pandas imported on use)."""
        import pandas as pd

        return pd.DataFrame(
            {"position": self.position, "turnover": self.turnover, "gross": self.gross,
             "cost": self.cost, "net": self.net, "equity": self.equity},
            index=pd.DatetimeIndex(self.dates, name="date"),
        )


def cost_per_unit(costs: CostSettings) -> float:
    """Commission + half-spread + slippage, as a fraction per unit of position change."""
    return (costs.commission_bps + costs.half_spread_bps + costs.slippage_bps) / 1e4


def positions(probability: ArrayLike, rule: Rule = "long_flat", threshold: float = 0.5,
              dead_band: float = 0.0) -> FloatArray:
    """Positions from probabilities: long above ``threshold + dead_band``, flat (long_flat)
    or short (long_short) at or below ``threshold - dead_band``, and inside the band the
    previous position is kept (flat before the first day)."""
    p = _as_float(probability, "probability")
    if p.size and not (p.min() >= 0.0 and p.max() <= 1.0):  # NaN fails both
        raise DataValidationError("probability must be finite and within [0, 1]")
    low = -1.0 if rule == "long_short" else 0.0
    if dead_band <= 0.0:
        if low == 0.0:
            return (p > threshold).astype(np.float64)
        return np.where(p > threshold, 1.0, -1.0)
    up = p > threshold + dead_band
    decided = up | (p <= threshold - dead_band)
    # the k-th decision so far picks its value; before the first one the position is flat
    values = np.concatenate([[0.0], np.where(up[decided], 1.0, low)])
    out: FloatArray = values[np.cumsum(decided)]
    return out


def impact_inputs(adj_close: ArrayLike, close: ArrayLike, volume: ArrayLike,
                  window: int = IMPACT_WINDOW) -> tuple[FloatArray, FloatArray]:
    """Trailing daily volatility and average daily traded notional (close * volume), both
    known at the close of each day; NaN until ``window`` days of history exist."""
    import pandas as pd

    px = pd.Series(_as_float(adj_close, "adj_close"))
    sigma = px.pct_change().rolling(window, min_periods=window).std().to_numpy(np.float64)
    notional = pd.Series(_as_float(close, "close") * _as_float(volume, "volume"))
    adv = notional.rolling(window, min_periods=window).mean().to_numpy(np.float64)
    return sigma, adv


def run_backtest(
    probability: ArrayLike,
    forward_return: ArrayLike,
    settings: EvaluationSettings,
    *,
    dates: ArrayLike | None = None,
    sigma: ArrayLike | None = None,
    adv_notional: ArrayLike | None = None,
    rf: ArrayLike | None = None,
) -> BacktestResult:
    """Backtest one instrument with ``settings`` (rule, threshold, dead band, costs).

    The square-root impact term ``impact_coefficient * sigma * sqrt(notional*|Δpos| / ADV)``
    is charged per unit traded when ``sigma`` and ``adv_notional`` are given (days where
    either is NaN pay no impact).
    """
    pos = positions(probability, settings.rule, settings.threshold, settings.dead_band)
    return backtest_positions(pos, forward_return, settings.costs, dates=dates,
                              sigma=sigma, adv_notional=adv_notional, rf=rf)


def backtest_positions(
    position: ArrayLike,
    forward_return: ArrayLike,
    costs: CostSettings | float,
    *,
    dates: ArrayLike | None = None,
    sigma: ArrayLike | None = None,
    adv_notional: ArrayLike | None = None,
    rf: ArrayLike | None = None,
) -> BacktestResult:
    """Backtest given positions; ``costs`` is the settings or a flat cost per unit traded;
    ``rf`` (per period, aligned) is earned by the capital out of the position."""
    pos = _as_float(position, "position")
    r = _as_float(forward_return, "forward_return")
    if pos.shape != r.shape:
        raise DataValidationError(
            f"position and forward_return lengths differ ({pos.shape[0]} vs {r.shape[0]})")
    if not np.isfinite(r.sum()):  # a NaN or inf anywhere makes the sum non-finite
        raise DataValidationError("forward_return must be finite (drop days without one)")
    turnover = _abs_changes(pos)
    c = costs if isinstance(costs, float | int) else cost_per_unit(costs)
    cost = c * turnover
    impact = np.zeros(cost.shape[0])
    settings = None if isinstance(costs, float | int) else costs
    if (settings is not None and settings.impact_coefficient > 0.0 and sigma is not None
            and adv_notional is not None):
        k = settings.impact_coefficient
        s = _as_float(sigma, "sigma")
        adv = _as_float(adv_notional, "adv_notional")
        if s.shape != r.shape or adv.shape != r.shape:
            raise DataValidationError("sigma and adv_notional must align with forward_return")
        ok = np.isfinite(s) & np.isfinite(adv) & (adv > 0)
        per_unit = np.zeros_like(cost)
        per_unit[ok] = k * s[ok] * np.sqrt(settings.notional * turnover[ok] / adv[ok])
        impact = per_unit * turnover
        cost = cost + impact
    gross = pos * r
    rate = None
    if rf is not None:
        rate = _as_float(rf, "rf")
        if rate.shape != r.shape or not np.isfinite(rate.sum()):
            raise DataValidationError("rf must be finite and align with forward_return")
        gross += (1.0 - pos) * rate
    net = gross - cost
    return BacktestResult(
        dates=_dates(dates, r.shape[0]), position=pos, turnover=turnover, gross=gross,
        cost=cost, net=net, equity=compound(net), impact=impact, rf=rate,
    )


def buy_and_hold(forward_return: ArrayLike, dates: ArrayLike | None = None,
                 rf: ArrayLike | None = None) -> BacktestResult:
    """Holding the instrument every day at no cost: the passive benchmark.

    It differs from "always long" (position 1 through :func:`backtest_positions`) only by
    the entry cost on the first day; against a long/short rule it is the natural yardstick.
    """
    r = _as_float(forward_return, "forward_return")
    return backtest_positions(np.ones_like(r), r, 0.0, dates=dates, rf=rf)


def equal_weight(results: Sequence[BacktestResult]) -> BacktestResult:
    """An equal-weight daily portfolio: each day, the mean over instruments trading that day."""
    if not results:
        raise DataValidationError("no backtests to combine")
    if len(results) == 1:
        return results[0]
    dates = np.unique(np.concatenate([r.dates for r in results]))
    k = len(results)
    fields = ["position", "turnover", "gross", "cost", "impact"]
    with_rf = any(r.rf is not None for r in results)
    stacks = {f: np.full((k, dates.shape[0]), np.nan) for f in [*fields, "rf"][
        : len(fields) + with_rf]}
    for i, res in enumerate(results):
        at = np.searchsorted(dates, res.dates)
        for f, arr in stacks.items():
            value = getattr(res, f)
            arr[i, at] = 0.0 if value is None else value
    mean = {f: np.nanmean(arr, axis=0) for f, arr in stacks.items()}
    net = mean["gross"] - mean["cost"]
    return BacktestResult(dates=dates, position=mean["position"], turnover=mean["turnover"],
                          gross=mean["gross"], cost=mean["cost"], net=net,
                          equity=compound(net), impact=mean["impact"], rf=mean.get("rf"))


def _abs_changes(pos: FloatArray) -> FloatArray:
    """|pos[t] - pos[t-1]| with a flat position before the first day."""
    out = np.empty_like(pos)
    if pos.shape[0]:
        out[0] = pos[0]
        np.subtract(pos[1:], pos[:-1], out=out[1:])
        np.abs(out, out=out)
    return out


def compound(net: FloatArray) -> FloatArray:
    out = np.add(net, 1.0)
    np.multiply.accumulate(out, out=out)
    return out


def _as_float(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataValidationError(f"{name} must be one-dimensional")
    return arr


def _dates(dates: ArrayLike | None, n: int) -> NDArray[np.datetime64]:
    if dates is None:
        return np.arange(n, dtype=np.int64).view("datetime64[D]")
    out = np.asarray(dates).astype("datetime64[D]")
    if out.shape != (n,):
        raise DataValidationError(f"dates must have {n} entries, not {out.shape[0]}")
    return out
