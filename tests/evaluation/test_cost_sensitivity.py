"""Cost sweep and the break-even cost."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.evaluation import (
    backtest_positions,
    break_even_cost_bps,
    buy_and_hold,
    cost_sweep,
    total_return_at,
)


def _edge_backtest(seed: int = 0, n: int = 750):
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0002, 0.012, n)
    know = rng.random(n) < 0.15  # a real but small edge: right on 15% of days
    pos = np.where(know, (r > 0).astype(float), (rng.random(n) < 0.5).astype(float))
    return backtest_positions(pos, r, 0.0), buy_and_hold(r)


def test_break_even_cost_is_exact():
    strat, bh = _edge_backtest()
    target = bh.equity[-1] - 1
    be = break_even_cost_bps(strat, target)
    assert be is not None and be > 0
    assert total_return_at(strat, be / 1e4) == pytest.approx(target, abs=1e-9)
    # a hair cheaper beats buy-and-hold, a hair dearer trails it
    cheaper, dearer = (be - 0.01) / 1e4, (be + 0.01) / 1e4
    assert total_return_at(strat, cheaper) > target > total_return_at(strat, dearer)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_break_even_cost_is_exact_for_any_profitable_strategy(seed):
    strat, bh = _edge_backtest(seed, 300)
    target = bh.equity[-1] - 1
    be = break_even_cost_bps(strat, target)
    if total_return_at(strat, 0.0) < target:
        assert be is None
    else:
        assert be is not None
        assert total_return_at(strat, be / 1e4) == pytest.approx(target, abs=1e-9)


def test_no_break_even_when_never_ahead_or_never_trading():
    r = np.array([0.01, 0.02, -0.01])
    flat = backtest_positions(np.zeros(3), r, 0.0)
    assert break_even_cost_bps(flat, -0.5) is None
    strat, _ = _edge_backtest()
    assert break_even_cost_bps(strat, 100.0) is None


def test_cost_sweep_applies_each_cost_per_unit_change():
    strat, _ = _edge_backtest()
    rows = cost_sweep(strat, [0.0, 10.0, 50.0])
    assert [r["cost_bps"] for r in rows] == [0.0, 10.0, 50.0]
    for row in rows:
        expected = np.prod(1 + strat.gross - row["cost_bps"] / 1e4 * strat.turnover) - 1
        assert row["total_return"] == pytest.approx(expected, rel=1e-12)
        assert row["cost_drag"] == pytest.approx(
            row["cost_bps"] / 1e4 * strat.turnover.mean() * 252, rel=1e-12)
    assert rows[0]["total_return"] > rows[1]["total_return"] > rows[2]["total_return"]
