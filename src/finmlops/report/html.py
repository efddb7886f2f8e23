"""One self-contained HTML report: plotly.js inlined once, each figure as JSON plus one
small script, so the file opens anywhere with no network. Pure: dicts in, a string out."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from finmlops.report.abtest import abtest_section
from finmlops.report.verdict import verdict

Figure = dict[str, Any]
LINE_NAMES = {"strategy": "strategy", "buy_and_hold": "buy & hold", "always_long": "always long"}
TABLE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("days", "days", "d"), ("total", "total_return", "%"), ("annual", "annual_return", "%"),
    ("vol", "volatility", "%"), ("Sharpe", "sharpe", "f"), ("Sortino", "sortino", "f"),
    ("Calmar", "calmar", "f"), ("max DD", "max_drawdown", "%"),
    ("DD days", "max_drawdown_days", "d"), ("hit", "hit_rate", "%"),
    ("exposure", "exposure", "%"), ("turnover/yr", "turnover", "f1"),
    ("cost/yr", "cost_drag", "%"), ("PSR", "psr", "f"), ("MinTRL days", "min_trl", "d"),
    ("DSR", "dsr", "f"),
)

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
"""


def fmt(value: Any, kind: str = "f") -> str:
    """A cell: percentages with one decimal, ratios with two, ``-`` when missing."""
    if value is None or isinstance(value, str):
        return "-" if value is None else value
    if kind == "d":
        return f"{value:,.0f}"
    if kind == "%":
        return f"{100 * value:.1f}%"
    if kind == "f1":
        return f"{value:.1f}"
    if kind == "g":
        return f"{value:.4g}"
    return f"{value:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table of already formatted cells (escaped here)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Figures:
    """Collects figures; each becomes a div plus a JSON script the page script plots."""

    def __init__(self) -> None:
        self.items: list[Figure] = []

    def add(self, data: list[dict[str, Any]], layout: dict[str, Any], height: int = 420) -> str:
        i = len(self.items)
        base = {"margin": {"t": 40, "r": 20, "b": 45, "l": 60}, "hovermode": "x unified",
                "legend": {"orientation": "h"}}
        self.items.append(_finite({"data": data, "layout": {**base, **layout}}))
        payload = json.dumps(self.items[-1], allow_nan=False).replace("</", "<\\/")
        return (f'<div class="plot" id="fig{i}" style="height:{height}px"></div>'
                f'<script type="application/json" id="fig{i}-json">{payload}</script>')


def _finite(value: Any) -> Any:
    """NaN/inf become null: JSON.parse rejects them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _drawdown(equity: Sequence[float | None]) -> list[float | None]:
    peak, out = 1.0, list[float | None]()
    for x in equity:
        if x is None:
            out.append(None)
            continue
        peak = max(peak, x)
        out.append(x / peak - 1.0)
    return out


def _verdict_html(evaluation: Mapping[str, Any]) -> str:
    v = verdict(evaluation)
    items = "".join(
        f"<li><b>{html.escape(p.variant)}</b>: " + "; ".join(html.escape(x) for x in p.lines)
        + "</li>" for p in v.variants)
    return (f'<div class="verdict {"good" if v.worth else "bad"}" id="verdict">'
            f'<p class="head">{html.escape(v.headline)}</p><ul>{items}</ul></div>')


def _metrics_rows(lines: Mapping[str, Any], prefix: Sequence[str]) -> list[list[str]]:
    rows = []
    for key, label in LINE_NAMES.items():
        m = lines.get(key)
        rows.append([*prefix, label, *(fmt(m.get(k), kind) if m else "-"
                                       for _, k, kind in TABLE_METRICS)])
    return rows


def _performance(evaluation: Mapping[str, Any], figs: _Figures) -> str:
    variants: Mapping[str, Any] = evaluation.get("variants") or {}
    headers = ["variant", "line", *(h for h, _, _ in TABLE_METRICS)]
    rows = [r for v, e in variants.items() for r in _metrics_rows(e.get("metrics") or {}, [v])]
    eq, dd = [], []
    for i, (v, e) in enumerate(variants.items()):
        s = e.get("series") or {}
        # buy & hold once (from the first variant); always long differs from it by one entry
        # cost, so it is in the tables but not drawn on top of it
        for key in ("strategy", "buy_and_hold"):
            if key not in s or (key != "strategy" and i > 0):
                continue
            name = v if key == "strategy" else LINE_NAMES[key]
            style = {} if key == "strategy" else {"dash": "dash", "color": "#555"}
            eq.append({"type": "scatter", "mode": "lines", "name": name, "x": s["dates"],
                       "y": s[key], "line": style})
            dd.append({"type": "scatter", "mode": "lines", "name": name, "x": s["dates"],
                       "y": _drawdown(s[key]), "line": style})
    cost = evaluation.get("cost_bps")
    return (
        f"<h2>Performance net of costs</h2><p class='muted'>Costs: {fmt(cost, 'g')} bps per unit "
        "of position change (commission + half-spread + slippage), plus market impact if "
        "configured. Buy &amp; hold pays no costs; always long pays one entry.</p>"
        + table(headers, rows)
        + figs.add(eq, {"title": {"text": "Equity (growth of 1)"}, "yaxis": {"type": "log"}})
        + figs.add(dd, {"title": {"text": "Drawdown"}, "yaxis": {"tickformat": ".0%"}}, 320)
    )


def _stress(evaluation: Mapping[str, Any], figs: _Figures) -> str:
    variants: Mapping[str, Any] = evaluation.get("variants") or {}
    windows: Mapping[str, Any] = evaluation.get("windows") or {}
    headers = ["window", "variant", "line", *(h for h, _, _ in TABLE_METRICS)]
    rows, bars = [], []
    empty = []
    for w in windows:
        per = {v: (e.get("stress") or {}).get(w) or {} for v, e in variants.items()}
        if not any(per.values()) or all(not any(m.values()) for m in per.values()):
            empty.append(w)
            continue
        for v, lines in per.items():
            rows.extend(_metrics_rows(lines, [w, v]))
    for i, (v, e) in enumerate(variants.items()):
        for key, label in LINE_NAMES.items():
            if key != "strategy" and i > 0:
                continue
            ys = [((e.get("stress") or {}).get(w) or {}).get(key) for w in windows]
            bars.append({"type": "bar", "name": v if key == "strategy" else label,
                         "x": list(windows), "y": [m.get("total_return") if m else None
                                                   for m in ys]})
    spans = ", ".join(f"{k} {w.get('start')} to {w.get('end')}" for k, w in windows.items())
    none = (f" No out-of-sample days in: {', '.join(empty)}." if empty else "")
    head = (f"<h2>Stress windows</h2><p class='muted'>{html.escape(spans)}."
            f"{html.escape(none)}</p>")
    if not rows:
        return head
    return head + table(headers, rows) + figs.add(
        bars, {"title": {"text": "Total return per stress window"}, "barmode": "group",
               "yaxis": {"tickformat": ".0%"}, "hovermode": "closest"}, 340)


def _costs(evaluation: Mapping[str, Any], figs: _Figures) -> str:
    variants: Mapping[str, Any] = evaluation.get("variants") or {}
    traces: list[dict[str, Any]] = []
    rows: list[list[str]] = []
    for v, e in variants.items():
        sweep = e.get("cost_sweep") or []
        traces.append({"type": "scatter", "mode": "lines+markers", "name": v,
                       "x": [r["cost_bps"] for r in sweep],
                       "y": [r["total_return"] for r in sweep]})
        bh = ((e.get("metrics") or {}).get("buy_and_hold") or {}).get("total_return")
        if bh is not None and sweep:
            traces.append({"type": "scatter", "mode": "lines", "name": f"buy & hold ({v} days)",
                           "x": [sweep[0]["cost_bps"], sweep[-1]["cost_bps"]], "y": [bh, bh],
                           "line": {"dash": "dash"}})
        for r in sweep:
            rows.append([v, fmt(r["cost_bps"], "g"), fmt(r.get("total_return"), "%"),
                         fmt(r.get("annual_return"), "%"), fmt(r.get("sharpe")),
                         fmt(r.get("max_drawdown"), "%"), fmt(r.get("cost_drag"), "%"),
                         fmt(r.get("dsr"))])
    be = "; ".join(f"{v}: " + ("none (trails buy & hold at zero cost)" if e.get("break_even_bps")
                               is None else f"{e['break_even_bps']:.1f} bps")
                   for v, e in variants.items())
    return ("<h2>Cost sensitivity</h2><p>Break-even one-way cost against buy &amp; hold: "
            f"{html.escape(be)}</p>"
            + figs.add(traces, {"title": {"text": "Net total return vs cost per unit traded"},
                                "xaxis": {"title": {"text": "bps"}},
                                "yaxis": {"tickformat": ".0%"}, "hovermode": "closest"}, 360)
            + table(["variant", "bps", "total", "annual", "Sharpe", "max DD", "cost/yr", "DSR"],
                    rows))


def _direction(evaluation: Mapping[str, Any], figs: _Figures) -> str:
    variants: Mapping[str, Any] = evaluation.get("variants") or {}
    rows, traces = [], [{"type": "scatter", "mode": "lines", "name": "perfect calibration",
                         "x": [0, 1], "y": [0, 1], "line": {"dash": "dash", "color": "#999"}}]
    for v, e in variants.items():
        d = e.get("direction") or {}
        ci = d.get("accuracy_ci") or [None, None]
        rows.append([v, fmt(d.get("n"), "d"), fmt(d.get("accuracy"), "%"),
                     f"[{fmt(ci[0], '%')}, {fmt(ci[1], '%')}]", fmt(d.get("always_up"), "%"),
                     fmt(d.get("yesterday"), "%"), fmt(d.get("brier"), "g"),
                     fmt(d.get("log_loss"), "g")])
        rel = d.get("reliability") or []
        traces.append({"type": "scatter", "mode": "lines+markers", "name": v,
                       "x": [b["mean_predicted"] for b in rel], "y": [b["observed"] for b in rel],
                       "text": [f"n={b['count']}" for b in rel]})
    return ("<h2>Accuracy and calibration</h2><p class='muted'>Naive baselines: always-up "
            "predicts a rise every day; yesterday repeats the previous day's direction.</p>"
            + table(["variant", "n", "accuracy", "95% CI", "always-up", "yesterday", "Brier",
                     "log loss"], rows)
            + figs.add(traces, {"title": {"text": "Reliability diagram"},
                                "xaxis": {"title": {"text": "mean predicted P(up)"},
                                          "range": [0, 1]},
                                "yaxis": {"title": {"text": "observed frequency of up"},
                                          "range": [0, 1]}, "hovermode": "closest"}, 400))


def render_report(evaluation: Mapping[str, Any], abtest: Mapping[str, Any] | None = None, *,
                  title: str = "finmlops report", context: Mapping[str, Any] | None = None,
                  plotly_js: str | None = None) -> str:
    """The whole report as one HTML string; ``plotly_js`` defaults to plotly's bundled copy."""
    if plotly_js is None:
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    figs = _Figures()
    ctx_rows = [[k, str(v)] for k, v in (context or {}).items()]
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in evaluation.get("notes") or [])
    trials = evaluation.get("trials") or {}
    sections = [
        _verdict_html(evaluation),
        table(["", ""], ctx_rows) if ctx_rows else "",
        _performance(evaluation, figs),
        _stress(evaluation, figs),
        _costs(evaluation, figs),
        _direction(evaluation, figs),
        abtest_section(abtest, figs.add) if abtest is not None else "",
        "<h2>Notes</h2><ul>"
        f"<li>DSR deflated by {html.escape(str(trials.get('n')))} trials (source: "
        f"{html.escape(str(trials.get('source')))}; SR variance: "
        f"{html.escape(str(trials.get('sr_variance_source')))})</li>{notes}</ul>",
    ]
    script = (
        "document.querySelectorAll('div.plot').forEach(function(div){"
        "var f=JSON.parse(document.getElementById(div.id+'-json').textContent);"
        "Plotly.newPlot(div,f.data,f.layout,{responsive:true,displaylogo:false});});"
    )
    inline_js = plotly_js.replace("</script", "<\\/script")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script>{inline_js}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>" + "".join(sections)
        + f"<script>{script}</script></body></html>"
    )
