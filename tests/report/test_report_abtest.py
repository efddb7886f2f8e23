"""The report's A/B section: headline, traffic, per-arm charts, sequential tests, stress.

From a hand-built ``abtest.json`` and one built by :func:`finmlops.abtest.analyse_outcomes`
from synthetic outcomes; the page is parsed (``page_support``) and its numbers read back.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from page_support import Page, Table, interval, number

from finmlops.abtest import analyse_outcomes
from finmlops.config import Settings
from finmlops.contracts import AbtestSummary
from finmlops.errors import StageError
from finmlops.files import write_json
from finmlops.report import abtest_section, read_abtest

AB_TITLES = ("Cumulative hit rate", "Cumulative net P&L per arm", "Counterfactual",
             "Split test", "Paired test")


def _section(ab: AbtestSummary) -> tuple[Page, list[dict[str, Any]]]:
    """The section, parsed, and its figures, through the report's figure mechanism."""
    figs: list[dict[str, Any]] = []

    def add(data: list[dict[str, Any]], layout: dict[str, Any], height: int = 420) -> str:
        figs.append(json.loads(json.dumps({"data": data, "layout": layout}, allow_nan=False)))
        return f"<div class='plot' id='fig{len(figs) - 1}'></div>"

    return Page(abtest_section(ab, add)), figs


def _changed(ab: AbtestSummary, **parts: Any) -> AbtestSummary:
    """``ab`` with some top-level parts replaced, validated as the report reads a file."""
    return AbtestSummary.model_validate({**ab.to_json(), **parts})


def _by_title(figs: list[dict[str, Any]], start: str) -> dict[str, Any]:
    found = [f for f in figs if f["layout"]["title"]["text"].startswith(start)]
    assert len(found) == 1, [f["layout"]["title"]["text"] for f in figs]
    return found[0]


def _trace(fig: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in fig["data"] if t["name"] == name)


def _width(page: Page) -> tuple[float, float, float]:
    """The headline's ratio, paired width and split width of the final confidence sequences."""
    found = re.search(r"([\d.]+)\u00d7 narrower .* \(width ([\d.]+) vs ([\d.]+) bps\)",
                      page.by_id("abtest-width").text)
    assert found is not None
    ratio, paired, split = map(float, found.groups())
    return ratio, paired, split


def test_headline_gives_both_decisions_days_and_width_ratio(abtest_full: AbtestSummary) -> None:
    ab = abtest_full
    page, _ = _section(ab)
    split = page.by_id("abtest-split")
    assert split.find("span").text == ab.decision.action.upper() == "CONTINUE"
    assert ab.decision.reason in split.text
    assert f"Decision not reached in {len(ab.timeline.split.days)} days" in split.text
    paired = page.by_id("abtest-paired")
    assert paired.find("span").text == ab.paired_decision.action.upper() == "PROMOTE"
    assert ab.paired_decision.reason in paired.text
    k = ab.days_to_decision.paired
    assert f"Decision reached after {k} days (on {ab.timeline.paired.days[k - 1]})" in paired.text
    ws, wp = (1e4 * (d.numbers.sequential.upper - d.numbers.sequential.lower)
              for d in (ab.decision, ab.paired_decision))
    ratio, paired_w, split_w = _width(page)
    assert (paired_w, split_w) == (pytest.approx(wp, abs=0.05), pytest.approx(ws, abs=0.05))
    assert ratio == pytest.approx(ws / wp, abs=0.05)
    facts = page.by_id("abtest-headline").find("p", class_="muted").text
    assert f"challenger {ab.challenger} vs reference {ab.reference}" in facts
    found = re.search(r"min effect ([\d.]+) bps", facts)
    assert found is not None and float(found.group(1)) == pytest.approx(1e4 * ab.min_effect)


def test_traffic_against_the_configured_split(abtest_full: AbtestSummary) -> None:
    page, _ = _section(abtest_full)
    traffic = page.section("Traffic")
    table = traffic.table("abtest-traffic")
    assert [r[0] for r in table.rows] == list(abtest_full.arms)
    for arm, a in abtest_full.arms.items():
        row = table.row(arm)
        assert row["role"] == ("challenger" if arm == abtest_full.challenger else "reference")
        assert number(row["target share"]) == pytest.approx(100 * a.target_share, abs=0.05)
        assert number(row["served"]) == a.served
        assert number(row["served share"]) == pytest.approx(100 * a.share, abs=0.005)
        assert number(row["off target"]) == pytest.approx(100 * (a.share - a.target_share),
                                                          abs=0.005)
    srm = abtest_full.decision.numbers.srm
    assert not srm.mismatch
    found = re.search(r"always-valid test p = ([\d.]+) — traffic matches", traffic.text)
    assert found is not None and float(found.group(1)) == pytest.approx(srm.p_value)


def test_served_outcomes_per_arm(abtest_full: AbtestSummary) -> None:
    page, _ = _section(abtest_full)
    table = page.section("Served outcomes per arm").table("abtest-arms")
    for arm, a in abtest_full.arms.items():
        row = table.row(arm)
        assert number(row["outcomes"]) == a.n
        assert number(row["hit rate"]) == pytest.approx(100 * a.hit_rate, abs=0.05)
        assert interval(row["95% CI"]) == pytest.approx([100 * x for x in a.hit_rate_ci],
                                                        abs=0.05)
        assert number(row["mean net return"]) == pytest.approx(1e4 * a.mean_return, abs=0.05)
        lo, hi = a.mean_return_ci
        assert interval(row["95% CI #2"]) == (
            pytest.approx(1e4 * lo) if lo is not None else None,
            pytest.approx(1e4 * hi) if hi is not None else None)
        assert number(row["total net P&L"]) == pytest.approx(100 * a.n * a.mean_return,
                                                             abs=0.05)
    # an undefined bound (the file's null) is shown as "-"
    assert interval(table.row("baseline")["95% CI #2"])[1] is None


def test_per_arm_charts_hold_cumulative_rates_and_pnl_with_bands(
        abtest_full: AbtestSummary) -> None:
    _, figs = _section(abtest_full)
    split_arms = abtest_full.timeline.split.arms
    hit = _by_title(figs, "Cumulative hit rate")
    for arm, c in split_arms.items():
        mid = _trace(hit, arm)["y"]
        lo, hi = _trace(hit, f"{arm} lower")["y"], _trace(hit, f"{arm} 95% band")["y"]
        for i in range(10):
            if c.n[i] == 0:  # enhanced is first served on day 2
                assert mid[i] is None and lo[i] is None
                continue
            assert mid[i] == pytest.approx(100 * c.hits[i] / c.n[i], abs=1e-3)
            assert 0 <= lo[i] <= mid[i] <= hi[i] <= 100
    assert hit["layout"]["yaxis"]["ticksuffix"] == "%"
    pnl = _by_title(figs, "Cumulative net P&L per arm")
    for arm, c in split_arms.items():
        assert _trace(pnl, arm)["y"] == pytest.approx([100 * s for s in c.sum_return],
                                                      abs=1e-4)
        band = _trace(pnl, f"{arm} 95% band")
        assert band["fill"] == "tonexty" and band["y"][-1] > _trace(pnl, arm)["y"][-1]
    shadow = _by_title(figs, "Counterfactual")
    final = abtest_full.timeline.paired.arms["enhanced"].sum_return[-1]
    assert _trace(shadow, "enhanced")["y"][-1] == pytest.approx(100 * final, abs=1e-4)
    for f in (hit, pnl, shadow):
        assert f["layout"]["xaxis"]["title"]["text"] and f["layout"]["yaxis"]["title"]["text"]


def test_sequential_charts_share_one_scale_and_show_the_boundaries(
        abtest_full: AbtestSummary) -> None:
    _, figs = _section(abtest_full)
    split, paired = _by_title(figs, "Split test"), _by_title(figs, "Paired test")
    assert split["layout"]["yaxis"]["range"] == paired["layout"]["yaxis"]["range"]
    assert split["layout"]["yaxis"]["title"]["text"] == "difference (bps)"
    lo, hi = split["layout"]["yaxis"]["range"]
    min_effect = 1e4 * abtest_full.min_effect
    assert lo < 0 < min_effect < hi  # zero and the min effect are always in view
    for fig, tl in ((split, abtest_full.timeline.split), (paired, abtest_full.timeline.paired)):
        assert _trace(fig, "estimate (challenger - reference)")["y"] == pytest.approx(
            [1e4 * e for e in tl.estimate])
        upper = _trace(fig, "95% confidence sequence")
        assert tl.upper[0] is None and tl.upper[-1] is not None
        assert upper["y"][0] is None and upper["y"][-1] == pytest.approx(1e4 * tl.upper[-1])
        assert _trace(fig, "0: rollback below")["y"] == [0, 0]
        assert _trace(fig, "min effect: promote above")["y"] == pytest.approx([min_effect] * 2)
    assert split["layout"]["shapes"] == []  # the split test never decided
    k = abtest_full.days_to_decision.paired
    assert paired["layout"]["shapes"][0]["x0"] == abtest_full.timeline.paired.days[k - 1]
    assert paired["layout"]["annotations"][0]["text"] == "decided: promote"


def test_stress_windows_per_arm_and_paired(abtest_full: AbtestSummary) -> None:
    page, _ = _section(abtest_full)
    stress = page.section("Stress windows")
    (name, w), = abtest_full.stress_windows.items()
    served = stress.table("abtest-stress")
    for arm, a in w.served.items():
        row = served.row(name, f"{w.start} to {w.end}", str(w.days), arm)
        assert number(row["served outcomes"]) == a.n
        assert number(row["hit rate"]) == pytest.approx(100 * a.hit_rate, abs=0.05)
        assert number(row["mean net return"]) == pytest.approx(1e4 * a.mean_return, abs=0.05)
        assert number(row["total net return"]) == pytest.approx(100 * a.total_return,
                                                                abs=0.05)
    paired = stress.table("abtest-stress-paired")
    assert paired.headers[3:7] == ["hit enhanced", "hit baseline", "total enhanced",
                                   "total baseline"]
    row, p = paired.row(name), w.paired
    for key, value, scale in (("hit enhanced", p.hit_rate, 100),
                              ("hit baseline", p.hit_rate_reference, 100),
                              ("total enhanced", p.total_return, 100),
                              ("total baseline", p.total_return_reference, 100),
                              ("total difference", p.total_diff, 100),
                              ("mean daily difference", p.mean_diff, 1e4)):
        assert number(row[key]) == pytest.approx(scale * value, abs=0.05), key


def test_fixed_sample_tests_are_shown_for_reading(abtest_full: AbtestSummary) -> None:
    page, _ = _section(abtest_full)
    details = page.root.find("details")
    assert details.find("summary").text.startswith("Fixed-sample tests")
    fixed = Table.of(details.find("table"))
    welch = abtest_full.decision.numbers.net_return
    row = fixed.row("split", "Welch t, net return")
    assert number(row["estimate"]) == pytest.approx(1e4 * welch.estimate, abs=0.005)
    assert number(row["p"]) == pytest.approx(welch.p_value)
    assert [r[1] for r in fixed.rows] == ["Welch t, net return", "two-proportion z, hit rate"]


def test_no_paired_part_says_so_and_draws_only_the_split(abtest_full: AbtestSummary) -> None:
    data = abtest_full.to_json()
    ab = _changed(abtest_full, paired_decision=None,
                  days_to_decision={"split": None, "paired": None},
                  timeline={"split": data["timeline"]["split"], "paired": None})
    page, figs = _section(ab)
    headline = page.by_id("abtest-headline").text
    assert "Paired test (shadow scoring): not run" in headline
    assert "narrower" not in headline
    titles = [f["layout"]["title"]["text"] for f in figs]
    assert not any(t.startswith(("Paired test", "Counterfactual")) for t in titles)
    assert any(t.startswith("Split test") for t in titles)


def test_a_sample_ratio_mismatch_invalidates_the_split_test(abtest_full: AbtestSummary) -> None:
    """The split decision stops at the SRM test (no sequential numbers): the headline's
    width comes from the timeline's last confidence sequence."""
    numbers = abtest_full.decision.numbers.to_json()
    srm = {**numbers["srm"], "p_value": 0.001, "mismatch": True}
    keep = ("metric", "alpha", "min_effect", "challenger", "reference", "arms")
    ab = _changed(abtest_full, decision={
        "action": "invalid", "reason": "sample ratio mismatch (always-valid p=0.001 < 0.001)",
        "numbers": {**{k: numbers[k] for k in keep}, "srm": srm}})
    page, _ = _section(ab)
    assert page.by_id("abtest-split").find("span").text == "INVALID"
    assert "sample ratio mismatch: the split is not what was configured" in (
        page.section("Traffic").text)
    split = abtest_full.timeline.split
    _, _, split_w = _width(page)
    assert split_w == pytest.approx(1e4 * (split.upper[-1] - split.lower[-1]), abs=0.05)
    assert page.root.find_all("details") == []  # no fixed-sample test was run


def test_before_any_outcome_there_is_no_history(abtest_full: AbtestSummary) -> None:
    ab = _changed(abtest_full, paired_decision=None, days=0,
                  days_to_decision={"split": None, "paired": None},
                  timeline={"split": {"days": [], "days_to_decision": None}, "paired": None})
    page, figs = _section(ab)
    assert "no day-by-day history" in page.by_id("abtest-split").text
    assert figs == []
    assert "Per arm over time" not in page.headings()


def test_read_abtest_validates_the_file(tmp_path: Path, abtest_full: AbtestSummary) -> None:
    path = tmp_path / "abtest.json"
    write_json(path, abtest_full.to_json(), sort_keys=True)  # as the abtest stage writes it
    assert read_abtest(path) == abtest_full
    data = abtest_full.to_json()
    data["decision"]["action"] = "ship it"
    write_json(path, data)
    with pytest.raises(StageError) as bad:
        read_abtest(path)
    message = str(bad.value)
    assert "\n" not in message and "decision.action" in message
    assert "finmlops run --only abtest" in message
    with pytest.raises(StageError, match="not found"):
        read_abtest(tmp_path / "missing.json")


# --- from the analysis functions ---------------------------------------------------------------

def _outcomes(days: int = 160, seed: int = 3, effect: float = 0.004) -> pd.DataFrame:
    """One request a day; enhanced gets 30% of traffic and a planted edge; both arms scored."""
    rng = np.random.default_rng(seed)
    rows = []
    day = dt.date(2020, 1, 1)
    for i in range(days):
        served = "enhanced" if rng.random() < 0.3 else "baseline"
        market = rng.normal(0.0, 0.01)
        edge = effect + rng.normal(0.0, 0.004)
        for arm, r in (("baseline", market), ("enhanced", market + edge)):
            rows.append({"request_id": f"r{i}", "day": (day + dt.timedelta(days=i)).isoformat(),
                         "arm": arm, "served": arm == served, "hit": bool(r > 0),
                         "net_return": float(r)})
    return pd.DataFrame(rows)


@pytest.fixture
def analysed() -> AbtestSummary:
    out = _outcomes()
    settings = Settings(abtest={"min_samples": 20}, experiment={"shadow": True})
    served = out[out["served"]].groupby("arm").size().to_dict()
    data = analyse_outcomes(out, {str(k): int(v) for k, v in served.items()}, settings)
    return AbtestSummary.model_validate(data)


def test_section_from_analysed_outcomes(analysed: AbtestSummary) -> None:
    page, figs = _section(analysed)
    titles = [f["layout"]["title"]["text"] for f in figs]
    assert len(titles) == 5 and all(t.startswith(AB_TITLES) for t in titles)
    split, paired = analysed.days_to_decision.split, analysed.days_to_decision.paired
    assert isinstance(paired, int)  # the planted 40 bps edge is found by the paired test
    assert f"Decision reached after {paired} days" in page.by_id("abtest-paired").text
    assert split is None  # 30% of 160 days is too little traffic for the split test
    assert "Decision not reached in 160 days" in page.by_id("abtest-split").text
    ratio, _, _ = _width(page)
    widths = [d.numbers.sequential.upper - d.numbers.sequential.lower
              for d in (analysed.decision, analysed.paired_decision)]
    assert ratio == pytest.approx(widths[0] / widths[1], abs=0.05) and ratio > 1
    shadow = _by_title(figs, "Counterfactual")
    final = {t["name"]: t["y"][-1] for t in shadow["data"] if t["name"] in {"baseline",
                                                                            "enhanced"}}
    sum_diff = analysed.paired_decision.numbers.paired.sum_diff
    assert final["enhanced"] - final["baseline"] == pytest.approx(100 * sum_diff, abs=1e-3)
    hit = _by_title(figs, "Cumulative hit rate")
    for arm in ("baseline", "enhanced"):
        assert _trace(hit, arm)["y"][-1] == pytest.approx(100 * analysed.arms[arm].hit_rate,
                                                          abs=1e-3)
    assert all(math.isfinite(x) for t in hit["data"] for x in t["y"] if x is not None)
