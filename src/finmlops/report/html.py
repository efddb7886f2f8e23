"""One self-contained HTML report, a tear sheet: plotly.js inlined once, each figure as JSON
(long x/y arrays shared through one column table) plus one small script, so the file opens
anywhere with no network. Pure: the evaluation and the A/B summary (their contracts)
in, a string out.

Size: plotly.js and the column table are inlined gzip-compressed (base64) and inflated by
the browser's ``DecompressionStream`` (Chrome 80, Firefox 113, Safari 16.4 and later), which
keeps a 20-year, two-variant report with an A/B replay near 1 MB instead of 5-7 MB.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from collections.abc import Mapping
from typing import Any

from finmlops.contracts import AbtestSummary, EvaluationFile, PerformanceMetrics
from finmlops.evaluation.columns import LINES, METRIC_COLUMNS
from finmlops.files import json_safe
from finmlops.report import palette, tearsheet
from finmlops.report._format import fmt, table
from finmlops.report.abtest import abtest_section
from finmlops.report.glossary import glossary_html
from finmlops.report.verdict import verdict

Figure = dict[str, Any]
LINE_NAMES = LINES
TABLE_METRICS = METRIC_COLUMNS
__all__ = ["LINE_NAMES", "TABLE_METRICS", "fmt", "render_report", "table"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.verdict{padding:1rem 1.2rem;border-radius:6px;margin:1rem 0}
.verdict.good{background:#e8f6ea;border-left:6px solid #2e7d32}
.verdict.bad{background:#fdecea;border-left:6px solid #c62828}
.verdict p.head{font-size:1.15rem;font-weight:600;margin:0 0 .5rem}
.verdict ul{margin:.2rem 0 .6rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{padding:.25rem .55rem;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child,th.l,td.l{text-align:left}
th{background:#f6f6f6}.plot{width:100%;height:420px}.muted{color:#777;font-size:.85rem}
table.heat td{padding:.2rem .4rem;min-width:2.6rem;font-variant-numeric:tabular-nums}
dl.glossary dt{font-weight:600;margin-top:.5rem}dl.glossary dd{margin:0 0 0 1rem}
nav a{margin-right:.8rem;font-size:.85rem}
"""
_NAV = (("provenance", "provenance"), ("performance", "performance"), ("active", "active"),
        ("calendar", "calendar"), ("rolling", "rolling"), ("drawdowns", "drawdowns"),
        ("distribution", "distribution"), ("stress", "stress"), ("costs", "costs"),
        ("accuracy", "forecasts"), ("trials", "trials"), ("abtest", "A/B"),
        ("glossary", "glossary"))


class _Figures:
    """Collects figures; each becomes a div plus a JSON script the page script plots. Long
    arrays (dates, daily series) go once into a shared column table, referenced as ``@i``."""

    def __init__(self) -> None:
        self.items: list[Figure] = []
        self.columns: list[list[Any]] = []
        self._seen: dict[str, str] = {}

    def column(self, values: list[Any]) -> str:
        key = json.dumps(values, allow_nan=False) if len(values) > 50 else ""
        if key and key in self._seen:
            return self._seen[key]
        ref = f"@{len(self.columns)}"
        self.columns.append(json_safe(values))
        if key:
            self._seen[key] = ref
        return ref

    def add(self, data: list[dict[str, Any]], layout: dict[str, Any], height: int = 420) -> str:
        i = len(self.items)
        data = [{**t, **{k: self.column(t[k]) for k in ("x", "y")
                         if isinstance(t.get(k), list) and len(t[k]) > 50}} for t in data]
        base = {"margin": {"t": 40, "r": 20, "b": 45, "l": 60}, "hovermode": "x unified",
                "legend": {"orientation": "h"}}
        self.items.append(json_safe({"data": data, "layout": {**base, **layout}}))
        payload = json.dumps(self.items[-1], allow_nan=False).replace("</", "<\\/")
        return (f'<div class="plot" id="fig{i}" style="height:{height}px"></div>'
                f'<script type="application/json" id="fig{i}-json">{payload}</script>')

    def columns_script(self) -> str:
        payload = json.dumps(self.columns, allow_nan=False, separators=(",", ":"))
        return packed("columns-gz", payload)


def packed(element_id: str, text: str) -> str:
    """``text`` gzip-compressed (deterministic: no timestamp) and base64-encoded in an inert
    script element, for the page script to inflate."""
    data = base64.b64encode(gzip.compress(text.encode(), compresslevel=9, mtime=0)).decode()
    return f'<script type="application/octet-stream" id="{element_id}">{data}</script>'


def _verdict_html(evaluation: EvaluationFile) -> str:
    v = verdict(evaluation)
    items = "".join(
        f"<li><b>{html.escape(p.variant)}</b>: " + "; ".join(html.escape(x) for x in p.lines)
        + "</li>" for p in v.variants)
    return (f'<div class="verdict {"good" if v.worth else "bad"}" id="verdict">'
            f'<p class="head">{html.escape(v.headline)}</p><ul>{items}</ul></div>')


def _metrics_rows(lines: Mapping[str, PerformanceMetrics | None],
                  prefix: list[str]) -> list[list[str]]:
    rows = []
    for key, label in LINE_NAMES.items():
        m = lines.get(key)
        rows.append([*prefix, label, *(fmt(getattr(m, k), kind) if m else "-"
                                       for _, k, kind in TABLE_METRICS)])
    return rows


def _stress(evaluation: EvaluationFile, figs: _Figures) -> str:
    variants, windows = evaluation.variants, evaluation.windows
    headers = ["window", "variant", "line", *(h for h, _, _ in TABLE_METRICS)]
    rows, bars, empty, act_rows = [], [], [], []
    for w in windows:
        per = {v: e.stress[w] for v, e in variants.items()}
        if all(not any(m.values()) for m in per.values()):
            empty.append(w)
            continue
        for v, lines in per.items():
            rows.extend(_metrics_rows(lines, [w, v]))
            a = variants[v].stress_active[w]
            act_rows.append([w, v, fmt(a["buy_and_hold"], "%"),
                             fmt(a["exposure_matched"], "%")])
    for i, (v, e) in enumerate(variants.items()):
        for key, label in LINE_NAMES.items():
            if key not in ("strategy", "buy_and_hold") or (key != "strategy" and i > 0):
                continue
            ys = [e.stress[w][key] for w in windows]
            bars.append({"type": "bar", "name": v if key == "strategy" else label,
                         "marker": {"color": palette.color(v if key == "strategy" else key)},
                         "x": list(windows), "y": [m.total_return if m else None
                                                   for m in ys]})
    spans = ", ".join(f"{k} {w.start} to {w.end}" for k, w in windows.items())
    none = (f" No out-of-sample days in: {', '.join(empty)}." if empty else "")
    head = (f"<h2 id='stress'>Stress windows</h2><p class='muted'>{html.escape(spans)}. "
            f"Totals are compounded inside each window.{html.escape(none)}</p>")
    if not rows:
        return head
    return (head + table(headers, rows)
            + "<h3>Active return inside each window</h3>"
            + table(["window", "variant", "vs buy & hold", "vs exposure-matched"], act_rows)
            + figs.add(bars, {"title": {"text": "Total return per stress window"},
                              "barmode": "group", "yaxis": {"tickformat": ".0%"},
                              "hovermode": "closest"}, 340))


def _costs(evaluation: EvaluationFile, figs: _Figures) -> str:
    variants = evaluation.variants
    traces: list[dict[str, Any]] = []
    rows: list[list[str]] = []
    for v, e in variants.items():
        sweep = e.cost_sweep
        traces.append({"type": "scatter", "mode": "lines+markers", "name": v,
                       "line": palette.line(v), "marker": {"color": palette.color(v)},
                       "x": [r.cost_bps for r in sweep],
                       "y": [r.total_return for r in sweep]})
        for r in sweep:
            rows.append([v, fmt(r.cost_bps, "g"), fmt(r.total_return, "%"),
                         fmt(r.annual_return, "%"), fmt(r.sharpe),
                         fmt(r.max_drawdown, "%"), fmt(r.cost_drag, "%"), fmt(r.dsr)])
    first = next(iter(variants.values()), None)
    sweeps = [r.cost_bps for e in variants.values() for r in e.cost_sweep]
    if first is not None and sweeps:
        bh = first.metrics["buy_and_hold"].total_return
        traces.append({"type": "scatter", "mode": "lines", "name": LINE_NAMES["buy_and_hold"],
                       "x": [min(sweeps), max(sweeps)], "y": [bh, bh],
                       "line": palette.line("buy_and_hold")})
    be = []
    for v, e in variants.items():
        parts = []
        for b, stats in (("buy_and_hold", e.relative.buy_and_hold),
                         ("exposure_matched", e.relative.exposure_matched)):
            x = stats.break_even_bps
            parts.append(f"vs {LINE_NAMES[b]} " + ("none (active return negative at zero "
                                                   "cost)" if x is None else f"{x:.1f} bps"))
        be.append(f"{v}: " + ", ".join(parts))
    return ("<h2 id='costs'>Cost sensitivity</h2><p>Break-even one-way cost (mean active "
            f"return zero): {html.escape('; '.join(be))}</p>"
            + figs.add(traces, {"title": {"text": "Net total return vs cost per unit traded"},
                                "xaxis": {"title": {"text": "bps"}},
                                "yaxis": {"tickformat": ".0%"}, "hovermode": "closest"}, 360)
            + table(["variant", "bps", "total", "annual", "Sharpe", "max DD", "cost/yr", "DSR"],
                    rows))


def _direction(evaluation: EvaluationFile, figs: _Figures) -> str:
    rows, traces = [], [{"type": "scatter", "mode": "lines", "name": "perfect calibration",
                         "x": [0, 1], "y": [0, 1], "line": {"dash": "dash",
                                                            "color": palette.NEUTRAL}}]
    for v, e in evaluation.variants.items():
        d = e.direction
        lo, hi = d.accuracy_ci
        rows.append([v, fmt(d.n, "d"), fmt(d.accuracy, "%"),
                     f"[{fmt(lo, '%')}, {fmt(hi, '%')}]", fmt(d.always_up, "%"),
                     fmt(d.yesterday, "%"), fmt(d.brier, "g"), fmt(d.log_loss, "g")])
        rel = d.reliability
        traces.append({"type": "scatter", "mode": "lines+markers", "name": v,
                       "line": palette.line(v), "marker": {"color": palette.color(v)},
                       "x": [b.mean_predicted for b in rel], "y": [b.observed for b in rel],
                       "text": [f"n={b.count}" for b in rel]})
    return ("<h2 id='accuracy'>Accuracy and calibration</h2><p class='muted'>Naive baselines: "
            "always-up predicts a rise every day; yesterday repeats the previous day's "
            "direction.</p>"
            + table(["variant", "n", "accuracy", "95% CI", "always-up", "yesterday", "Brier",
                     "log loss"], rows)
            + tearsheet.forecasts(evaluation)
            + figs.add(traces, {"title": {"text": "Reliability diagram"},
                                "xaxis": {"title": {"text": "mean predicted P(up)"},
                                          "range": [0, 1]},
                                "yaxis": {"title": {"text": "observed frequency of up"},
                                          "range": [0, 1]}, "hovermode": "closest"}, 400))


def render_report(evaluation: EvaluationFile, abtest: AbtestSummary | None = None, *,
                  title: str = "finmlops report", context: Mapping[str, Any] | None = None,
                  provenance: Mapping[str, Any] | None = None,
                  plotly_js: str | None = None, plotly_source: str = "") -> str:
    """The whole report as one HTML string; ``plotly_js`` defaults to
    :func:`finmlops.report.assets.plotly_bundle`'s choice."""
    if plotly_js is None:
        from finmlops.report.assets import plotly_bundle

        bundle = plotly_bundle()
        plotly_js, plotly_source = bundle.js, bundle.source
    figs = _Figures()
    add, col = figs.add, figs.column
    info = {**(provenance or {}), "context": context or {}}
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in evaluation.notes)
    nav = "".join(f"<a href='#{a}'>{html.escape(t)}</a>" for a, t in _NAV
                  if a != "abtest" or abtest is not None)
    sections = [
        f"<nav>{nav}</nav>",
        _verdict_html(evaluation),
        tearsheet.provenance(info, evaluation),
        tearsheet.performance(evaluation, add, col, TABLE_METRICS),
        tearsheet.active(evaluation, add, col),
        tearsheet.calendar(evaluation),
        tearsheet.rolling(evaluation, add, col),
        tearsheet.drawdowns(evaluation),
        tearsheet.returns_distribution(evaluation, add),
        _stress(evaluation, figs),
        _costs(evaluation, figs),
        _direction(evaluation, figs),
        tearsheet.trials(evaluation, add),
        abtest_section(abtest, add) if abtest is not None else "",
        glossary_html(),
        f"<h2>Notes</h2><ul>{notes}"
        + (f"<li>charts drawn by {html.escape(plotly_source)}</li>" if plotly_source else "")
        + "</ul>",
    ]
    script = (
        "function inflate(id){var b=atob(document.getElementById(id).textContent),"
        "u=new Uint8Array(b.length);for(var i=0;i<b.length;i++)u[i]=b.charCodeAt(i);"
        "return new Response(new Blob([u]).stream().pipeThrough("
        "new DecompressionStream('gzip'))).text();}"
        "Promise.all([inflate('plotly-gz'),inflate('columns-gz')]).then(function(r){"
        "var s=document.createElement('script');s.textContent=r[0];document.head.appendChild(s);"
        "var cols=JSON.parse(r[1]);"
        "function col(v){return typeof v==='string'&&v.charAt(0)==='@'?cols[+v.slice(1)]:v;}"
        "document.querySelectorAll('div.plot').forEach(function(div){"
        "var f=JSON.parse(document.getElementById(div.id+'-json').textContent);"
        "f.data.forEach(function(t){t.x=col(t.x);t.y=col(t.y);});"
        "Plotly.newPlot(div,f.data,f.layout,{responsive:true,displaylogo:false});});});"
    )
    body = "".join(sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>" + body + packed("plotly-gz", plotly_js)
        + figs.columns_script() + f"<script>{script}</script></body></html>"
    )
