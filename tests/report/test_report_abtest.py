"""The report's A/B section: headline, traffic, per-arm charts, sequential tests, stress.

From a hand-built ``abtest.json``, an older thinner one, and one built by
:func:`finmlops.abtest.analyse_outcomes` from synthetic outcomes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finmlops.abtest import analyse_outcomes
from finmlops.config import Settings
from finmlops.report import abtest_section, render_report

AB_TITLES = ("Cumulative hit rate", "Cumulative net P&L per arm", "Counterfactual",
             "Split test", "Paired test")


def _figures(page: str) -> list[dict[str, Any]]:
    return [json.loads(m.replace("<\\/", "</")) for m in re.findall(
        r'<script type="application/json" id="fig\d+-json">(.*?)</script>', page)]


def _section(ab: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The section's HTML and its figures, through the report's figure mechanism."""
    figs: list[dict[str, Any]] = []

    def add(data: list[dict[str, Any]], layout: dict[str, Any], height: int = 420) -> str:
        figs.append(json.loads(json.dumps({"data": data, "layout": layout}, allow_nan=False)))
        return f"<div class='plot' id='fig{len(figs) - 1}'></div>"

    return abtest_section(ab, add), figs


def _by_title(figs: list[dict[str, Any]], start: str) -> dict[str, Any]:
    found = [f for f in figs if f["layout"]["title"]["text"].startswith(start)]
    assert len(found) == 1, [f["layout"]["title"]["text"] for f in figs]
    return found[0]


def _trace(fig: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in fig["data"] if t["name"] == name)


def test_headline_gives_both_decisions_days_and_width_ratio(abtest_full: dict[str, Any]) -> None:
    page, _ = _section(abtest_full)
    head = page[page.index("id='abtest-headline'"):page.index("<h3>Traffic")]
    split = head[head.index("id='abtest-split'"):head.index("id='abtest-paired'")]
    assert "CONTINUE" in split and "no decision yet on net_return" in split
    assert "Decision not reached in 10 days" in split
    paired = head[head.index("id='abtest-paired'"):]
    assert "PROMOTE" in paired and "paired: CS above min effect" in paired
    assert "Decision reached after 5 days (on 2019-01-06)" in paired
    # split CS [-10, 30] bps, paired [5, 15] bps
    assert "<b>4.0&times; narrower</b>" in head and "width 10.0 vs 40.0 bps" in head
    assert "min effect 2.0 bps" in head


def test_traffic_and_per_arm_tables(abtest_full: dict[str, Any]) -> None:
    page, _ = _section(abtest_full)
    traffic = page[page.index("abtest-traffic"):page.index("</table>",
                                                          page.index("abtest-traffic"))]
    assert ("<td>enhanced</td><td>challenger</td><td>30.0%</td><td>4</td><td>40.00%</td>"
            "<td>+10.00 pt</td>") in traffic
    assert "SRM) always-valid test p = 0.42 — traffic matches" in page
    arms = page[page.index("abtest-arms"):]
    assert "<td>baseline</td><td>6</td><td>66.7%</td><td>[30.0%, 90.0%]</td>" in arms
    assert "<td>-27.0 bps</td><td>[-200.0 bps, -]</td>" in arms  # NaN bound shown as "-"


def test_per_arm_charts_hold_cumulative_rates_and_pnl_with_bands(
        abtest_full: dict[str, Any]) -> None:
    _, figs = _section(abtest_full)
    split_arms = abtest_full["timeline"]["split"]["arms"]
    hit = _by_title(figs, "Cumulative hit rate")
    for arm, c in split_arms.items():
        mid = _trace(hit, arm)["y"]
        lo, hi = _trace(hit, f"{arm} lower")["y"], _trace(hit, f"{arm} 95% band")["y"]
        for i in range(10):
            if c["n"][i] == 0:  # enhanced is first served on day 2
                assert mid[i] is None and lo[i] is None
                continue
            assert mid[i] == pytest.approx(100 * c["hits"][i] / c["n"][i], abs=1e-3)
            assert 0 <= lo[i] <= mid[i] <= hi[i] <= 100
    assert hit["layout"]["yaxis"]["ticksuffix"] == "%"
    pnl = _by_title(figs, "Cumulative net P&L per arm")
    for arm, c in split_arms.items():
        assert _trace(pnl, arm)["y"] == pytest.approx([100 * s for s in c["sum_return"]],
                                                      abs=1e-4)
        band = _trace(pnl, f"{arm} 95% band")
        assert band["fill"] == "tonexty" and band["y"][-1] > _trace(pnl, arm)["y"][-1]
    shadow = _by_title(figs, "Counterfactual")
    paired_arms = abtest_full["timeline"]["paired"]["arms"]
    assert _trace(shadow, "enhanced")["y"][-1] == pytest.approx(
        100 * paired_arms["enhanced"]["sum_return"][-1], abs=1e-4)
    for f in (hit, pnl, shadow):
        assert f["layout"]["xaxis"]["title"]["text"] and f["layout"]["yaxis"]["title"]["text"]


def test_sequential_charts_share_one_scale_and_show_the_boundaries(
        abtest_full: dict[str, Any]) -> None:
    _, figs = _section(abtest_full)
    split, paired = _by_title(figs, "Split test"), _by_title(figs, "Paired test")
    assert split["layout"]["yaxis"]["range"] == paired["layout"]["yaxis"]["range"]
    assert split["layout"]["yaxis"]["title"]["text"] == "difference (bps)"
    lo, hi = split["layout"]["yaxis"]["range"]
    assert lo < 0 < 2.0 < hi  # zero and the min effect are always in view
    for fig, t in ((split, "split"), (paired, "paired")):
        tl = abtest_full["timeline"][t]
        assert _trace(fig, "estimate (challenger - reference)")["y"] == pytest.approx(
            [1e4 * e for e in tl["estimate"]])
        upper = _trace(fig, "95% confidence sequence")
        assert upper["y"][0] is None and upper["y"][-1] == pytest.approx(1e4 * tl["upper"][-1])
        assert _trace(fig, "0: rollback below")["y"] == [0, 0]
        assert _trace(fig, "min effect: promote above")["y"] == pytest.approx([2.0, 2.0])
    assert split["layout"]["shapes"] == []  # the split test never decided
    assert paired["layout"]["shapes"][0]["x0"] == "2019-01-06"
    assert paired["layout"]["annotations"][0]["text"] == "decided: continue"


def test_stress_windows_per_arm_and_paired(abtest_full: dict[str, Any]) -> None:
    page, _ = _section(abtest_full)
    stress = page[page.index("<h3>Stress windows"):]
    assert ("<td>covid_crash</td><td>2019-01-03 to 2019-01-05</td><td>3</td><td>enhanced</td>"
            "<td>1</td><td>0.0%</td><td>-100.0 bps</td><td>-1.0%</td>") in stress
    assert ("<td>0.9%</td><td>0.3%</td><td>0.6%</td><td>20.0 bps</td>") in stress
    assert "<th>hit enhanced</th><th>hit baseline</th>" in stress


def test_no_paired_part_says_so_and_draws_only_the_split(abtest_full: dict[str, Any]) -> None:
    ab = {**abtest_full, "paired_decision": None, "days_to_decision": {"split": None,
                                                                       "paired": None},
          "timeline": {"split": abtest_full["timeline"]["split"], "paired": None}}
    page, figs = _section(ab)
    assert "Paired test (shadow scoring):</b> not run" in page
    assert "&times; narrower" not in page
    titles = [f["layout"]["title"]["text"] for f in figs]
    assert not any(t.startswith(("Paired test", "Counterfactual")) for t in titles)
    assert any(t.startswith("Split test") for t in titles)


def test_older_files_render_what_they_have(evaluation: dict[str, Any],
                                           abtest_legacy: dict[str, Any]) -> None:
    page = render_report(evaluation, abtest_legacy, plotly_js="")
    section = page[page.index("id='abtest'"):]
    assert "CONTINUE</span></b> — no decision yet on net_return" in section
    assert "<td>enhanced</td><td>300</td><td>55.0%</td><td>[49.0%, 61.0%]</td>" in section
    assert "<h3>Traffic" not in section  # no served counts in that file
    titles = [f["layout"]["title"]["text"] for f in _figures(page)]
    assert [t for t in titles if t.startswith(AB_TITLES)] == [
        "Split test: served challenger vs served reference — difference in mean net return"]


@pytest.mark.parametrize("ab", [
    {}, {"decision": "promote"}, {"arms": [{"name": "a", "n": 3}]},
    {"timeline": [{"day": "2020-01-01", "z": 1.0}]}, {"timeline": {"split": {"days": []}}},
    {"timeline": {"split": {"days": ["2020-01-01"], "estimate": [1.0], "lower": "x",
                            "upper": [None]}}},
    {"stress_windows": {"w": None}, "days_to_decision": "soon", "arms": {"a": 3}},
])
def test_section_tolerates_odd_shapes(evaluation: dict[str, Any], ab: dict[str, Any]) -> None:
    page = render_report(evaluation, ab, plotly_js="")
    assert "A/B experiment" in page
    _figures(page)  # every figure's JSON still parses


def test_decision_given_as_a_string(evaluation: dict[str, Any]) -> None:
    page = render_report(evaluation, {"decision": "promote"}, plotly_js="")
    assert "PROMOTE" in page


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
def analysed() -> dict[str, Any]:
    out = _outcomes()
    settings = Settings(abtest={"min_samples": 20}, experiment={"shadow": True})
    served = out[out["served"]].groupby("arm").size().to_dict()
    data = analyse_outcomes(out, {str(k): int(v) for k, v in served.items()}, settings)
    return dict(json.loads(json.dumps(data, allow_nan=False)))


def test_section_from_analysed_outcomes(analysed: dict[str, Any]) -> None:
    page, figs = _section(analysed)
    titles = [f["layout"]["title"]["text"] for f in figs]
    assert len(titles) == 5 and all(t.startswith(AB_TITLES) for t in titles)
    split, paired = analysed["days_to_decision"]["split"], analysed["days_to_decision"]["paired"]
    assert isinstance(paired, int)  # the planted 40 bps edge is found by the paired test
    assert f"Decision reached after {paired} days" in page
    if split is None:
        assert "Decision not reached in 160 days" in page
    found = re.search(r"<b>([\d.]+)&times; narrower</b>", page)
    assert found is not None
    ratio = float(found.group(1))
    seq = [analysed[k]["numbers"]["sequential"] for k in ("decision", "paired_decision")]
    widths = [s["upper"] - s["lower"] for s in seq]
    assert ratio == pytest.approx(widths[0] / widths[1], abs=0.05) and ratio > 1
    shadow = _by_title(figs, "Counterfactual")
    final = {t["name"]: t["y"][-1] for t in shadow["data"] if t["name"] in {"baseline",
                                                                            "enhanced"}}
    sum_diff = analysed["paired_decision"]["numbers"]["paired"]["sum_diff"]
    assert final["enhanced"] - final["baseline"] == pytest.approx(100 * sum_diff, abs=1e-3)
    hit = _by_title(figs, "Cumulative hit rate")
    n = {a: analysed["arms"][a]["n"] for a in ("baseline", "enhanced")}
    for arm in n:
        assert _trace(hit, arm)["y"][-1] == pytest.approx(
            100 * analysed["arms"][arm]["hit_rate"], abs=1e-3)
    assert all(math.isfinite(x) for t in hit["data"] for x in t["y"] if x is not None)
