"""The A/B section's charts: per-arm hit rate and net P&L over time with 95% bands, and the
sequential tests' estimate and confidence sequence against their decision boundaries
(:mod:`finmlops.report.abtest`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from finmlops.report import palette
from finmlops.report._abtest_values import (
    Z95,
    AddFigure,
    _days,
    _esc,
    _get,
    _metric,
    _num,
    _nums,
    _round,
)


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
