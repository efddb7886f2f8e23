"""Cost sensitivity: the metrics over a sweep of costs, and the break-even cost.

A swept cost is the total one-way cost in bps charged per unit of position change (it
replaces commission + half-spread + slippage, and no impact term is added).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from finmlops.evaluation.backtest import BacktestResult, FloatArray
from finmlops.evaluation.performance import performance_metrics


def cost_sweep(result: BacktestResult, bps: Sequence[float], periods_per_year: int = 252,
               n_trials: int = 1, sr_variance: float | None = None) -> list[dict[str, Any]]:
    """``[{"cost_bps": c, **metrics}]`` for each cost in ``bps``."""
    return [
        {"cost_bps": float(c),
         **performance_metrics(result.repriced(c / 1e4), periods_per_year, n_trials,
                               sr_variance).as_dict()}
        for c in bps
    ]


def total_return_at(result: BacktestResult, cost_per_unit: float) -> float:
    """Net total return of ``result``'s trades at a flat cost per unit traded."""
    return float(np.prod(1.0 + result.gross - cost_per_unit * result.turnover)) - 1.0


def break_even_active_bps(result: BacktestResult, benchmark: FloatArray) -> float | None:
    """The one-way cost (bps) at which the mean daily active return against ``benchmark``
    (the benchmark's net returns on the same days) is zero.

    Mean active return at a flat cost ``c`` is ``mean(gross - benchmark) - c mean(turnover)``,
    linear in ``c``, so the root is exact: ``mean(gross - benchmark) / mean(turnover)``.
    ``None`` when the strategy never trades or its active return is not positive at zero cost.
    """
    if result.turnover.shape[0] == 0 or benchmark.shape != result.gross.shape:
        return None
    turn = float(result.turnover.mean())
    edge = float((result.gross - benchmark).mean())
    if turn <= 0.0 or edge <= 0.0:
        return None
    return edge / turn * 1e4


def break_even_cost_bps(result: BacktestResult, target_total_return: float) -> float | None:
    """The one-way cost (bps) at which net total return equals ``target_total_return``.

    Net total return is strictly decreasing in the cost while every day's net factor stays
    positive, so the root is unique there and found by bisection to machine precision.
    ``None`` when the strategy never trades, or trails the target even at zero cost.
    """
    gross, turn = result.gross, result.turnover
    traded = turn > 0
    if not traded.any():
        return None
    f0 = total_return_at(result, 0.0)
    if f0 < target_total_return:
        return None
    if f0 == target_total_return:
        return 0.0
    # Largest cost keeping every factor 1 + gross - c*turnover positive: there f -> -1.
    hi = float(np.min((1.0 + gross[traded]) / turn[traded]))
    lo = 0.0
    if not hi > 0.0:
        return None
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if total_return_at(result, mid) >= target_total_return:
            lo = mid
        else:
            hi = mid
    below, above = total_return_at(result, lo), total_return_at(result, hi)
    best = lo if abs(below - target_total_return) <= abs(above - target_total_return) else hi
    return best * 1e4
