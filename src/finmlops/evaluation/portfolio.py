"""A daily ranked long/short book over a universe: weights, costs, capacity, IC and spreads.

Arrays are panels ``[T, N]`` (days x tickers) aligned by decision day ``t``:

- ``scores[t, i]``: the model's score of ticker ``i`` from data up to the close of ``t``
  (NaN: not in the universe that day, so never held);
- ``returns[t, i]``: what a weight decided at ``t`` earns under ``evaluation.execution``
  (:func:`finmlops.evaluation.execution_returns`; NaN counts as 0);
- ``volatility``, ``adv``, ``beta``: trailing daily volatility, average daily traded value
  (close x volume) and beta to the market, known at the close of ``t``.

Each day the book's target is long the top and short the bottom ``quantile`` of the scores
(equal or inverse-volatility weights), normalised by the neutrality option:

- ``dollar``: long leg +0.5, short leg -0.5 (gross 1, net 0). Benchmark: cash.
- ``beta``: the legs' gross split so that the book's trailing beta is zero (gross 1); a
  day on which a leg's beta is not positive (no such split exists) is dollar-neutral.
  Benchmark: cash.
- ``sector``: a long and a short leg inside every sector with at least two names each
  side's share of the book is the sector's share of the day's names, so every sector nets
  to zero. Benchmark: cash.
- ``long_only``: the top quantile, weights summing to 1. Benchmark: the equal-weight
  universe of the day (so the active return is what the selection adds).

Trades ``|w_t - w_{t-1}|`` (flat before the first day; weights are rebalanced to target
daily, with no drift between rebalances) pay ``c`` per unit and the square-root impact
``k * sigma * sqrt(traded value / ADV)`` per unit; a trade is cut to ``participation * ADV /
capital`` (the book then lags its target). The net return is ``sum_i w_i r_i - cost``.
Everything is pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from finmlops.errors import DataValidationError
from finmlops.evaluation.backtest import BacktestResult, FloatArray, compound
from finmlops.evaluation.relative import long_run_covariance, newey_west_lags

Weighting = Literal["equal", "volatility"]
Neutral = Literal["dollar", "beta", "sector", "long_only"]
BENCHMARKS: dict[str, str] = {
    "dollar": "cash (zero return): the book holds no net market exposure by construction",
    "beta": "cash (zero return): the book's trailing beta to the market is zero",
    "sector": "cash (zero return): every sector nets to zero",
    "long_only": "the equal-weight universe of each day",
}


@dataclass(frozen=True)
class Book:
    """A simulated book: daily weights and what they earned and cost."""

    dates: NDArray[np.datetime64]
    weights: FloatArray
    """``[T, N]`` held weights after each day's trade."""
    target: FloatArray
    traded: FloatArray
    """``[T]`` sum of |trade| (one unit = the whole capital traded once)."""
    gross: FloatArray
    cost: FloatArray
    impact: FloatArray
    net: FloatArray
    unfilled: FloatArray
    """``[T]`` sum of |target - held| after the trade (what the participation cap left)."""

    @property
    def long_exposure(self) -> FloatArray:
        out: FloatArray = np.clip(self.weights, 0.0, None).sum(axis=1)
        return out

    @property
    def short_exposure(self) -> FloatArray:
        out: FloatArray = -np.clip(self.weights, None, 0.0).sum(axis=1)
        return out

    def backtest(self) -> BacktestResult:
        """The book as a :class:`BacktestResult` (position = gross exposure), so every
        single-asset metric applies."""
        gross_exposure = np.abs(self.weights).sum(axis=1)
        return BacktestResult(
            dates=self.dates, position=gross_exposure, turnover=self.traded,
            gross=self.gross, cost=self.cost, net=self.net, equity=compound(self.net),
            impact=self.impact)


def _leg_ranks(scores: FloatArray) -> tuple[FloatArray, NDArray[np.int64]]:
    """Ordinal rank of each valid score in its row (0 = lowest) and valid count per row."""
    filled = np.where(np.isfinite(scores), scores, np.inf)
    order = np.argsort(filled, axis=1, kind="stable")
    ranks = np.empty(scores.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1], dtype=np.float64)[None, :],
                      axis=1)
    valid = np.isfinite(scores)
    ranks[~valid] = np.nan
    return ranks, valid.sum(axis=1)


def _legs(scores: FloatArray, quantile: float) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Masks of the top and bottom ``floor(quantile * n)`` names of each row (n >= 2)."""
    ranks, n = _leg_ranks(scores)
    k = np.floor(quantile * n + 1e-9)[:, None]
    k = np.where((n[:, None] >= 2) & (k < 1), 1.0, k)
    with np.errstate(invalid="ignore"):
        short = ranks < k
        long = ranks >= n[:, None] - k
    return long & np.isfinite(ranks), short & np.isfinite(ranks)


def _scaled(mask: NDArray[np.bool_], raw: FloatArray, total: FloatArray | float) -> FloatArray:
    """Weights ``raw`` on ``mask`` scaled to sum to ``total`` per row (0 for an empty row)."""
    w = np.where(mask, raw, 0.0)
    s = w.sum(axis=1, keepdims=True)
    tot = np.asarray(total, dtype=np.float64)
    tot = tot[:, None] if tot.ndim == 1 else tot
    out: FloatArray = np.divide(w * tot, s, out=np.zeros_like(w), where=s > 0)
    return out


def target_weights(scores: FloatArray, *, quantile: float = 0.2,
                   weighting: Weighting = "equal", neutral: Neutral = "dollar",
                   volatility: FloatArray | None = None, beta: FloatArray | None = None,
                   sectors: Sequence[int] | NDArray[np.int64] | None = None) -> FloatArray:
    """Each day's target weights ``[T, N]`` (see the module docstring)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise DataValidationError("scores must be a days x tickers panel")
    if not 0 < quantile <= 0.5:
        raise DataValidationError("quantile must be in (0, 0.5]")
    if weighting == "volatility":
        if volatility is None:
            raise DataValidationError("volatility weights need the trailing volatility")
        vol = np.asarray(volatility, dtype=np.float64)
        ok = np.isfinite(vol) & (vol > 0)
        raw = np.where(ok, 1.0 / np.where(ok, vol, 1.0), np.nan)
        s = np.where(np.isfinite(raw), s, np.nan)  # a name without a volatility is not held
        raw = np.nan_to_num(raw)
    else:
        raw = np.ones_like(s)
    if neutral == "long_only":
        long, _ = _legs(s, quantile)
        return _scaled(long, raw, 1.0)
    if neutral == "sector":
        if sectors is None:
            raise DataValidationError("a sector-neutral book needs the tickers' sectors")
        codes = np.asarray(sectors, dtype=np.int64)
        if codes.shape != (s.shape[1],):
            raise DataValidationError("one sector code per ticker is needed")
        out = np.zeros_like(s)
        n_all = np.isfinite(s).sum(axis=1).astype(np.float64)
        for code in np.unique(codes):
            cols = np.flatnonzero(codes == code)
            sub = s[:, cols]
            n_sec = np.isfinite(sub).sum(axis=1).astype(np.float64)
            share = np.divide(n_sec, n_all, out=np.zeros_like(n_sec), where=n_all > 0)
            share = np.where(n_sec >= 2, share, 0.0)
            long, short = _legs(sub, quantile)
            out[:, cols] = (_scaled(long, raw[:, cols], share)
                            - _scaled(short, raw[:, cols], share))
        total = np.abs(out).sum(axis=1, keepdims=True)
        scaled: FloatArray = np.divide(out, total, out=np.zeros_like(out), where=total > 0)
        return scaled
    long, short = _legs(s, quantile)
    if neutral == "dollar":
        out = _scaled(long, raw, 0.5) - _scaled(short, raw, 0.5)
        return out
    if neutral == "beta":
        if beta is None:
            raise DataValidationError("a beta-neutral book needs the trailing betas")
        b = np.nan_to_num(np.asarray(beta, dtype=np.float64), nan=1.0)
        wl, ws = _scaled(long, raw, 1.0), _scaled(short, raw, 1.0)
        bl, bs = (wl * b).sum(axis=1), (ws * b).sum(axis=1)
        ok = (bl > 0) & (bs > 0)
        denom = np.where(ok, bl + bs, 1.0)
        gl = np.where(ok, bs / denom, 0.5)  # L * bl = S * bs, L + S = 1
        out = wl * gl[:, None] - ws * (1.0 - gl)[:, None]
        return out
    raise DataValidationError(f"unknown neutrality {neutral!r}")


def simulate(target: FloatArray, returns: FloatArray, *, dates: NDArray[np.datetime64],
             cost_per_unit: float, impact_coefficient: float = 0.0, capital: float = 1e7,
             participation: float | None = None, volatility: FloatArray | None = None,
             adv: FloatArray | None = None) -> Book:
    """Trade towards ``target`` every day and book the returns net of costs.

    The impact and the cap apply where ``volatility`` and ``adv`` are finite (a name without
    a traded-value history pays no impact and is not capped)."""
    w_target = np.nan_to_num(np.asarray(target, dtype=np.float64))
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64))
    if w_target.shape != r.shape:
        raise DataValidationError("target and returns must be panels of one shape")
    t_days, n = w_target.shape
    sigma = None if volatility is None else np.asarray(volatility, dtype=np.float64)
    value = None if adv is None else np.asarray(adv, dtype=np.float64)
    known = None
    if sigma is not None and value is not None:
        known = np.isfinite(sigma) & np.isfinite(value) & (value > 0)
    cap_panel = None
    if participation is not None and value is not None:
        cap_panel = np.where(np.isfinite(value) & (value > 0),
                             participation * np.where(np.isfinite(value), value, 0.0) / capital,
                             np.inf)
    if cap_panel is None:
        held = w_target
        trade = np.diff(held, axis=0, prepend=np.zeros((1, n)))
    else:
        held = np.empty_like(w_target)
        trade = np.empty_like(w_target)
        prev = np.zeros(n)
        for t in range(t_days):
            step = np.clip(w_target[t] - prev, -cap_panel[t], cap_panel[t])
            trade[t] = step
            prev = prev + step
            held[t] = prev
    size = np.abs(trade)
    cost = cost_per_unit * size.sum(axis=1)
    impact = np.zeros(t_days)
    if known is not None and impact_coefficient > 0 and sigma is not None and value is not None:
        ratio = np.divide(size * capital, value, out=np.zeros_like(size), where=known)
        per_unit = impact_coefficient * np.where(known, sigma, 0.0) * np.sqrt(ratio)
        impact = (size * per_unit).sum(axis=1)
    total_cost = cost + impact
    gross = (held * r).sum(axis=1)
    return Book(dates=np.asarray(dates, dtype="datetime64[ns]"), weights=held,
                target=w_target, traded=size.sum(axis=1), gross=gross, cost=total_cost,
                impact=impact, net=gross - total_cost,
                unfilled=np.abs(w_target - held).sum(axis=1))


def benchmark_returns(neutral: Neutral, scores: FloatArray, returns: FloatArray) -> FloatArray:
    """The benchmark of each option (:data:`BENCHMARKS`): zeros, or for ``long_only`` the
    mean return of the day's universe (the names with a score)."""
    if neutral != "long_only":
        return np.zeros(np.asarray(returns).shape[0])
    valid = np.isfinite(scores)
    r = np.where(valid, np.nan_to_num(returns), 0.0)
    n = valid.sum(axis=1)
    out: FloatArray = np.divide(r.sum(axis=1), n, out=np.zeros(r.shape[0]), where=n > 0)
    return out


def _mean_t(series: FloatArray) -> dict[str, Any]:
    """Mean of a daily series with its Newey-West standard error and t."""
    x = series[np.isfinite(series)]
    n = x.size
    if n < 3:
        return {"n": n, "mean": float(x.mean()) if n else None, "se": None, "t": None,
                "lags": 0}
    lags = newey_west_lags(n)
    u = (x - x.mean())[:, None]
    var = float(long_run_covariance(u, lags)[0, 0]) / n
    se = math.sqrt(var) if var > 0 else None
    mean = float(x.mean())
    return {"n": int(n), "mean": mean, "se": se, "t": mean / se if se else None, "lags": lags}


def _row_ranks(x: FloatArray) -> FloatArray:
    """Average ranks of each row's finite values (NaN elsewhere)."""
    from finmlops.features.crosssection import average_ranks

    ranks, _ = average_ranks(np.where(np.isfinite(x), x, np.nan))
    return ranks


def information_coefficient(scores: FloatArray, returns: FloatArray) -> FloatArray:
    """Each day's Spearman correlation of scores with realised returns over the names with
    both (NaN for a day with fewer than 3 names or no spread)."""
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    both = np.isfinite(s) & np.isfinite(r)
    rs = _row_ranks(np.where(both, s, np.nan))
    rr = _row_ranks(np.where(both, r, np.nan))
    n = both.sum(axis=1)
    ms = np.nanmean(np.where(both, rs, np.nan), axis=1, keepdims=True) if s.size else rs
    mr = np.nanmean(np.where(both, rr, np.nan), axis=1, keepdims=True) if s.size else rr
    ds = np.where(both, rs - ms, 0.0)
    dr = np.where(both, rr - mr, 0.0)
    num = (ds * dr).sum(axis=1)
    den = np.sqrt((ds * ds).sum(axis=1) * (dr * dr).sum(axis=1))
    out: FloatArray = np.where((n >= 3) & (den > 0), num / np.where(den > 0, den, 1.0), np.nan)
    return out


def information_coefficient_summary(ic: FloatArray, periods_per_year: int = 252
                                    ) -> dict[str, Any]:
    """Mean daily IC with its Newey-West t, its standard deviation, the IC's information
    ratio (annualised) and the share of days with a positive IC."""
    x = ic[np.isfinite(ic)]
    stats = _mean_t(np.asarray(x, dtype=np.float64))
    sd = float(x.std(ddof=1)) if x.size > 1 else None
    return {**stats, "std": sd,
            "ir": (float(x.mean()) / sd * math.sqrt(periods_per_year)) if sd else None,
            "positive_days": float((x > 0).mean()) if x.size else None}


def quantile_returns(scores: FloatArray, returns: FloatArray, quantiles: int = 5
                     ) -> FloatArray:
    """``[T, Q]`` mean realised return of each score bucket per day (bucket 0 = lowest
    scores), NaN for a bucket without names that day."""
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    both = np.isfinite(s) & np.isfinite(r)
    ranks, n = _leg_ranks(np.where(both, s, np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        bucket = np.floor(ranks * quantiles / n[:, None])
    out = np.full((s.shape[0], quantiles), np.nan)
    for q in range(quantiles):
        m = both & (bucket == q)
        cnt = m.sum(axis=1)
        tot = np.where(m, r, 0.0).sum(axis=1)
        out[:, q] = np.where(cnt > 0, tot / np.where(cnt > 0, cnt, 1), np.nan)
    return out


def quantile_summary(qret: FloatArray, periods_per_year: int = 252) -> dict[str, Any]:
    """Mean daily return per bucket, and the top-minus-bottom spread with its HAC t."""
    means = [float(np.nanmean(qret[:, q])) if np.isfinite(qret[:, q]).any() else None
             for q in range(qret.shape[1])]
    spread = qret[:, -1] - qret[:, 0]
    stats = _mean_t(spread)
    x = spread[np.isfinite(spread)]
    sd = float(x.std(ddof=1)) if x.size > 1 else None
    return {"mean_by_quantile": means, "spread": stats,
            "spread_annual": stats["mean"] * periods_per_year if stats["mean"] is not None
            else None,
            "spread_sharpe": (float(x.mean()) / sd * math.sqrt(periods_per_year)) if sd
            else None}


def sharpe(net: FloatArray, periods_per_year: int = 252) -> float | None:
    """Annualised Sharpe ratio of a daily series (``None`` without spread)."""
    if net.size < 2:
        return None
    sd = float(net.std(ddof=1))
    return float(net.mean()) / sd * math.sqrt(periods_per_year) if sd > 0 else None


def capacity_curve(target: FloatArray, returns: FloatArray, *, dates: NDArray[np.datetime64],
                   capitals: Sequence[float], cost_per_unit: float, impact_coefficient: float,
                   participation: float | None, volatility: FloatArray | None,
                   adv: FloatArray | None, periods_per_year: int = 252) -> list[dict[str, Any]]:
    """Per capital: the book's net Sharpe, annual net return, cost and impact drag when it
    trades its target in full (impact grows with capital, so the mean net return never
    rises), and with the participation cap: net Sharpe, annual net return and the share of
    the target left unfilled (a capped book trades less than its target, so it can cost
    less and its Sharpe need not fall)."""
    rows = []
    for capital in sorted(float(c) for c in capitals):
        free = simulate(target, returns, dates=dates, cost_per_unit=cost_per_unit,
                        impact_coefficient=impact_coefficient, capital=capital,
                        participation=None, volatility=volatility, adv=adv)
        row: dict[str, Any] = {
            "capital": capital, "net_sharpe": sharpe(free.net, periods_per_year),
            "mean_net": float(free.net.mean()) if free.net.size else None,
            "annual_net": float(free.net.mean()) * periods_per_year if free.net.size else None,
            "cost_drag": float(free.cost.mean()) * periods_per_year if free.cost.size else None,
            "impact_drag": float(free.impact.mean()) * periods_per_year
            if free.impact.size else None,
        }
        if participation is not None:
            capped = simulate(target, returns, dates=dates, cost_per_unit=cost_per_unit,
                              impact_coefficient=impact_coefficient, capital=capital,
                              participation=participation, volatility=volatility, adv=adv)
            tot = float(np.abs(capped.target).sum())
            row.update(net_sharpe_capped=sharpe(capped.net, periods_per_year),
                       annual_net_capped=float(capped.net.mean()) * periods_per_year
                       if capped.net.size else None,
                       unfilled_capped=float(capped.unfilled.sum()) / tot if tot > 0 else 0.0)
        rows.append(row)
    return rows
