"""The report's HTML: a self-contained tear sheet, every section present, one colour per line,
under 2 MB with the real plotly.js bundle."""

from __future__ import annotations

import base64
import gzip
import json
import re

import pytest

from finmlops.report import palette, render_report
from finmlops.report.assets import installed_bundle, plotly_bundle

TITLES = ["Equity (growth of 1)", "Drawdown",
          "Cumulative active return (strategy / benchmark - 1)",
          "Rolling Sharpe ratio (annualised), 126 days",
          "Rolling volatility (annualised), 126 days",
          "Rolling beta to buy & hold, 126 days", "Distribution of daily net returns",
          "Total return per stress window", "Net total return vs cost per unit traded",
          "Reliability diagram"]


def test_sections_figures_and_no_external_resources(evaluation, figures_of):
    page = render_report(evaluation, plotly_js="/*plotly*/")
    assert page.index('id="verdict"') < page.index("Performance net of costs")
    for title in ("Provenance", "Active return", "Alpha and beta", "Monthly and yearly returns",
                  "Rolling statistics", "Worst drawdowns", "Return distribution and tail risk",
                  "Stress windows", "Cost sensitivity", "Accuracy and calibration",
                  "Forecast tests on the same days", "Trials and overfitting", "Glossary",
                  "Notes"):
        assert title in page, title
    for term in ("DSR", "PSR", "MinTRL", "PBO", "SRM", "Confidence sequence", "Alpha, beta",
                 "IR (information ratio)"):
        assert f"<dt>{term}" in page, term
    assert "A/B experiment" not in page
    assert not re.search(r'(src|href)=["\']?(https?:)?//', page)
    # plotly.js is inlined once, compressed
    blob = re.search(r'id="plotly-gz">(.*?)</script>', page).group(1)
    assert gzip.decompress(base64.b64decode(blob)) == b"/*plotly*/"
    figs = figures_of(page)
    assert [f["layout"]["title"]["text"] for f in figs] == TITLES
    equity = figs[0]["data"]
    assert [t["name"] for t in equity] == ["baseline", "buy & hold", "enhanced"]
    assert len(equity[0]["x"]) == evaluation["variants"]["baseline"]["days"]
    bh_dd = evaluation["variants"]["baseline"]["metrics"]["buy_and_hold"]["max_drawdown"]
    assert min(figs[1]["data"][1]["y"]) == pytest.approx(bh_dd, abs=1e-3)


def test_one_colour_per_line_in_every_chart(evaluation, figures_of):
    figs = figures_of(render_report(evaluation, plotly_js=""))
    seen: dict[str, set[str]] = {}
    for f in figs:
        for t in f["data"]:
            c = (t.get("line") or {}).get("color") or (t.get("marker") or {}).get("color")
            name = t["name"].split(" vs ")[0]
            if c and name in ("baseline", "enhanced", "buy & hold"):
                seen.setdefault(name, set()).add(c)
    assert seen == {"baseline": {palette.color("baseline")},
                    "enhanced": {palette.color("enhanced")},
                    "buy & hold": {palette.color("buy_and_hold")}}
    assert len({palette.color(n) for n in ("baseline", "enhanced", "buy_and_hold")}) == 3


def test_calendar_heatmap_and_drawdown_table(evaluation):
    page = render_report(evaluation, plotly_js="")
    cal = page[page.index("id='calendar'"):page.index("id='rolling'")]
    yearly = evaluation["variants"]["baseline"]["tearsheet"]["calendar"]["strategy"]["yearly"]
    first = yearly[0]
    assert f"<td>{first['year']}</td>" in cal
    assert f">{100 * first['return']:.1f}</td>" in cal
    dd = page[page.index("id='drawdowns'"):page.index("id='distribution'")]
    worst = evaluation["variants"]["baseline"]["tearsheet"]["drawdowns"]["strategy"][0]
    assert f"<td>{worst['peak']}</td><td>{worst['trough']}</td>" in dd
    assert f"<td>{100 * worst['depth']:.1f}%</td>" in dd


def test_provenance_block(evaluation):
    prov = {"generated_at": "2026-05-02 10:00:00 UTC", "dataset_version": "abc123",
            "git_commit": "f" * 40, "config_hash": "0123456789abcdef",
            "models": [{"variant": "baseline", "version": "3", "aliases": ["champion"],
                        "run_id": "r" * 32, "weights_hash": "w" * 64}]}
    page = render_report(evaluation, plotly_js="", provenance=prov)
    block = page[page.index("id='provenance'"):page.index("id='performance'")]
    for text in ("2026-05-02 10:00:00 UTC", "abc123", "f" * 40, "0123456789abcdef", "r" * 32,
                 "champion", "filled at the open of t+1"):
        assert text in block, text


def test_verdict_tells_the_skilled_variant_from_the_unskilled_one(evaluation):
    page = render_report(evaluation, plotly_js="")
    verdict = page[page.index('<div class="verdict'):page.index("</div>")]
    assert verdict.startswith('<div class="verdict good"')
    assert "Worth a closer look: enhanced" in verdict
    assert re.search(r"baseline</b>: active return vs buy-and-hold -[\d.]+% in total", verdict)
    assert "active DSR 0.000 over 2 trials — not significant" in verdict


def test_stress_windows_without_days_are_named_not_tabulated(evaluation, figures_of):
    ev = json.loads(json.dumps(evaluation))
    for v in ev["variants"].values():
        v["stress"]["bear_2022"] = {"strategy": None, "buy_and_hold": None, "always_long": None}
    page = render_report(ev, plotly_js="")
    assert "No out-of-sample days in: bear_2022." in page
    assert "<td>bear_2022</td>" not in page and "<td>gfc_2008</td>" in page
    for v in ev["variants"].values():
        v["stress"] = {w: {"strategy": None} for w in v["stress"]}
    titles = [f["layout"]["title"]["text"] for f in figures_of(render_report(ev, plotly_js=""))]
    assert "Total return per stress window" not in titles


def test_the_report_is_under_2_mb_with_the_real_bundle(evaluation, abtest_full):
    """The size the stage writes: the installed partial bundle (``make venv`` puts it there)
    and two variants over 20 years of days."""
    assert installed_bundle().is_file(), "plotly.js partial bundle missing: run `make venv`"
    bundle = plotly_bundle()
    assert "partial bundle" in bundle.source
    page = render_report(evaluation, abtest_full, plotly_js=bundle.js,
                         plotly_source=bundle.source)
    size = len(page.encode())
    assert size < 2_000_000, size
    assert installed_bundle().stat().st_size > 1_000_000  # inlined compressed, under half
    assert "charts drawn by plotly.js basic partial bundle" in page
