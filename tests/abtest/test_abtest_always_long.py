"""The A/B P&L is the backtest's, end to end: two arms whose ONNX models answer a constant
probability (one always long, one always flat) behind the real service, the bundled IBB days
of 2020 H1 replayed over HTTP with their realised returns as feedback, the summary read from
the ledger. The always-long arm earns IBB's one-day return as the backtest fills it (bought
at the next open, sold at the open after: buy and hold) less one entry cost — over the days it
served in the split test, over every day in the paired one — and the always-flat arm earns
exactly nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from finmlops.config import Settings

pytestmark = pytest.mark.integration

EXACT = {"rel": 1e-12, "abs": 1e-16}
"""To float precision: sums of the same returns in another order."""


def next_open_returns(settings: Settings) -> dict[str, float]:
    """IBB's return from the next open to the open after (dividend-adjusted), per as-of date,
    straight from the stored bars: the default ``evaluation.execution``."""
    from finmlops.data import read_bars

    assert settings.evaluation.execution == "next_open"
    ibb = read_bars(settings, tickers=["IBB"]).sort_values("date")
    adj = ibb["open"].to_numpy(dtype=np.float64) * ibb["adj_close"].to_numpy(
        dtype=np.float64) / ibb["close"].to_numpy(dtype=np.float64)
    days = [d.date().isoformat() for d in ibb["date"]]
    return {days[i]: float(adj[i + 2] / adj[i + 1] - 1.0) for i in range(len(days) - 2)}


@pytest.mark.parametrize("shadow", [False, True], ids=["split", "shadow"])
def test_always_long_earns_buy_and_hold_less_one_entry_cost(
        shadow: bool, tmp_path: Path, settings: Callable[..., Settings],
        tiny_model: Callable[..., Path]) -> None:
    from finmlops.abtest import analyse_ledger, build_replay_input, replay, replay_period
    from finmlops.abtest.client import ServiceClient
    from finmlops.data import ingest, read_bars
    from finmlops.evaluation import buy_and_hold, cost_per_unit
    from finmlops.features import feature_names
    from finmlops.serving import create_app, run_in_thread

    s = settings(data__start=dt.date(2019, 1, 1), data__end=dt.date(2020, 6, 30),
                 train__cutoff=dt.date(2019, 12, 31), experiment__shadow=shadow,
                 abtest__min_samples=20)
    ingest(s)
    names = feature_names("full", s.features.context)
    models = {  # weight 0: p = sigmoid(bias), whatever the features
        "baseline": tiny_model(tmp_path / "m" / "flat", "baseline", 20, names, 0.0, -20.0),
        "enhanced": tiny_model(tmp_path / "m" / "long", "enhanced", 20, names, 0.0, 20.0)}
    start, end = replay_period(s)
    data = build_replay_input(s, read_bars(s), 20, names, start, end)
    handle = run_in_thread(create_app(s, models), "127.0.0.1", 0)
    try:
        res = replay(ServiceClient.of(s, handle.url), data, experiment=s.experiment.name,
                     id_prefix="bh")
    finally:
        handle.stop()
    summary = analyse_ledger(s, s.ledger_url)

    r = next_open_returns(s)
    served = {rec["routing_key"].split(":", 1)[1]: rec["arm"] for rec in res.records}
    days = [d for d in sorted(served) if d in r]  # the last two days' exits are unknown
    assert len(days) == res.feedback == len(served) - 2 > 100
    c = cost_per_unit(s.evaluation.costs)
    long_days = [d for d in days if served[d] == "enhanced"]
    flat_days = [d for d in days if served[d] == "baseline"]
    assert len(long_days) > 20 and len(flat_days) > 20
    # Without shadow scoring the arm's position series is its served days: one entry. With
    # it, the arm holds a position on every day, entered on the first replayed day, which
    # falls in its served days only when it served that day.
    entry = c if (not shadow or served[days[0]] == "enhanced") else 0.0
    long_r = np.array([r[d] for d in long_days])
    arms = summary.arms
    assert arms["enhanced"].n == len(long_days)
    assert arms["enhanced"].hits == int((long_r > 0).sum())
    assert arms["enhanced"].mean_return == pytest.approx(
        long_r.mean() - entry / len(long_days), **EXACT)
    assert arms["baseline"].n == len(flat_days)
    assert arms["baseline"].hits == sum(r[d] <= 0 for d in flat_days)
    assert arms["baseline"].mean_return == 0.0  # flat from the start: no trade, ever

    paired = summary.paired_decision
    if not shadow:
        assert paired is None
        return
    everyday = np.array([r[d] for d in days])
    bh = buy_and_hold(everyday)
    stats = paired.numbers.paired
    assert stats.n == len(days)
    assert stats.sum_diff == pytest.approx(bh.net.sum() - c, **EXACT)
    assert stats.mean_diff == pytest.approx(everyday.mean() - c / len(days), **EXACT)
    # one ticker a day: the daily series is the per-request one; its mean is the estimate
    assert paired.numbers.daily_diff.days == len(days)
    assert paired.numbers.sequential.estimate == pytest.approx(
        everyday.mean() - c / len(days), **EXACT)
    totals = summary.timeline.paired.arms
    assert totals["enhanced"].sum_return[-1] == pytest.approx(bh.net.sum() - c, **EXACT)
    assert totals["baseline"].sum_return[-1] == 0.0
