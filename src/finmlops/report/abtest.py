"""The report's A/B section, drawn from the abtest stage's ``abtest.json``.

A headline (both decisions, days to decide, how much narrower the paired confidence sequence
is), traffic against the configured split, per-arm hit rate and net P&L over time with 95%
bands, the sequential tests' estimate and confidence sequence against their decision
boundaries (split and paired on one y-scale), and the stress windows. Mean returns are in bps,
cumulative P&L and rates in %. Every part is optional: older or partial files (no paired
test when shadow scoring was off, no per-arm timelines) just leave that part out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from finmlops.report import palette

AddFigure = Callable[[list[dict[str, Any]], dict[str, Any], int], str]

Z95 = 1.959963984540054
BPS = 1e4
ACTION_COLORS = {"promote": "#2e7d32", "rollback": "#c62828", "continue": "#555",
                 "invalid": "#ef6c00"}


# --- small safe accessors ------------------------------------------------------------------

def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _nums(v: Any, length: int | None = None) -> list[float | None] | None:
    """A list of numbers (None kept), or None if ``v`` is not one (of ``length``)."""
    if not isinstance(v, list) or (length is not None and len(v) != length):
        return None
    out = [_num(x) for x in v]
    if any(x is None and y is not None for x, y in zip(out, v, strict=True)):
        return None
    return out


def _days(t: Any) -> list[str] | None:
    days = _get(t, "days")
    if isinstance(days, list) and days and all(isinstance(d, str) for d in days):
        return days
    return None


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _pct(v: Any, digits: int = 1) -> str:
    x = _num(v)
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def _bps(v: Any) -> str:
    x = _num(v)
    return "-" if x is None else f"{BPS * x:.1f} bps"


def _p(v: Any) -> str:
    x = _num(v)
    return "-" if x is None else f"{x:.3g}"


def _ci(v: Any, one: Callable[[Any], str]) -> str:
    if isinstance(v, Sequence) and not isinstance(v, str) and len(v) == 2:
        return f"[{one(v[0])}, {one(v[1])}]"
    return "-"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    attr = f" class='{cls}'" if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _round(xs: Sequence[float | None], digits: int = 4) -> list[float | None]:
    return [None if x is None else round(x, digits) for x in xs]


# --- what the file says ----------------------------------------------------------------------

def _metric(ab: Mapping[str, Any]) -> str:
    m = ab.get("metric") or _get(ab, "decision", "numbers", "metric")
    return str(m) if m else "net_return"


def _unit(metric: str) -> tuple[float, str]:
    """Scale and unit of the tested difference: bps of net return, or points of hit rate."""
    return (100.0, "pp") if metric == "hit_rate" else (BPS, "bps")


def _decision(d: Any) -> tuple[str | None, str | None]:
    if isinstance(d, Mapping):
        action, reason = d.get("action") or d.get("decision"), d.get("reason")
        return (str(action) if action else None, str(reason) if reason else None)
    if isinstance(d, str):
        return d, None
    return None, None


def _arms(ab: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    arms = ab.get("arms") or _get(ab, "decision", "numbers", "arms")
    if isinstance(arms, list):
        arms = {str(a.get("name") or a.get("arm") or i): a for i, a in enumerate(arms)
                if isinstance(a, Mapping)}
    if not isinstance(arms, Mapping):
        return {}
    return {str(k): v for k, v in arms.items() if isinstance(v, Mapping)}


def _last_cs(ab: Mapping[str, Any], view: str) -> tuple[float, float] | None:
    """The confidence sequence at the end: the decision's, else the timeline's last finite."""
    key = "decision" if view == "split" else "paired_decision"
    seq = _get(ab, key, "numbers", "sequential")
    lo, hi = _num(_get(seq, "lower")), _num(_get(seq, "upper"))
    if lo is not None and hi is not None:
        return lo, hi
    t = _get(ab, "timeline", view)
    los, his = _nums(_get(t, "lower")), _nums(_get(t, "upper"))
    if los and his and len(los) == len(his):
        for a, b in zip(reversed(los), reversed(his), strict=True):
            if a is not None and b is not None:
                return a, b
    return None


def _reached(ab: Mapping[str, Any], view: str) -> str:
    t = _get(ab, "timeline", view)
    days = _days(t) or []
    k = _get(ab, "days_to_decision", view)
    if k is None:
        k = _get(t, "days_to_decision")
    if isinstance(k, int) and not isinstance(k, bool) and k > 0:
        when = f" (on {days[k - 1]})" if k <= len(days) else ""
        return f"Decision reached after {k} days{when}"
    if days:
        return f"Decision not reached in {len(days)} days"
    return "no day-by-day history"


# --- parts -----------------------------------------------------------------------------------

def _headline(ab: Mapping[str, Any], scale: float, unit: str) -> str:
    lines = []
    chal, ref = ab.get("challenger"), ab.get("reference")
    for view, key, label in (("split", "decision", "Split test (served traffic)"),
                             ("paired", "paired_decision", "Paired test (shadow scoring)")):
        action, reason = _decision(ab.get(key))
        if action is None and reason is None:
            if view == "paired":
                lines.append(f"<p><b>{label}:</b> not run (no arm was shadow-scored).</p>")
            continue
        color = ACTION_COLORS.get(action or "", "#222")
        lines.append(
            f"<p id='abtest-{view}'><b>{label}: <span style='color:{color}'>"
            f"{_esc((action or '-').upper())}</span></b>"
            + (f" — {_esc(reason)}" if reason else "")
            + f". <i>{_esc(_reached(ab, view))}.</i></p>")
    split_cs, paired_cs = _last_cs(ab, "split"), _last_cs(ab, "paired")
    if split_cs and paired_cs and paired_cs[1] > paired_cs[0]:
        ws, wp = split_cs[1] - split_cs[0], paired_cs[1] - paired_cs[0]
        lines.append(
            f"<p id='abtest-width'>At the end the paired 95% confidence sequence is "
            f"<b>{ws / wp:.1f}&times; narrower</b> than the split one (width {wp * scale:.1f} vs "
            f"{ws * scale:.1f} {unit}).</p>")
    facts = [f"challenger <b>{_esc(chal)}</b> vs reference <b>{_esc(ref)}</b>"
             if chal and ref else "",
             f"metric {_esc(_metric(ab))}",
             f"alpha {_esc(ab['alpha'])}" if _num(ab.get("alpha")) is not None else "",
             f"{_esc(ab['days'])} days of outcomes" if isinstance(ab.get("days"), int) else ""]
    minfx = _num(ab.get("min_effect"))
    if minfx is None:
        minfx = _num(_get(ab, "decision", "numbers", "min_effect"))
    if minfx is not None:
        facts.append(f"min effect {minfx * scale:.1f} {unit}")
    fact_line = ", ".join(f for f in facts if f)
    if fact_line:
        lines.append(f"<p class='muted'>{fact_line}.</p>")
    if not lines:
        return ""
    split_action = _decision(ab.get("decision"))[0]
    border = ACTION_COLORS.get(split_action or "", "#999")
    return (f"<div id='abtest-headline' style='padding:.8rem 1.2rem;border-radius:6px;"
            f"background:#f4f6f8;border-left:6px solid {border};margin:1rem 0'>"
            + "".join(lines) + "</div>")


def _traffic(ab: Mapping[str, Any], arms: Mapping[str, Mapping[str, Any]]) -> str:
    keys = ("served", "share", "target_share")
    if not any(a.get(k) is not None for a in arms.values() for k in keys):
        return ""
    chal, ref = ab.get("challenger"), ab.get("reference")
    rows = []
    for name, a in arms.items():
        role = "challenger" if name == chal else "reference" if name == ref else ""
        share, target = _num(a.get("share")), _num(a.get("target_share"))
        diff = (f"{100 * (share - target):+.2f} pt" if share is not None and target is not None
                else "-")
        served = _num(a.get("served"))
        rows.append([name, role, _pct(target), f"{served:,.0f}" if served is not None else "-",
                     _pct(share, 2), diff])
    srm = _get(ab, "decision", "numbers", "srm")
    p = _num(_get(srm, "p_value"))
    if p is None:
        tail = _nums(_get(ab, "timeline", "split", "srm_p"))
        p = tail[-1] if tail else None
    note = ""
    if p is not None:
        flag = (" — <b style='color:#c62828'>sample ratio mismatch: the split is not what was "
                "configured, decisions are invalid</b>" if _get(srm, "mismatch") else
                " — traffic matches the configured split")
        note = f"<p>Sample-ratio (SRM) always-valid test p = {_p(p)}{flag}.</p>"
    return ("<h3>Traffic</h3>"
            + _table(["arm", "role", "target share", "served", "served share", "off target"],
                     rows, "abtest-traffic") + note)


def _results(arms: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for name, a in arms.items():
        n, mean = _num(a.get("n")), _num(a.get("mean_return"))
        total = n * mean if n is not None and mean is not None else None
        rows.append([name, f"{n:,.0f}" if n is not None else "-", _pct(a.get("hit_rate")),
                     _ci(a.get("hit_rate_ci"), _pct), _bps(mean),
                     _ci(a.get("mean_return_ci"), _bps), _pct(total)])
    if not rows:
        return ""
    return ("<h3>Served outcomes per arm</h3>"
            + _table(["arm", "outcomes", "hit rate", "95% CI", "mean net return", "95% CI",
                      "total net P&L"], rows, "abtest-arms"))


def _band(x: list[str], mid: list[float | None], lo: list[float | None],
          hi: list[float | None], name: str, i: int, group: str) -> list[dict[str, Any]]:
    """Three traces: the band's lower edge, its upper edge filled down to it, the line."""
    color, fill = palette.color(name), palette.fill(name)  # one colour per arm, report-wide
    edge = {"type": "scatter", "mode": "lines", "x": x, "line": {"width": 0, "color": color},
            "legendgroup": group, "showlegend": False, "hoverinfo": "skip"}
    return [{**edge, "y": _round(lo), "name": f"{name} lower"},
            {**edge, "y": _round(hi), "name": f"{name} 95% band", "fill": "tonexty",
             "fillcolor": fill},
            {"type": "scatter", "mode": "lines", "x": x, "y": _round(mid), "name": name,
             "legendgroup": group, "line": {"color": color, "width": 2}}]


def _arm_series(t: Any) -> tuple[list[str], dict[str, dict[str, list[float | None]]]] | None:
    days = _days(t)
    arms = _get(t, "arms")
    if days is None or not isinstance(arms, Mapping):
        return None
    out = {}
    for name, a in arms.items():
        cols = {k: _nums(_get(a, k), len(days)) for k in ("n", "hits", "sum_return", "sum_sq")}
        if all(v is not None for v in cols.values()):
            out[str(name)] = {k: v for k, v in cols.items() if v is not None}
    return (days, out) if out else None


def _hit_traces(days: list[str], arms: Mapping[str, Mapping[str, list[float | None]]]
                ) -> list[dict[str, Any]]:
    from finmlops.evaluation import wilson_interval

    traces: list[dict[str, Any]] = []
    for i, (name, c) in enumerate(arms.items()):
        mid: list[float | None] = []
        lo: list[float | None] = []
        hi: list[float | None] = []
        for n, h in zip(c["n"], c["hits"], strict=True):
            if not n or h is None:
                mid.append(None)
                lo.append(None)
                hi.append(None)
                continue
            a, b = wilson_interval(int(h), int(n))
            mid.append(100 * h / n)
            lo.append(100 * a)
            hi.append(100 * b)
        traces += _band(days, mid, lo, hi, name, i, f"hit-{name}")
    traces.append({"type": "scatter", "mode": "lines", "x": [days[0], days[-1]], "y": [50, 50],
                   "name": "50% (coin flip)", "hoverinfo": "skip",
                   "line": {"dash": "dot", "color": "#888", "width": 1}})
    return traces


def _pnl_traces(days: list[str], arms: Mapping[str, Mapping[str, list[float | None]]]
                ) -> list[dict[str, Any]]:
    """Cumulative net P&L (sum of net returns, %) with ±1.96·sd·√n around it."""
    traces: list[dict[str, Any]] = []
    for i, (name, c) in enumerate(arms.items()):
        mid: list[float | None] = []
        lo: list[float | None] = []
        hi: list[float | None] = []
        for n, s, q in zip(c["n"], c["sum_return"], c["sum_sq"], strict=True):
            if n is None or s is None or q is None:
                mid.append(None)
                lo.append(None)
                hi.append(None)
                continue
            var = max(q - s * s / n, 0.0) / (n - 1) if n > 1 else 0.0
            half = Z95 * math.sqrt(n * var)
            mid.append(100 * s)
            lo.append(100 * (s - half))
            hi.append(100 * (s + half))
        traces += _band(days, mid, lo, hi, name, i, f"pnl-{name}")
    traces.append({"type": "scatter", "mode": "lines", "x": [days[0], days[-1]], "y": [0, 0],
                   "name": "zero", "hoverinfo": "skip", "showlegend": False,
                   "line": {"dash": "dot", "color": "#888", "width": 1}})
    return traces


def _layout(title: str, ytitle: str, suffix: str, yrange: list[float] | None = None
            ) -> dict[str, Any]:
    yaxis: dict[str, Any] = {"title": {"text": ytitle}, "ticksuffix": suffix, "zeroline": False}
    if yrange is not None:
        yaxis["range"] = yrange
    return {"title": {"text": title}, "xaxis": {"title": {"text": "replayed market day"}},
            "yaxis": yaxis, "margin": {"t": 40, "r": 20, "b": 80, "l": 70},
            "legend": {"orientation": "h", "y": -0.22, "x": 0}}


def _y_range(views: Sequence[tuple[list[float | None], list[float | None]]],
             marks: Sequence[float] = ()) -> list[float] | None:
    """One range for every view: the bounds after the first tenth of the days (the first
    days' intervals are far wider and would flatten everything else)."""
    vals = list(marks)
    for lo, hi in views:
        start = len(lo) // 10
        vals += [x for x in (*lo[start:], *hi[start:]) if x is not None]
    if not vals:
        return None
    a, b = min(vals), max(vals)
    pad = 0.06 * (b - a or 1.0)
    return [round(a - pad, 4), round(b + pad, 4)]


def _bands_range(traces: Sequence[Mapping[str, Any]], marks: Sequence[float]
                 ) -> list[float] | None:
    """The y-range of every band (pairs of lower/upper traces, as :func:`_band` lays out)."""
    edges = [t["y"] for t in traces if t.get("hoverinfo") == "skip" and "legendgroup" in t]
    return _y_range(list(zip(edges[0::2], edges[1::2], strict=True)), marks)


def _over_time(ab: Mapping[str, Any], add: AddFigure) -> str:
    parts = []
    split = _arm_series(_get(ab, "timeline", "split"))
    if split:
        days, arms = split
        hit = _hit_traces(days, arms)
        parts.append(add(hit, _layout(
            "Cumulative hit rate per arm, served traffic (95% Wilson band)", "hit rate (%)",
            "%", _bands_range(hit, [50.0])), 400))
        pnl = _pnl_traces(days, arms)
        parts.append(add(pnl, _layout(
            "Cumulative net P&L per arm, served traffic only (95% band)",
            "sum of net returns (%)", "%", _bands_range(pnl, [0.0])), 400))
    paired = _arm_series(_get(ab, "timeline", "paired"))
    if paired:
        days, arms = paired
        pnl = _pnl_traces(days, arms)
        parts.append(add(pnl, _layout(
            "Counterfactual cumulative net P&L: every arm scored on every day (shadow)",
            "sum of net returns (%)", "%", _bands_range(pnl, [0.0])), 400))
    if not parts:
        return ""
    return ("<h3>Per arm over time</h3><p class='muted'>Served traffic: each arm only on the "
            "days it was served (arms with less traffic add up less P&amp;L). Shadow: every "
            "arm's outcome on every replayed day, so the lines compare directly. Bands: 95% "
            "Wilson interval of the hit rate; ±1.96·sd·√n around the P&amp;L (iid days).</p>"
            + "".join(parts))


def _seq_view(ab: Mapping[str, Any], view: str, scale: float
              ) -> tuple[list[str], list[float | None], list[float | None], list[float | None],
                         list[str]] | None:
    t = _get(ab, "timeline", view)
    days = _days(t)
    if days is None:
        return None
    n = len(days)
    est, lo, hi = (_nums(_get(t, k), n) for k in ("estimate", "lower", "upper"))
    if est is None or lo is None or hi is None:
        return None
    actions = _get(t, "action")
    acts = [str(a) for a in actions] if isinstance(actions, list) and len(actions) == n else [
        ""] * n

    def sc(xs: list[float | None]) -> list[float | None]:
        return [None if x is None else x * scale for x in xs]

    return days, sc(est), sc(lo), sc(hi), acts


def _sequential(ab: Mapping[str, Any], add: AddFigure, scale: float, unit: str) -> str:
    metric = _metric(ab)
    minfx = _num(ab.get("min_effect"))
    if minfx is None:
        minfx = _num(_get(ab, "decision", "numbers", "min_effect")) or 0.0
    views = {v: s for v in ("split", "paired") if (s := _seq_view(ab, v, scale)) is not None}
    if not views:
        return ""
    yr = _y_range([(s[2], s[3]) for s in views.values()], [0.0, minfx * scale])
    alpha = _num(ab.get("alpha")) or 0.05
    figs = []
    for view, (days, est, lo, hi, acts) in views.items():
        edge = {"type": "scatter", "mode": "lines", "x": days, "line": {"width": 0},
                "hoverinfo": "skip", "showlegend": False}
        traces: list[dict[str, Any]] = [
            {**edge, "y": _round(lo), "name": "lower"},
            {**edge, "y": _round(hi), "name": f"{100 * (1 - alpha):.0f}% confidence sequence",
             "fill": "tonexty", "fillcolor": "rgba(31,119,180,0.2)", "showlegend": True},
            {"type": "scatter", "mode": "lines", "x": days, "y": _round(est),
             "name": "estimate (challenger - reference)", "text": acts,
             "hovertemplate": f"%{{y:.1f}} {unit} (%{{text}})<extra></extra>",
             "line": {"color": "#1f3b73", "width": 2}},
            {"type": "scatter", "mode": "lines", "x": [days[0], days[-1]], "y": [0, 0],
             "name": "0: rollback below", "hoverinfo": "skip",
             "line": {"color": "#c62828", "dash": "dash", "width": 1.5}}]
        if minfx > 0:
            traces.append({"type": "scatter", "mode": "lines", "x": [days[0], days[-1]],
                           "y": [minfx * scale] * 2, "name": "min effect: promote above",
                           "hoverinfo": "skip",
                           "line": {"color": "#2e7d32", "dash": "dash", "width": 1.5}})
        shapes, notes = [], []
        k = _get(ab, "days_to_decision", view)
        if isinstance(k, int) and not isinstance(k, bool) and 0 < k <= len(days):
            day = days[k - 1]
            shapes.append({"type": "line", "x0": day, "x1": day, "yref": "paper", "y0": 0,
                           "y1": 1, "line": {"color": "#2e7d32", "dash": "dot"}})
            notes.append({"x": day, "yref": "paper", "y": 1, "text": f"decided: {acts[k - 1]}",
                          "showarrow": False, "xanchor": "left", "yanchor": "top"})
        title = ("Split test: served challenger vs served reference" if view == "split"
                 else "Paired test: both arms scored on the same requests")
        what = "hit rate" if metric == "hit_rate" else "mean net return"
        layout = _layout(f"{title} — difference in {what}", f"difference ({unit})", f" {unit}",
                         yr)
        layout.update({"shapes": shapes, "annotations": notes})
        figs.append(add(traces, layout, 400))
    promote = (f"above the min effect ({minfx * scale:.1f} {unit})" if minfx > 0
               else "above zero")
    return ("<h3>Sequential tests</h3><p class='muted'>The always-valid confidence sequence "
            "may be checked every day: promote when it lies entirely "
            f"{_esc(promote)}, roll back when it lies entirely below zero, continue otherwise "
            "(invalid while an arm has too few outcomes or traffic mismatches the split)."
            + (" Both charts share one y-scale (set by the bounds after the first tenth of the "
               "days; earlier days are wider), so the paired sequence's narrower width shows."
               if len(figs) > 1 else "") + "</p>" + "".join(figs))


def _stress(ab: Mapping[str, Any]) -> str:
    windows = ab.get("stress_windows")
    if not isinstance(windows, Mapping) or not windows:
        return ""
    served_rows, paired_rows = [], []
    chal, ref = ab.get("challenger") or "challenger", ab.get("reference") or "reference"
    for name, w in windows.items():
        if not isinstance(w, Mapping):
            continue
        span = f"{w.get('start', '?')} to {w.get('end', '?')}"
        days = w.get("days", "-")
        served = w.get("served")
        for arm, a in (served.items() if isinstance(served, Mapping) else []):
            if isinstance(a, Mapping):
                served_rows.append([name, span, str(days), arm, str(a.get("n", "-")),
                                    _pct(a.get("hit_rate")), _bps(a.get("mean_return")),
                                    _pct(a.get("total_return"))])
        p = w.get("paired")
        if isinstance(p, Mapping):
            paired_rows.append([name, span, str(p.get("n", "-")), _pct(p.get("hit_rate")),
                                _pct(p.get("hit_rate_reference")), _pct(p.get("total_return")),
                                _pct(p.get("total_return_reference")),
                                _pct(p.get("total_diff")), _bps(p.get("mean_diff"))])
    out = "<h3>Stress windows</h3>"
    if served_rows:
        out += ("<p class='muted'>Served traffic (each arm on the days it served).</p>"
                + _table(["window", "dates", "days", "arm", "served outcomes", "hit rate",
                          "mean net return", "total net return"], served_rows,
                         "abtest-stress"))
    if paired_rows:
        out += (f"<p class='muted'>Shadow: both arms on every day of the window "
                f"({_esc(chal)} vs {_esc(ref)}).</p>"
                + _table(["window", "dates", "days", f"hit {chal}", f"hit {ref}",
                          f"total {chal}", f"total {ref}", "total difference",
                          "mean daily difference"], paired_rows, "abtest-stress-paired"))
    return out if served_rows or paired_rows else ""


def _fixed_n(ab: Mapping[str, Any]) -> str:
    rows = []
    tests = (("split", "decision", "net_return", "Welch t, net return", BPS, "bps"),
             ("split", "decision", "hit_rate", "two-proportion z, hit rate", 100.0, "pp"),
             ("paired", "paired_decision", "iid_diff", "paired t (iid), net return", BPS, "bps"),
             ("paired", "paired_decision", "daily_diff", "paired daily (HAC)", BPS,
              "bps"),
             ("paired", "paired_decision", "mcnemar", "McNemar, hit rate", 100.0, "pp"))
    for view, key, test, label, sc, u in tests:
        r = _get(ab, key, "numbers", test)
        est = _num(_get(r, "estimate"))
        if est is None:
            continue
        lo, hi = _num(_get(r, "lower")), _num(_get(r, "upper"))
        ci = (f"[{lo * sc:.1f}, {hi * sc:.1f}] {u}" if lo is not None and hi is not None
              else "-")
        rows.append([view, label, f"{est * sc:.2f} {u}", ci, _p(_get(r, "p_value"))])
    if not rows:
        return ""
    return ("<details><summary>Fixed-sample tests (for reading only: peeking every day "
            "inflates their error rate, so they never decide)</summary>"
            + _table(["test", "statistic", "estimate", "95% CI", "p"], rows) + "</details>")


def abtest_section(ab: Mapping[str, Any], add_figure: AddFigure) -> str:
    """The A/B section's HTML: headline, traffic, per-arm charts, sequential tests, stress."""
    if not isinstance(ab, Mapping):
        ab = {}
    scale, unit = _unit(_metric(ab))
    arms = _arms(ab)
    return "".join([
        "<h2 id='abtest'>A/B experiment</h2>",
        _headline(ab, scale, unit),
        _traffic(ab, arms),
        _results(arms),
        _over_time(ab, add_figure),
        _sequential(ab, add_figure, scale, unit),
        _stress(ab),
        _fixed_n(ab),
    ])
