"""The A/B P&L is the backtest's rule: per arm and entity, positions and costs on |Δposition|."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.config import EvaluationSettings
from finmlops.evaluation import buy_and_hold, cost_per_unit, run_backtest
from finmlops.ledger import next_outcome, outcome_frame
from finmlops.ledger.pnl import ROW_COLUMNS

EVAL = EvaluationSettings()
C = cost_per_unit(EVAL.costs)


def rows_for(days: int, arms: dict[str, np.ndarray], returns: np.ndarray,
             served: list[str], entity: str = "IBB", pinned_days: frozenset[int] = frozenset()
             ) -> pd.DataFrame:
    """Score rows as the ledger returns them: every arm scored every day (shadow scoring)."""
    out = []
    for d in range(days):
        if d in pinned_days:
            continue  # the ledger never returns pinned rows
        for arm, probs in arms.items():
            out.append((f"p{d}", 1e9 + d, f"2020-01-{d + 1:02d}" if d < 31 else f"d{d:04d}",
                        entity, 1, 1, "hash", arm, arm == served[d], "1", float(probs[d]),
                        float(returns[d]), int(returns[d] > 0)))
    return pd.DataFrame(out, columns=ROW_COLUMNS)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40), st.floats(0.3, 0.7), st.floats(0.0, 0.2), st.integers(0, 2**31))
def test_every_arms_net_returns_are_the_backtests(n: int, threshold: float, band: float,
                                                  seed: int) -> None:
    rng = np.random.default_rng(seed)
    ev = EvaluationSettings(threshold=threshold, dead_band=min(band, threshold / 2))
    probs = {"a": rng.uniform(size=n), "b": rng.uniform(size=n)}
    r = rng.normal(0, 0.02, size=n)
    served = ["a" if x < 0.5 else "b" for x in rng.uniform(size=n)]
    out = outcome_frame(rows_for(n, probs, r, served), ev)
    for arm, p in probs.items():
        mine = out[out["arm"] == arm].sort_values("request_id", key=lambda s: s.str[1:]
                                                  .astype(int))
        expected = run_backtest(p, r, ev)
        np.testing.assert_allclose(mine["net_return"].to_numpy(), expected.net, atol=1e-15)
        np.testing.assert_array_equal(mine["position"].to_numpy(), expected.position)


def test_always_long_earns_buy_and_hold_less_one_entry_cost() -> None:
    rng = np.random.default_rng(3)
    n = 250
    r = rng.normal(0.0004, 0.015, size=n)
    out = outcome_frame(rows_for(n, {"long": np.full(n, 0.9)}, r, ["long"] * n), EVAL)
    net = out["net_return"].to_numpy()
    bh = buy_and_hold(r)
    np.testing.assert_allclose(net[1:], bh.net[1:], atol=1e-15)
    assert net[0] == pytest.approx(r[0] - C)
    assert net.sum() == pytest.approx(bh.net.sum() - C)


def test_a_position_held_for_days_pays_only_when_it_changes() -> None:
    p = np.array([0.9, 0.9, 0.9, 0.1, 0.1, 0.9])
    r = np.full(6, 0.01)
    out = outcome_frame(rows_for(6, {"a": p}, r, ["a"] * 6), EVAL)
    np.testing.assert_allclose(out["net_return"], [0.01 - C, 0.01, 0.01, -C, 0.0, 0.01 - C])


def test_pinned_days_are_not_part_of_the_series() -> None:
    p = np.array([0.9, 0.1, 0.9])
    r = np.array([0.01, 0.02, 0.03])
    out = outcome_frame(rows_for(3, {"a": p}, r, ["a"] * 3, pinned_days=frozenset({1})), EVAL)
    assert list(out["request_id"]) == ["p0", "p2"]
    np.testing.assert_allclose(out["net_return"], [0.01 - C, 0.03])


def test_a_key_sent_twice_on_a_day_is_traded_once() -> None:
    base = rows_for(2, {"a": np.array([0.9, 0.9])}, np.array([0.01, 0.02]), ["a", "a"])
    again = base.iloc[[1]].assign(prediction_id="p1-again", ts=base["ts"].iloc[1] + 5)
    out = outcome_frame(pd.concat([base, again]), EVAL)
    assert list(out["request_id"]) == ["p0", "p1"]


def test_keyless_predictions_are_positions_of_their_own() -> None:
    df = rows_for(3, {"a": np.full(3, 0.9)}, np.full(3, 0.01), ["a"] * 3)
    df["keyed"] = 0
    df["entity"] = df["prediction_id"]
    out = outcome_frame(df, EVAL)
    np.testing.assert_allclose(out["net_return"], np.full(3, 0.01 - C))


def test_days_without_an_outcome_hold_their_position_but_are_not_reported() -> None:
    p = np.array([0.9, 0.9, 0.1])
    r = np.array([0.01, np.nan, 0.02])
    out = outcome_frame(rows_for(3, {"a": p}, r, ["a"] * 3), EVAL)
    assert list(out["request_id"]) == ["p0", "p2"]
    np.testing.assert_allclose(out["net_return"], [0.01 - C, -C])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.floats(0.0, 0.2),
       st.sampled_from(["long_flat", "long_short"]))
def test_the_incremental_rule_equals_the_series(probs: list[float], band: float,
                                                rule: str) -> None:
    """What the service's counters use at feedback time (the latest earlier decided
    probability) gives each day's net return of the whole series."""
    ev = EvaluationSettings(rule=rule, dead_band=band)  # type: ignore[arg-type]
    p = np.array(probs)
    r = np.linspace(-0.02, 0.03, len(p))
    expected = run_backtest(p, r, ev).net
    low, high = ev.threshold - ev.dead_band, ev.threshold + ev.dead_band
    for t in range(len(p)):
        earlier = [q for q in p[:t] if q > high or q <= low]
        got = next_outcome(earlier[-1] if earlier else None, float(p[t]), float(r[t]), ev)
        assert got == pytest.approx(expected[t], abs=1e-15)
