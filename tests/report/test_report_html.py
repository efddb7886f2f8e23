"""The report's HTML: self-contained, every section present, tolerant A/B rendering."""

from __future__ import annotations

import json
import re

import pytest

from finmlops.report import render_report


def _figures(page: str) -> list[dict]:
    return [json.loads(m.replace("<\\/", "</")) for m in re.findall(
        r'<script type="application/json" id="fig\d+-json">(.*?)</script>', page)]


def test_sections_figures_and_no_external_resources(evaluation):
    page = render_report(evaluation, plotly_js="/*plotly*/")
    assert page.index('id="verdict"') < page.index("Performance net of costs")
    for title in ("Stress windows", "Cost sensitivity", "Accuracy and calibration", "Notes"):
        assert title in page
    assert "A/B experiment" not in page
    assert not re.search(r'(src|href)=["\']?(https?:)?//', page)
    figs = _figures(page)
    titles = [f["layout"]["title"]["text"] for f in figs]
    assert titles == ["Equity (growth of 1)", "Drawdown", "Total return per stress window",
                      "Net total return vs cost per unit traded", "Reliability diagram"]
    equity = figs[0]["data"]
    assert [t["name"] for t in equity] == ["baseline", "buy & hold", "enhanced"]
    assert len(equity[0]["x"]) == evaluation["variants"]["baseline"]["days"]
    bh_dd = evaluation["variants"]["baseline"]["metrics"]["buy_and_hold"]["max_drawdown"]
    assert min(figs[1]["data"][1]["y"]) == pytest.approx(bh_dd, abs=1e-6)


def test_verdict_tells_the_skilled_variant_from_the_unskilled_one(evaluation):
    page = render_report(evaluation, plotly_js="")
    verdict = page[page.index('<div class="verdict'):page.index("</div>")]
    assert verdict.startswith('<div class="verdict good"')
    assert "Worth a closer look: enhanced beat" in verdict
    line = r"baseline</b>: accuracy 49\.6% \[[\d.]+%, [\d.]+%\] — below always-up"
    assert re.search(line, verdict)
    assert "deflated Sharpe ratio 0.000 over 2 trials — not significant" in verdict


def test_stress_windows_without_days_are_named_not_tabulated(evaluation):
    ev = json.loads(json.dumps(evaluation))
    for v in ev["variants"].values():
        v["stress"]["bear_2022"] = {"strategy": None, "buy_and_hold": None, "always_long": None}
    page = render_report(ev, plotly_js="")
    assert "No out-of-sample days in: bear_2022." in page
    assert "<td>bear_2022</td>" not in page and "<td>gfc_2008</td>" in page
    for v in ev["variants"].values():
        v["stress"] = {w: {"strategy": None} for w in v["stress"]}
    titles = [f["layout"]["title"]["text"] for f in _figures(render_report(ev, plotly_js=""))]
    assert "Total return per stress window" not in titles
