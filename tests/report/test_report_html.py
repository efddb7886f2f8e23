"""The report's HTML: a self-contained tear sheet, every section present, one colour per line,
under 2 MB with the real plotly.js bundle."""

from __future__ import annotations

import base64
import gzip
import re

import pytest
from page_support import Page, figures, number

from finmlops.contracts import EvaluationFile
from finmlops.report import palette, render_report
from finmlops.report.assets import installed_bundle, plotly_bundle
from finmlops.report.html import LINE_NAMES
from finmlops.report.tearsheet import MONTHS

TITLES = ["Equity (growth of 1)", "Drawdown",
          "Cumulative active return (strategy / benchmark - 1)",
          "Rolling Sharpe ratio (annualised), 126 days",
          "Rolling volatility (annualised), 126 days",
          "Rolling beta to buy & hold, 126 days", "Distribution of daily net returns",
          "Total return per stress window", "Net total return vs cost per unit traded",
          "Reliability diagram"]
SECTIONS = ["Provenance", "Performance net of costs", "Active return",
            "Monthly and yearly returns", "Rolling statistics", "Worst drawdowns",
            "Return distribution and tail risk", "Stress windows", "Cost sensitivity",
            "Accuracy and calibration", "Trials and overfitting", "Glossary", "Notes"]


def test_sections_figures_and_no_external_resources(evaluation):
    html = render_report(evaluation, plotly_js="/*plotly*/")
    page = Page(html)
    assert page.headings(2) == SECTIONS  # no A/B section without an A/B result
    for sub in ("Alpha and beta against buy & hold", "Forecast tests on the same days"):
        assert sub in page.headings(3)
    verdict = page.elements.index(page.by_id("verdict"))
    assert verdict < page.elements.index(page.section("Performance net of costs").heading)
    terms = [dt.text for dt in page.root.find("dl", class_="glossary").find_all("dt")]
    for term in ("DSR", "PSR", "MinTRL", "PBO", "SRM", "Confidence sequence", "Alpha, beta",
                 "IR (information ratio)"):
        assert term in terms
    links = [e.attrs[a] for e in page.elements for a in ("src", "href") if a in e.attrs]
    assert links and all(link.startswith("#") for link in links)  # only in-page anchors
    # plotly.js is inlined once, compressed
    assert gzip.decompress(base64.b64decode(page.by_id("plotly-gz").raw)) == b"/*plotly*/"
    figs = figures(html)
    assert [f["layout"]["title"]["text"] for f in figs] == TITLES
    equity = figs[0]["data"]
    assert [t["name"] for t in equity] == ["baseline", "buy & hold", "enhanced"]
    assert len(equity[0]["x"]) == evaluation.variants["baseline"].days
    bh_dd = evaluation.variants["baseline"].metrics["buy_and_hold"].max_drawdown
    assert min(figs[1]["data"][1]["y"]) == pytest.approx(bh_dd, abs=1e-3)


def test_one_colour_per_line_in_every_chart(evaluation):
    figs = figures(render_report(evaluation, plotly_js=""))
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
    page = Page(render_report(evaluation, plotly_js=""))
    baseline = evaluation.variants["baseline"].tearsheet
    cal = page.section("baseline", within=page.section("Monthly and yearly returns"))
    table = cal.table("heat")
    assert table.headers == ["year", *MONTHS, "year", "B&H", "active"]
    calendar = baseline["calendar"]
    years = {r["year"]: r["return"] for r in calendar["strategy"]["yearly"]}
    bh = {r["year"]: r["return"] for r in calendar["buy_and_hold"]["yearly"]}
    assert table.column("year") == [str(y) for y in sorted(years)]
    first = min(years)
    row = table.row(str(first))
    assert number(row["year #2"]) == pytest.approx(100 * years[first], abs=0.05)
    assert number(row["B&H"]) == pytest.approx(100 * bh[first], abs=0.05)
    assert number(row["active"]) == pytest.approx(
        100 * ((1 + years[first]) / (1 + bh[first]) - 1), abs=0.05)
    month = next(r for r in calendar["strategy"]["monthly"] if r["year"] == first)
    assert number(row[MONTHS[month["month"] - 1]]) == pytest.approx(100 * month["return"],
                                                                    abs=0.05)
    worst = baseline["drawdowns"]["strategy"][0]
    dd = page.section("Worst drawdowns").table().row("baseline", "1")
    assert (dd["peak"], dd["trough"]) == (worst["peak"], worst["trough"])
    assert dd["recovery"] == (worst["recovery"] or "not recovered")
    assert number(dd["depth"]) == pytest.approx(100 * worst["depth"], abs=0.05)
    assert number(dd["days"]) == worst["days"]


def test_provenance_block(evaluation):
    prov = {"generated_at": "2026-05-02 10:00:00 UTC", "dataset_version": "abc123",
            "git_commit": "f" * 40, "config_hash": "0123456789abcdef",
            "models": [{"variant": "baseline", "version": "3", "aliases": ["champion"],
                        "run_id": "r" * 32, "weights_hash": "w" * 64}]}
    page = Page(render_report(evaluation, plotly_js="", provenance=prov))
    table, models = page.section("Provenance").tables()
    facts = dict(table.rows)
    assert number(facts.pop("trials (DSR)")) == evaluation.trials.n
    assert facts == {"generated at": prov["generated_at"],
                     "dataset version": prov["dataset_version"],
                     "git commit": prov["git_commit"], "config hash": prov["config_hash"],
                     "execution": evaluation.execution.description}
    assert models.row("baseline") == {"variant": "baseline", "model version": "3",
                                      "aliases": "champion", "MLflow run id": "r" * 32,
                                      "weights": "w" * 16}


def test_verdict_tells_the_skilled_variant_from_the_unskilled_one(evaluation):
    verdict = Page(render_report(evaluation, plotly_js="")).by_id("verdict")
    assert "good" in verdict.classes
    assert verdict.find("p").text.startswith("Worth a closer look: enhanced")
    lines = {li.find("b").text: li.text for li in verdict.find_all("li")}
    assert list(lines) == list(evaluation.variants)
    active = evaluation.variants["baseline"].relative.buy_and_hold
    found = re.search(r"active return vs buy-and-hold (-?[\d.]+)% in total, .* active DSR "
                      r"([\d.]+) over (\d+) trials — (not significant|significant)",
                      lines["baseline"])
    assert found is not None, lines["baseline"]
    total, dsr, trials, outcome = found.groups()
    assert float(total) == pytest.approx(100 * active.active_total, abs=0.05)
    assert float(dsr) == pytest.approx(active.dsr, abs=5e-4)
    assert int(trials) == evaluation.trials.n
    assert outcome == "not significant"  # the variant without skill


def test_stress_windows_without_days_are_named_not_tabulated(evaluation):
    data = evaluation.to_json()
    for v in data["variants"].values():
        v["stress"]["bear_2022"] = dict.fromkeys(LINE_NAMES)
    ev = EvaluationFile.model_validate(data)
    stress = Page(render_report(ev, plotly_js="")).section("Stress windows")
    assert "No out-of-sample days in: bear_2022." in stress.text
    windows = set(stress.tables()[0].column("window"))
    assert "bear_2022" not in windows and "gfc_2008" in windows
    for v in data["variants"].values():
        v["stress"] = {w: dict.fromkeys(LINE_NAMES) for w in v["stress"]}
    ev = EvaluationFile.model_validate(data)
    titles = [f["layout"]["title"]["text"] for f in figures(render_report(ev, plotly_js=""))]
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
