"""The evidence a decision reads, from a real experiment ledger: outcomes priced by the
backtest's rule, randomised assignments per experiment version, each version's weights."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from abtest_support import FLAT, LONG, Row, business_days, day_ts, write_ledger
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finmlops.abtest import (
    ArmStats,
    Evidence,
    analyse_evidence,
    arm_stats,
    paired_daily,
    paired_timeline,
    read_evidence,
    split_timeline,
    window_breakdown,
)
from finmlops.config import ExperimentSettings, Settings
from finmlops.errors import StoreError
from finmlops.evaluation import cost_per_unit
from finmlops.ledger import Feedback, open_ledger

C = cost_per_unit(Settings().evaluation.costs)
D0, D1, D2, D3 = (dt.date(2020, 2, 28), dt.date(2020, 3, 2), dt.date(2020, 3, 3),
                  dt.date(2020, 3, 4))


def evidence(url: str, s: Settings) -> Evidence:
    ledger = open_ledger(url, create=False)
    try:
        return read_evidence(ledger, s)
    finally:
        ledger.close()


def test_evidence_is_the_served_randomised_outcomes_of_the_experiment_priced_per_entity(
        make_ledger: Callable[..., str], settings: Callable[..., Settings]) -> None:
    s = settings()
    rows = [
        # Pinned: in no position series and no assignment count (were it in baseline's IBB
        # series, D1 would pay no entry cost; in enhanced's, D1 would pay an exit).
        Row(D0, "enhanced", {"enhanced": 0.9, "baseline": 0.9}, 0.05, assignment="pinned"),
        Row(D1, "baseline", {"baseline": 0.8, "enhanced": 0.3}, 0.01),
        Row(D1, "enhanced", {"enhanced": 0.9, "baseline": 0.4}, 0.02, ticker="XBI"),
        Row(D2, "baseline", {"baseline": 0.2, "enhanced": 0.7}, -0.03),
        Row(D3, "enhanced", {"enhanced": 0.9, "baseline": 0.9}, None),  # outcome not known
        Row(D2, "baseline", {"baseline": 0.8}, 5.0, experiment="other"),
        Row(D2, "enhanced", {"enhanced": 0.9}, 5.0, experiment=None, assignment="direct"),
    ]
    url = make_ledger(rows)
    ev = evidence(url, s)
    assert ev.version == 1 and ev.weights == {1: {"baseline": 70.0, "enhanced": 30.0}}
    assert ev.served == ev.served_in_force == {"baseline": 2, "enhanced": 2}
    stats = arm_stats(ev.outcomes)
    # baseline on IBB: long on D1 (+1% less the entry), flat on D2 (pays the exit)
    assert stats["baseline"] == ArmStats(2, 2, pytest.approx(0.01 - 2 * C),
                                         pytest.approx((0.01 - C) ** 2 + C**2))
    # enhanced served XBI only (its own entity: an entry of its own)
    assert stats["enhanced"] == ArmStats(1, 1, pytest.approx(0.02 - C),
                                         pytest.approx((0.02 - C) ** 2))
    ibb = ev.outcomes[(ev.outcomes["entity"] == "IBB") & (ev.outcomes["arm"] == "baseline")]
    assert ibb["position"].tolist() == [1.0, 0.0] and ibb["day"].tolist() == ["2020-03-02",
                                                                             "2020-03-03"]
    paired, days, daily, daily_hit = paired_daily(ev.outcomes, "enhanced", "baseline")
    # IBB D1: enhanced flat (0) vs baseline long; XBI D1: enhanced long vs baseline flat;
    # IBB D2: enhanced enters long on a -3% day, baseline exits.
    assert (paired.n, paired.b, paired.c) == (3, 1, 2)
    assert paired.sum_diff == pytest.approx(-(0.01 - C) + (0.02 - C) + (-0.03 - C + C))
    assert days == ["2020-03-02", "2020-03-03"]
    assert daily.tolist() == pytest.approx([0.005, -0.03])
    assert daily_hit.tolist() == [0.0, -1.0]

    # D3's outcome arrives later, by routing key: enhanced was already long on IBB (its
    # shadow score on D2), so it pays no trade.
    ledger = open_ledger(url, create=False)
    try:
        ledger.apply_feedback([Feedback(0.015, 1, routing_key="IBB:2020-03-04")], "later",
                              s.evaluation)
    finally:
        ledger.close()
    late = evidence(url, s).outcomes.set_index(["day", "arm"]).loc["2020-03-04"]
    assert late.loc["enhanced", "net_return"] == pytest.approx(0.015, abs=1e-15)
    assert late.loc["baseline", "net_return"] == pytest.approx(0.015 - C)  # enters from flat
    assert bool(late.loc["enhanced", "served"]) and not bool(late.loc["baseline", "served"])


def test_days_and_entities_come_from_the_routing_key_else_the_serving_time(
        make_ledger: Callable[..., str], settings: Callable[..., Settings]) -> None:
    after_midnight = day_ts(D2) - 18 * 3600  # 03:00 UTC of D2, the close of D1 long past
    rows = [Row(D1, "baseline", {"baseline": LONG}, 0.01, ts=after_midnight),
            Row(D1, "baseline", {"baseline": LONG}, 0.01, keyed=False),
            Row(D1, "baseline", {"baseline": FLAT}, 0.01, key="user-7")]
    ev = evidence(make_ledger(rows), settings())
    out = ev.outcomes.sort_values("request_id")
    assert out["day"].tolist() == ["2020-03-02"] * 3
    assert out["entity"].tolist() == ["IBB", "p00001", "user-7"]
    assert ev.served == {"baseline": 3}  # two keys once each, one keyless request


def test_a_missing_or_foreign_ledger_is_a_store_error(tmp_path: Path,
                                                      settings: Callable[..., Settings]) -> None:
    from finmlops.abtest import analyse_ledger

    with pytest.raises(StoreError, match="no experiment ledger at "):
        analyse_ledger(settings(), f"sqlite:///{tmp_path / 'nope.db'}")
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(StoreError, match=r"not a finmlops ledger .* \(found none\)"):
        analyse_ledger(settings(), f"sqlite:///{tmp_path / 'empty.db'}")


@pytest.mark.integration
def test_an_empty_postgresql_database_is_not_a_ledger(pg_url: str,
                                                      settings: Callable[..., Settings]) -> None:
    from finmlops.abtest import analyse_ledger

    with pytest.raises(StoreError, match=r"not a finmlops ledger .* \(found none\)"):
        analyse_ledger(settings(), pg_url)


def test_timelines_on_a_simulated_shadow_ledger(
        make_ledger: Callable[..., str], sim_rows: Callable[..., list[Row]],
        settings: Callable[..., Settings]) -> None:
    s = settings()
    ev = evidence(make_ledger(sim_rows(days=300, seed=1, skill=0.5)), s)
    out = ev.outcomes
    assert sum(a.n for a in arm_stats(out).values()) == 300
    paired, days, daily, _ = paired_daily(out, "enhanced", "baseline")
    assert paired.n == 300 and len(days) == 300 and daily.shape == (300,)
    split = split_timeline(out, s.abtest, s.experiment, "enhanced", "baseline", n_plan=300)
    timeline = paired_timeline(out, s.abtest, "enhanced", "baseline", n_plan=300)
    assert len(split.days) == len(timeline.days) == 300
    assert split.action[0] == "invalid"  # too few outcomes on day one
    assert timeline.days_to_decision is not None and timeline.action[-1] == "promote"
    assert split.days_to_decision is None or (
        split.days_to_decision > timeline.days_to_decision)
    assert all(np.diff(timeline.p_value) <= 0)  # running minimum
    march = window_breakdown(out, dt.date(2019, 3, 1), dt.date(2019, 3, 29), "enhanced",
                             "baseline")
    assert march is not None and march.days == 21 and march.paired.n == 21
    assert window_breakdown(out, dt.date(2010, 1, 1), dt.date(2010, 2, 1), "enhanced",
                            "baseline") is None


def test_the_version_in_force_sets_the_arms_and_the_sample_ratio_check(
        tmp_path: Path, sim_rows: Callable[..., list[Row]],
        settings: Callable[..., Settings]) -> None:
    """70/30 traffic under version 1, then 50/50 under version 2: each split fits its own
    version, while the two pooled (40% enhanced against 50%) would be a mismatch."""
    s = settings(abtest__min_samples=20)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    write_ledger(url, sim_rows(days=300, seed=2, share=0.3), s, prefix="v1-")
    ledger = open_ledger(url, create=False)
    try:
        even = ExperimentSettings(candidates=[{"name": "baseline", "weight": 50},
                                              {"name": "enhanced", "weight": 50}])
        assert ledger.publish_experiment(even, source="admin", actor="t",
                                         reason="even").version == 2
    finally:
        ledger.close()
    write_ledger(url, sim_rows(days=300, seed=3, share=0.5, start=dt.date(2021, 1, 4)), s,
                 prefix="v2-")
    ev = evidence(url, s)
    assert ev.version == 2 and ev.experiment == even
    assert set(ev.assignments) == {1, 2} and ev.served_in_force == ev.assignments[2]
    assert sum(ev.assignments[1].values()) == sum(ev.assignments[2].values()) == 300
    summary = analyse_evidence(ev, s)
    assert summary.experiment_version == 2
    assert summary.weights == {"1": {"baseline": 70.0, "enhanced": 30.0},
                                  "2": {"baseline": 50.0, "enhanced": 50.0}}
    assert summary.arms["enhanced"].target_share == 0.5
    assert summary.arms["enhanced"].served == ev.assignments[2]["enhanced"]
    assert summary.decision.numbers.arms == summary.arms  # the decision's arms: traffic too
    srm = summary.decision.numbers.srm
    assert srm.mismatch is False
    pooled = analyse_evidence(Evidence(even, 2, ev.outcomes, {2: ev.served}, ev.weights), s)
    assert pooled.decision.action == "invalid"
    assert pooled.decision.numbers.srm.mismatch is True


def test_analysis_of_a_ledger_without_outcomes_is_invalid_and_json_clean(
        make_ledger: Callable[..., str], sim_rows: Callable[..., list[Row]],
        settings: Callable[..., Settings]) -> None:
    s = settings()
    pending = [Row(r.day, r.served, r.probs, None) for r in sim_rows(days=20, shadow=False)]
    for name, rows in (("empty.db", []), ("pending.db", pending)):
        ev = evidence(make_ledger(rows, name=name), s)
        assert ev.outcomes.empty and sum(ev.served.values()) == len(rows)
        out = analyse_evidence(ev, s)
        assert out.decision.action == "invalid"
        assert out.paired_decision is None and out.stress_windows == {}
        json.dumps(out.to_json(), allow_nan=False)


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[list[Row], list[list[int]], float]:
    """Shadow-scored requests on up to 12 days for two tickers, some without an outcome, the
    outcomes posted in any order and batching, and a dead band."""
    days = business_days(dt.date(2021, 3, 1), draw(st.integers(1, 12)))
    prob = st.floats(0.05, 0.95)
    rows = []
    for day in days:
        for ticker in draw(st.sampled_from([("IBB",), ("XBI",), ("IBB", "XBI")])):
            rows.append(Row(day, draw(st.sampled_from(["baseline", "enhanced"])),
                            {"baseline": draw(prob), "enhanced": draw(prob)},
                            draw(st.none() | st.floats(-0.05, 0.05)), ticker=ticker))
    known = [i for i, r in enumerate(rows) if r.realized is not None]
    order = draw(st.permutations(known))
    cuts = sorted(draw(st.sets(st.integers(1, max(len(order) - 1, 1)), max_size=3)))
    batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
    return rows, [b for b in batches if b], draw(st.sampled_from([0.0, 0.1]))


@given(ledgers())
@hsettings(max_examples=25, deadline=None)
def test_the_service_counters_and_the_evidence_price_every_outcome_alike(
        case: tuple[list[Row], list[list[int]], float]) -> None:
    """Whatever order the outcomes arrive in, what feedback hands the counters (each arm's
    net return at join time) is what the evidence reads later, and both are the backtest's
    rule on each arm's series per ticker."""
    import tempfile

    from finmlops.evaluation import run_backtest

    rows, batches, band = case
    s = Settings(evaluation={"dead_band": band})
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ledger.db"
        pids = write_ledger(url, [Row(r.day, r.served, r.probs, None, ticker=r.ticker)
                                  for r in rows], s)
        ledger = open_ledger(url, create=False)
        try:
            joined = {}
            realized = {i: r.realized for i, r in enumerate(rows) if r.realized is not None}
            for batch in batches:
                got = ledger.apply_feedback(
                    [Feedback(realized[i], int(realized[i] > 0), prediction_id=pids[i])
                     for i in batch], "t", s.evaluation)
                assert got.accepted == len(batch)
                joined.update({(o.prediction_id, o.arm): (o.net_return, o.hit, o.served)
                               for o in got.outcomes})
            out = read_evidence(ledger, s).outcomes
        finally:
            ledger.close()
    read = {(p, a): (n, int(h), bool(sv)) for p, a, n, h, sv in zip(
        out["request_id"], out["arm"], out["net_return"], out["hit"], out["served"],
        strict=True)}
    assert read.keys() == joined.keys()
    for key, (net, hit, served) in joined.items():
        assert read[key][1:] == (hit, served)
        assert read[key][0] == pytest.approx(net, abs=1e-15)
    for arm in ("baseline", "enhanced"):
        for ticker in ("IBB", "XBI"):
            idx = [i for i, r in enumerate(rows) if r.ticker == ticker]
            if not idx:
                continue
            p = np.array([np.float32(rows[i].probs[arm]) for i in idx], dtype=np.float64)
            r = np.array([rows[i].realized if rows[i].realized is not None else 0.0
                          for i in idx])
            net = run_backtest(p, r, s.evaluation).net
            for k, i in enumerate(idx):
                if rows[i].realized is not None:
                    assert read[(pids[i], arm)][0] == pytest.approx(net[k], abs=1e-15)
