"""Per-arm cumulative numbers in the timelines (what the report draws) agree with the
statistics computed from the same outcomes, the sample-ratio timeline is always-valid (per
version when the outcomes carry one), stress totals compound, and the real stage's file
renders."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finmlops.abtest import (
    PAIRED_DAILY_BASIS,
    paired_timeline,
    split_estimate,
    split_timeline,
    window_breakdown,
)
from finmlops.abtest.sources import arm_stats
from finmlops.config import Settings


def _frame(days: int, seed: int, shadow: bool, share: float = 0.4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(days):
        day = (dt.date(2020, 3, 2) + dt.timedelta(days=int(rng.integers(0, days)))).isoformat()
        served = "enhanced" if rng.random() < share else "baseline"
        for arm in ("baseline", "enhanced"):
            if shadow or arm == served:
                r = float(rng.normal(0.0, 0.01))
                rows.append({"request_id": f"r{i}", "day": day, "arm": arm,
                             "served": arm == served, "hit": bool(rng.random() < 0.5),
                             "net_return": r})
    return pd.DataFrame(rows, columns=["request_id", "day", "arm", "served", "hit",
                                       "net_return"])


@hsettings(max_examples=25, deadline=None)
@given(days=st.integers(1, 60), seed=st.integers(0, 10_000), shadow=st.booleans())
def test_per_arm_cumulatives_match_the_statistics(days: int, seed: int, shadow: bool) -> None:
    out = _frame(days, seed, shadow)
    s = Settings(abtest={"min_samples": 2})
    t = split_timeline(out, s.abtest, s.experiment, "enhanced", "baseline")
    arms = t.arms
    assert set(arms) == {"baseline", "enhanced"}
    totals = arm_stats(out)
    for arm, c in arms.items():
        assert all(len(v) == len(t.days) for v in c.to_json().values())
        assert np.all(np.diff(c.n) >= 0) and np.all(np.diff(c.hits) >= 0)
        total = totals.get(arm)
        assert c.n[-1] == (total.n if total else 0)
        assert c.hits[-1] == (total.hits if total else 0)
        assert c.sum_return[-1] == pytest.approx(total.sum_return if total else 0.0)
    assert t.n_challenger == arms["enhanced"].n
    assert t.n_reference == arms["baseline"].n
    e, r = arms["enhanced"], arms["baseline"]
    est, _ = split_estimate(s.abtest.metric, e.n, e.hits, e.sum_return, e.sum_sq,
                            r.n, r.hits, r.sum_return, r.sum_sq)
    assert est == pytest.approx(t.estimate)  # the same outcomes as the test
    p = paired_timeline(out, s.abtest, "enhanced", "baseline")
    if not shadow:
        assert p.days == [] and "arms" not in p.to_json()
        return
    pe, pr = p.arms["enhanced"], p.arms["baseline"]
    assert pe.n == pr.n == p.n  # every arm on every paired request
    diff = np.asarray(pe.sum_return) - np.asarray(pr.sum_return)
    daily_total = np.cumsum(np.asarray(p.daily_diff) * np.diff([0, *p.n]))
    assert diff == pytest.approx(daily_total, abs=1e-12)


def test_window_totals_compound_and_differ_consistently() -> None:
    out = _frame(40, 7, True)
    w = window_breakdown(out, dt.date(2020, 3, 1), dt.date(2020, 3, 20), "enhanced",
                         "baseline")
    assert w is not None
    p = w.paired
    assert p.total_return - p.total_return_reference == pytest.approx(p.total_diff)
    inside = out[out["day"] <= "2020-03-20"]
    daily = inside[inside["arm"] == "enhanced"].groupby("day")["net_return"].mean()
    assert p.total_return == pytest.approx(float(np.prod(1 + daily) - 1))


def test_stress_totals_by_hand() -> None:
    """Three days, both arms scored every day; baseline served days 1 and 3 (two tickers on
    day 3), enhanced day 2. Served: baseline (1 + 0.10)(1 + (-0.20 + 0.00) / 2) - 1 = -0.01,
    enhanced 1 - 0.05 - 1 = -0.05. Paired (both arms on every day): enhanced
    (1 - 0.10)(1 - 0.05)(1 + (0.02 + 0.04) / 2) - 1 = -0.119350, baseline
    (1 + 0.10)(1 + 0.20)(1 - 0.10) - 1 = 0.188; summing requests would say -0.09 and 0.10."""
    rows = []
    table = [("r1", "2020-03-02", "baseline", 0.10, -0.10),
             ("r2", "2020-03-03", "enhanced", 0.20, -0.05),
             ("r3", "2020-03-04", "baseline", -0.20, 0.02),
             ("r4", "2020-03-04", "baseline", 0.00, 0.04)]
    for rid, day, served, base, enh in table:
        for arm, r in (("baseline", base), ("enhanced", enh)):
            rows.append({"request_id": rid, "day": day, "arm": arm, "served": arm == served,
                         "hit": r > 0, "net_return": r})
    w = window_breakdown(pd.DataFrame(rows), dt.date(2020, 3, 1), dt.date(2020, 3, 31),
                         "enhanced", "baseline")
    assert w is not None and w.days == 3
    assert w.served["baseline"].total_return == pytest.approx(-0.01)
    assert w.served["enhanced"].total_return == pytest.approx(-0.05)
    p = w.paired
    assert p.total_return == pytest.approx(-0.11935)
    assert p.total_return_reference == pytest.approx(0.188)
    assert p.total_diff == pytest.approx(-0.11935 - 0.188)
    assert p.mean_diff == pytest.approx((-0.2 - 0.25 + 0.22 + 0.04) / 4)


def _split_days(days: int, shares: list[float], seed: int, version: list[int] | None = None
                ) -> pd.DataFrame:
    """``days`` days of 5 served requests each; day ``i`` routes enhanced with ``shares[i]``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(days):
        day = (dt.date(2021, 1, 1) + dt.timedelta(days=i)).isoformat()
        for k in range(5):
            arm = "enhanced" if rng.random() < shares[i] else "baseline"
            row = {"request_id": f"r{i}-{k}", "day": day, "arm": arm, "served": True,
                   "hit": bool(rng.random() < 0.5), "net_return": float(rng.normal(0, 0.01))}
            if version is not None:
                row["config_version"] = version[i]
            rows.append(row)
    return pd.DataFrame(rows)


def test_sample_ratio_timeline_is_a_running_always_valid_p() -> None:
    s = Settings(abtest={"min_samples": 20})
    fair = split_timeline(_split_days(300, [0.3] * 300, 1), s.abtest, s.experiment,
                          "enhanced", "baseline")
    p = np.asarray(fair.srm_p)
    assert np.all(np.diff(p) <= 0) and p[-1] > s.abtest.srm_alpha
    assert "invalid" not in fair.action[30:]
    skew = split_timeline(_split_days(300, [0.3] * 100 + [0.6] * 200, 1), s.abtest,
                          s.experiment, "enhanced", "baseline")
    q = np.asarray(skew.srm_p)
    assert q[99] > s.abtest.srm_alpha > q[-1]
    first = int(np.argmax(q < s.abtest.srm_alpha))
    assert set(skew.action[first:]) == {"invalid"}  # the running minimum keeps it


def test_sample_ratio_timeline_per_version() -> None:
    """Weights 70/30 for 150 days, then 40/60: per version nothing is wrong; held to one set
    of weights, the same traffic is a mismatch."""
    s = Settings(abtest={"min_samples": 20})
    shares = [0.3] * 150 + [0.6] * 150
    out = _split_days(300, shares, 2, version=[1] * 150 + [2] * 150)
    weights = {1: {"baseline": 70, "enhanced": 30}, 2: {"baseline": 40, "enhanced": 60}}
    per_version = split_timeline(out, s.abtest, s.experiment, "enhanced", "baseline",
                                 weights_by_version=weights)
    assert per_version.srm_p[-1] > s.abtest.srm_alpha
    pooled = split_timeline(out, s.abtest, s.experiment, "enhanced", "baseline")
    assert pooled.srm_p[-1] < s.abtest.srm_alpha
    wrong = {1: weights[1], 2: {"baseline": 70, "enhanced": 30}}
    assert split_timeline(out, s.abtest, s.experiment, "enhanced", "baseline",
                          weights_by_version=wrong).srm_p[-1] < s.abtest.srm_alpha
    with pytest.raises(ValueError, match="no target weights for experiment version"):
        split_timeline(out, s.abtest, s.experiment, "enhanced", "baseline",
                       weights_by_version={1: weights[1]})


@pytest.mark.integration
def test_stage_output_carries_the_per_arm_timelines_and_renders(
        tmp_path: Path, settings: Callable[..., Settings], tiny_model: Callable[..., Path],
        registered_arms: Callable[..., dict[str, Any]]) -> None:
    from finmlops.contracts import AbtestSummary
    from finmlops.data import ingest
    from finmlops.features import feature_names
    from finmlops.pipeline import RunContext, SilentReporter
    from finmlops.pipeline._abtest import run
    from finmlops.report import abtest_section

    s = settings(data__start=dt.date(2019, 1, 1), data__end=dt.date(2020, 6, 30),
                 train__cutoff=dt.date(2019, 12, 31), experiment__shadow=True,
                 abtest__min_samples=20)
    names = feature_names("full", s.features.context)
    dirs = {arm: tiny_model(tmp_path / "models" / arm, arm, 20, names, w)
            for arm, w in (("baseline", 60.0), ("enhanced", -60.0))}
    state = {"dataset_version": ingest(s).version, **registered_arms(s, dirs)}
    path = Path(run(RunContext(s, SilentReporter(), state)).outputs["abtest"]["path"])
    data = json.loads(path.read_text())
    assert data["min_samples"] == 20 and data["min_effect"] == 0.0
    split, paired = data["timeline"]["split"], data["timeline"]["paired"]
    for arm, a in data["arms"].items():
        assert split["arms"][arm]["n"][-1] == a["n"]
        assert split["arms"][arm]["hits"][-1] == a["hits"]
        assert paired["arms"][arm]["n"][-1] == data["replay"]["feedback"]
    assert path.stat().st_size < 1_000_000
    figures: list[dict[str, Any]] = []

    def add(traces: list[dict[str, Any]], layout: dict[str, Any], height: int = 420) -> str:
        figures.append(layout)
        return ""

    page = abtest_section(AbtestSummary.model_validate(data), add)
    assert len(figures) == 5
    assert "Split test (served traffic):" in page and "Paired test (shadow scoring):" in page
    assert "&times; narrower" in page and "covid_crash" in page


def _paired_days(diffs: list[float]) -> pd.DataFrame:
    """One shadow-scored request per day; the reference earns 0, the challenger ``diff``."""
    rows = []
    for i, d in enumerate(diffs):
        day = (dt.date(2021, 1, 1) + dt.timedelta(days=i)).isoformat()
        served = "baseline" if i % 10 < 7 else "enhanced"
        for arm, r in (("baseline", 0.0), ("enhanced", d)):
            rows.append({"request_id": f"r{i}", "day": day, "arm": arm,
                         "served": arm == served, "hit": r > 0, "net_return": r})
    return pd.DataFrame(rows)


def test_reported_p_value_ignores_the_days_before_the_gate() -> None:
    """Three near-identical early days make the plug-in variance tiny and p ~ 0; the
    always-valid p-value must not carry that forever (it starts at ``min_samples``)."""
    rng = np.random.default_rng(3)
    diffs = [0.001, 0.0011, 0.0009, *rng.normal(0.0, 0.01, 150).tolist()]
    s = Settings(abtest={"min_samples": 50})
    for t in (paired_timeline(_paired_days(diffs), s.abtest, "enhanced", "baseline"),
              split_timeline(_paired_days(diffs), s.abtest, s.experiment, "enhanced",
                             "baseline")):
        p = np.asarray(t.p_value)
        assert np.all(np.diff(p) <= 0)
        before = np.logical_and.accumulate([a == "invalid" for a in t.action])
        assert before[2] and np.all(p[before] == 1.0)
    t = paired_timeline(_paired_days(diffs), s.abtest, "enhanced", "baseline")
    assert t.p_value[2] == 1.0 and t.action[:49] == ["invalid"] * 49
    # with min_effect 0 the p-value and the decisions tell the same story
    assert (t.p_value[-1] < s.abtest.alpha) == (t.days_to_decision is not None)
    assert t.p_value[-1] > s.abtest.alpha


@pytest.mark.parametrize("metric", ["net_return", "hit_rate"])
def test_paired_timeline_ends_where_the_paired_decision_is(metric: str) -> None:
    """Several tickers a day: the timeline's last day and the decision use the same daily
    series, the same variance and the same gate, so they agree."""
    from finmlops.abtest import analyse_outcomes

    rng = np.random.default_rng(8)
    rows = []
    for i in range(160):
        day = (dt.date(2021, 1, 4) + dt.timedelta(days=i)).isoformat()
        market = rng.normal(0, 0.01)
        for tk in ("IBB", "XBI", "SPY"):
            rid = f"{tk}:{day}"
            served = "enhanced" if rng.random() < 0.3 else "baseline"
            for arm, edge in (("baseline", 0.0), ("enhanced", 0.002)):
                r = market * (rng.random() < 0.6) + edge
                rows.append({"request_id": rid, "day": day, "arm": arm,
                             "served": arm == served, "hit": bool(r > 0), "net_return": r})
    out = pd.DataFrame(rows)
    s = Settings(abtest={"min_samples": 100, "metric": metric})
    served = out[out.served].groupby("arm").size().to_dict()
    summary = analyse_outcomes(out, served, s)
    t, d = summary.timeline.paired, summary.paired_decision
    assert d.numbers.sequential.basis == PAIRED_DAILY_BASIS
    assert t.action[-1] == d.action
    assert t.lower[-1] == pytest.approx(d.numbers.sequential.lower)
    assert t.upper[-1] == pytest.approx(d.numbers.sequential.upper)
    assert t.action[98] == "invalid" and t.action[99] != "invalid"  # 100 days, not 300
