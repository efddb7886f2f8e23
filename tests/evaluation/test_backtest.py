"""The backtest: exactness against hand arithmetic, costs, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from finmlops.config import CostSettings, EvaluationSettings
from finmlops.errors import DataValidationError
from finmlops.evaluation import (
    backtest_positions,
    buy_and_hold,
    cost_per_unit,
    equal_weight,
    impact_inputs,
    positions,
    run_backtest,
)

probs = arrays(np.float64, st.integers(2, 60), elements=st.floats(0, 1))


def test_always_long_with_zero_costs_equals_buy_and_hold(returns, zero_costs):
    long = run_backtest(np.ones_like(returns), returns, zero_costs)
    bh = buy_and_hold(returns)
    np.testing.assert_allclose(long.equity, bh.equity, rtol=0, atol=1e-12)
    np.testing.assert_allclose(long.net, returns, rtol=0, atol=1e-12)
    assert bh.equity[-1] == pytest.approx(np.prod(1 + returns), abs=1e-12)


def test_cost_is_cost_per_unit_times_position_changes(returns):
    s = EvaluationSettings(costs=CostSettings(commission_bps=1.5, half_spread_bps=2,
                                              slippage_bps=0.5))
    p = np.random.default_rng(3).random(returns.size)
    res = run_backtest(p, returns, s)
    pos = (p > 0.5).astype(float)
    changes = np.abs(np.diff(np.concatenate([[0.0], pos]))).sum()
    assert cost_per_unit(s.costs) == 4e-4
    assert res.cost.sum() == pytest.approx(4e-4 * changes, rel=1e-13)
    np.testing.assert_array_equal(res.cost, 4e-4 * res.turnover)
    np.testing.assert_array_equal(res.net, pos * returns - res.cost)


def test_position_earns_the_next_return_and_pays_on_the_day_it_trades():
    r = np.array([0.01, -0.02, 0.03, 0.04])
    res = backtest_positions(np.array([1.0, 1.0, 0.0, 1.0]), r, 0.001)
    np.testing.assert_allclose(res.gross, [0.01, -0.02, 0.0, 0.04])
    np.testing.assert_allclose(res.cost, [0.001, 0.0, 0.001, 0.001])
    np.testing.assert_allclose(res.equity, np.cumprod(1 + res.gross - res.cost))


def test_long_short_and_dead_band_hold_the_previous_position():
    p = np.array([0.5, 0.62, 0.55, 0.45, 0.30, 0.52, 0.7])
    np.testing.assert_array_equal(positions(p, "long_flat", 0.5), [0, 1, 1, 0, 0, 1, 1])
    np.testing.assert_array_equal(positions(p, "long_short", 0.5), [-1, 1, 1, -1, -1, 1, 1])
    # inside 0.5 ± 0.1 the previous position is kept; flat before any signal
    np.testing.assert_array_equal(positions(p, "long_short", 0.5, 0.1), [0, 1, 1, 1, -1, -1, 1])
    np.testing.assert_array_equal(positions(p, "long_flat", 0.5, 0.1), [0, 1, 1, 1, 0, 0, 1])


def test_long_short_pays_double_on_a_reversal():
    s = EvaluationSettings(rule="long_short")
    res = run_backtest(np.array([0.9, 0.1]), np.array([0.0, 0.0]), s)
    np.testing.assert_allclose(res.turnover, [1.0, 2.0])
    np.testing.assert_allclose(res.cost, np.array([1.0, 2.0]) * cost_per_unit(s.costs))


def test_square_root_impact_term():
    costs = CostSettings(commission_bps=0, half_spread_bps=0, slippage_bps=0,
                         impact_coefficient=0.5, notional=1e6)
    pos = np.array([1.0, 1.0, -1.0])
    sigma = np.array([0.02, 0.02, 0.01])
    adv = np.array([4e6, 4e6, 1e8])
    res = backtest_positions(pos, np.zeros(3), costs, sigma=sigma, adv_notional=adv)
    expected = [0.5 * 0.02 * np.sqrt(1e6 / 4e6) * 1, 0.0, 2 * 0.5 * 0.01 * np.sqrt(2e6 / 1e8)]
    np.testing.assert_allclose(res.cost, expected, rtol=1e-14)
    np.testing.assert_array_equal(res.impact, res.cost)


def test_impact_inputs_use_only_the_trailing_window():
    px = np.linspace(10, 20, 30)
    sigma, adv = impact_inputs(px, px, np.full(30, 1000.0), window=5)
    assert np.isnan(sigma[:5]).all() and np.isfinite(sigma[5:]).all()
    assert adv[4] == pytest.approx(np.mean(px[:5] * 1000))
    sigma2, _ = impact_inputs(np.r_[px[:10], px[10:] * 3], px, np.full(30, 1000.0), window=5)
    np.testing.assert_array_equal(sigma[:10], sigma2[:10])


def test_equal_weight_portfolio_averages_instruments_present_each_day():
    a = backtest_positions([1.0, 1.0, 1.0], [0.01, 0.02, 0.03], 0.0,
                           dates=np.array(["2020-01-01", "2020-01-02", "2020-01-03"]))
    b = backtest_positions([1.0, 0.0], [0.05, -0.01], 0.0,
                           dates=np.array(["2020-01-02", "2020-01-03"]))
    pf = equal_weight([a, b])
    np.testing.assert_allclose(pf.net, [0.01, 0.035, 0.015])
    np.testing.assert_allclose(pf.turnover, [1.0, 0.5, 0.5])


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(DataValidationError, match="probability"):
        positions([0.2, 1.2])
    with pytest.raises(DataValidationError, match="finite"):
        backtest_positions([1.0, 1.0], [0.01, np.nan], 0.0)
    with pytest.raises(DataValidationError, match="lengths"):
        backtest_positions([1.0], [0.01, 0.0], 0.0)


@settings(max_examples=60, deadline=None)
@given(p=probs, data=st.data(), rule=st.sampled_from(["long_flat", "long_short"]),
       band=st.sampled_from([0.0, 0.05, 0.2]))
def test_no_position_uses_a_return_or_probability_it_could_not_know(p, data, rule, band):
    n = p.size
    t = data.draw(st.integers(0, n - 1))
    s = EvaluationSettings(rule=rule, dead_band=band)
    rng = np.random.default_rng(n)
    r = rng.normal(0, 0.01, n)
    base = run_backtest(p, r, s)
    r2 = r.copy()
    r2[t:] = rng.normal(0, 0.05, n - t)
    p2 = p.copy()
    p2[t + 1:] = rng.random(n - t - 1)
    other = run_backtest(p2, r2, s)
    # positions up to t and net returns before t cannot see returns from t on
    np.testing.assert_array_equal(base.position[: t + 1], other.position[: t + 1])
    np.testing.assert_array_equal(base.net[:t], other.net[:t])
    np.testing.assert_array_equal(base.cost[: t + 1], other.cost[: t + 1])


@settings(max_examples=40, deadline=None)
@given(p=probs, k=st.integers(1, 5), rule=st.sampled_from(["long_flat", "long_short"]))
def test_shifting_the_data_shifts_the_results(p, k, rule):
    """Prepending k flat-signal, zero-return days shifts every result by k days."""
    s = EvaluationSettings(rule="long_flat", dead_band=0.1) if rule == "long_flat" else \
        EvaluationSettings(rule="long_short", dead_band=0.1)
    r = np.random.default_rng(p.size).normal(0, 0.01, p.size)
    base = run_backtest(p, r, s)
    shifted = run_backtest(np.r_[np.full(k, 0.5), p], np.r_[np.zeros(k), r], s)
    np.testing.assert_array_equal(shifted.position[:k], 0.0)
    np.testing.assert_array_equal(shifted.position[k:], base.position)
    np.testing.assert_allclose(shifted.net[k:], base.net, rtol=0, atol=0)
    np.testing.assert_allclose(shifted.equity[k:], base.equity, rtol=1e-15, atol=0)


def test_to_frame_is_indexed_by_date():
    res = backtest_positions([1.0, 0.0], [0.01, 0.02], 0.0,
                             dates=np.array(["2020-01-02", "2020-01-03"]))
    frame = res.to_frame()
    assert list(frame.columns) == ["position", "turnover", "gross", "cost", "net", "equity"]
    assert str(frame.index[1].date()) == "2020-01-03"
    assert frame["equity"].iloc[-1] == pytest.approx(1.01)


@settings(max_examples=50, deadline=None)
@given(p=probs, rate=st.floats(0.0, 0.0005), rule=st.sampled_from(["long_flat", "long_short"]))
def test_the_capital_out_of_the_position_earns_the_risk_free_rate_exactly(p, rate, rule):
    n = p.size
    r = np.random.default_rng(n).normal(0, 0.01, n)
    rf = np.full(n, rate)
    s = EvaluationSettings(rule=rule)
    res = run_backtest(p, r, s, rf=rf)
    pos = res.position
    np.testing.assert_array_equal(res.gross, pos * r + (1 - pos) * rf)
    flat = pos == 0
    np.testing.assert_array_equal(res.net[flat], rf[flat] - res.cost[flat])
    np.testing.assert_allclose(res.excess, res.net - rf, atol=0)
    no_rf = run_backtest(p, r, s)
    np.testing.assert_allclose(no_rf.net - res.net, -(1 - pos) * rf, rtol=0, atol=1e-15)
