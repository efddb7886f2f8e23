"""Reading sufficient statistics: the SQLite prediction log and the Prometheus HTTP API."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from finmlops.abtest import (
    ArmStats,
    PairedStats,
    from_prediction_log,
    from_prometheus,
    paired_from_prediction_log,
    paired_timeline,
    read_outcomes,
    served_counts,
    snapshot_from_log,
    split_timeline,
    window_breakdown,
)
from finmlops.config import Settings
from finmlops.errors import SourceError, StoreError

D1, D2 = dt.date(2020, 3, 2), dt.date(2020, 3, 3)


def test_log_reader_counts_only_served_outcomes_of_the_experiment(
        make_log: Callable[..., Path]) -> None:
    rows = [
        {"day": D1, "served": "baseline", "outcomes": {"baseline": (1, 0.01),
                                                       "enhanced": (0, -0.01)}},
        {"day": D1, "ticker": "XBI", "served": "enhanced",
         "outcomes": {"baseline": (0, 0.0), "enhanced": (1, 0.02)}},
        {"day": D2, "served": "baseline", "outcomes": {"baseline": (0, -0.03),
                                                       "enhanced": (0, 0.0)}},
        {"day": D2, "served": "enhanced", "feedback": False, "outcomes": {"enhanced": (1, 0.0)}},
        {"day": D2, "served": "baseline", "experiment": "other",
         "outcomes": {"baseline": (1, 5.0)}},
    ]
    path = make_log(rows)
    stats = from_prediction_log(path, "direction-ab")
    assert stats["baseline"] == ArmStats(2, 1, pytest.approx(-0.02), pytest.approx(0.001))
    assert stats["enhanced"] == ArmStats(1, 1, pytest.approx(0.02), pytest.approx(0.0004))
    assert served_counts(path, "direction-ab") == {"baseline": 2, "enhanced": 2}
    paired, daily = paired_from_prediction_log(path, "direction-ab", "enhanced", "baseline")
    assert (paired.n, paired.b, paired.c) == (3, 1, 1)
    assert paired.sum_diff == pytest.approx(-0.02 + 0.02 + 0.03)
    # day 1: mean of (-0.02, +0.02) over two tickers; day 2: +0.03
    assert daily.tolist() == pytest.approx([0.0, 0.03])


def test_days_come_from_the_routing_key_else_the_timestamp(
        make_log: Callable[..., Path]) -> None:
    rows = [{"day": D1, "served": "baseline", "outcomes": {"baseline": (1, 0.01)}}]
    with_key = read_outcomes(make_log(rows, name="a.db"), "direction-ab")
    without = read_outcomes(make_log(rows, name="b.db", routing=False), "direction-ab")
    assert with_key["day"].tolist() == without["day"].tolist() == ["2020-03-02"]


def test_missing_log_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="prediction log not found"):
        from_prediction_log(tmp_path / "nope.db", "direction-ab")
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(StoreError, match="not readable"):
        from_prediction_log(tmp_path / "empty.db", "direction-ab")


def test_snapshot_and_timelines_on_a_simulated_shadow_log(
        make_log: Callable[..., Path], sim_rows: Callable[..., list[dict[str, Any]]],
        settings: Callable[..., Settings]) -> None:
    s = settings()
    path = make_log(sim_rows(days=300, seed=1, effect=0.004))
    snap = snapshot_from_log(path, "direction-ab", reference="baseline")
    assert sum(a.n for a in snap.arms.values()) == 300
    assert snap.paired[("enhanced", "baseline")].n == 300
    assert snap.daily_diff[("enhanced", "baseline")].shape == (300,)
    out = read_outcomes(path, "direction-ab")
    split = split_timeline(out, s.abtest, s.experiment, "enhanced", "baseline", n_plan=300)
    paired = paired_timeline(out, s.abtest, "enhanced", "baseline", n_plan=300)
    assert len(split["days"]) == len(paired["days"]) == 300
    assert split["action"][0] == "invalid"  # too few outcomes on day one
    assert paired["days_to_decision"] is not None and paired["action"][-1] == "promote"
    assert split["days_to_decision"] is None or (
        split["days_to_decision"] > paired["days_to_decision"])
    assert all(np.diff(paired["p_value"]) <= 0)  # running minimum
    covid = window_breakdown(out, dt.date(2019, 3, 1), dt.date(2019, 3, 29), "enhanced",
                             "baseline")
    assert covid is not None and covid["days"] == 21 and covid["paired"]["n"] == 21
    assert window_breakdown(out, dt.date(2010, 1, 1), dt.date(2010, 2, 1), "enhanced",
                            "baseline") is None


def _answers(fake_vector: Callable[..., Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        "finmlops_feedback_total": fake_vector([({"arm": "baseline"}, 700),
                                                ({"arm": "enhanced"}, 300)]),
        "finmlops_feedback_hits_total": fake_vector([({"arm": "baseline"}, 360),
                                                     ({"arm": "enhanced"}, 170)]),
        "finmlops_feedback_return_sum": fake_vector([({"arm": "baseline"}, 0.35),
                                                     ({"arm": "enhanced"}, 0.6)]),
        "finmlops_feedback_return_sq_sum": fake_vector([({"arm": "baseline"}, 0.07),
                                                        ({"arm": "enhanced"}, 0.03)]),
        "finmlops_predictions_total": fake_vector([({"arm": "baseline"}, 705),
                                                   ({"arm": "enhanced"}, 301)]),
        "finmlops_paired_outcomes_total": fake_vector(
            [({"arm": "enhanced", "reference": "baseline"}, 1000)]),
        "finmlops_paired_discordant_total": fake_vector(
            [({"arm": "enhanced", "reference": "baseline", "winner": "arm"}, 120),
             ({"arm": "enhanced", "reference": "baseline", "winner": "reference"}, 80)]),
        "finmlops_paired_return_diff_sum": fake_vector(
            [({"arm": "enhanced", "reference": "baseline"}, 0.5)]),
        "finmlops_paired_return_diff_sq_sum": fake_vector(
            [({"arm": "enhanced", "reference": "baseline"}, 0.02)]),
    }


def test_prometheus_reader(fake_prometheus: Any, prom_vector: Callable[..., Any]) -> None:
    with fake_prometheus(_answers(prom_vector)) as prom:
        snap = from_prometheus(prom.url, "direction-ab", token="t0k")
    assert snap.arms["baseline"] == ArmStats(700, 360, 0.35, 0.07)
    assert snap.arms["enhanced"].n == 300 and snap.arms["enhanced"].hits == 170
    assert snap.served == {"baseline": 705, "enhanced": 301}
    assert snap.paired[("enhanced", "baseline")] == PairedStats(1000, 120, 80, 0.5, 0.02)
    assert 'sum by (arm) (finmlops_feedback_total{experiment="direction-ab"})' in prom.queries
    assert all(a == "Bearer t0k" for a in prom.auth)


def test_prometheus_with_no_data_gives_empty_stats(fake_prometheus: Any) -> None:
    with fake_prometheus({}) as prom:
        snap = from_prometheus(prom.url, "direction-ab")
    assert snap.arms == {} and snap.paired == {}


def test_prometheus_errors_are_source_errors(fake_prometheus: Any) -> None:
    with fake_prometheus({}) as prom:
        url = prom.url
        with pytest.raises(SourceError, match="failed"):
            from_prometheus(url + "/wrong", "direction-ab")
    with pytest.raises(SourceError, match="unreachable"):
        from_prometheus(url, "direction-ab", timeout=0.5)


def test_arm_stats_from_prometheus_are_consistent(fake_prometheus: Any,
                                                  prom_vector: Callable[..., Any]) -> None:
    """Counters scraped at slightly different times can disagree; the reader clamps them."""
    answers = _answers(prom_vector)
    answers["finmlops_feedback_hits_total"] = prom_vector([({"arm": "enhanced"}, 301)])
    with fake_prometheus(answers) as prom:
        snap = from_prometheus(prom.url, "direction-ab")
    assert snap.arms["enhanced"].hits == 300
    assert not math.isnan(snap.arms["enhanced"].hit_rate)


def test_analysis_of_a_log_without_outcomes_is_invalid_and_json_clean(
        make_log: Callable[..., Path], sim_rows: Callable[..., list[dict[str, Any]]],
        settings: Callable[..., Settings]) -> None:
    import json

    from finmlops.abtest import analyse_outcomes

    for name, rows in (("empty.db", []), ("pending.db", [
            {**r, "feedback": False} for r in sim_rows(days=20, shadow=False)])):
        path = make_log(rows, name=name)
        out = analyse_outcomes(read_outcomes(path, "direction-ab"),
                               served_counts(path, "direction-ab"), settings())
        assert out["decision"]["action"] == "invalid"
        assert out["paired_decision"] is None and out["stress_windows"] == {}
        json.dumps(out, allow_nan=False)
