"""The A/B section's charts: per-arm hit rate and net P&L over time with 95% bands, and the
sequential tests' estimate and confidence sequence against their decision boundaries
(:mod:`finmlops.report.abtest`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from finmlops.contracts import AbtestSummary, ArmCumulative, Timeline
from finmlops.report import palette
from finmlops.report._abtest_values import (
    Z95,
    AddFigure,
    View,
    decided_on,
    esc,
    rounded,
    timeline_of,
)


def _band(x: list[str], mid: list[float | None], lo: list[float | None],
          hi: list[float | None], name: str, i: int, group: str) -> list[dict[str, Any]]:
    """Three traces: the band's lower edge, its upper edge filled down to it, the line."""
    color, fill = palette.color(name), palette.fill(name)  # one colour per arm, report-wide
    edge = {"type": "scatter", "mode": "lines", "x": x, "line": {"width": 0, "color": color},
            "legendgroup": group, "showlegend": False, "hoverinfo": "skip"}
    return [{**edge, "y": rounded(lo), "name": f"{name} lower"},
            {**edge, "y": rounded(hi), "name": f"{name} 95% band", "fill": "tonexty",
             "fillcolor": fill},
            {"type": "scatter", "mode": "lines", "x": x, "y": rounded(mid), "name": name,
             "legendgroup": group, "line": {"color": color, "width": 2}}]


def _hit_traces(days: list[str], arms: Mapping[str, ArmCumulative]) -> list[dict[str, Any]]:
    from finmlops.evaluation import wilson_interval

    traces: list[dict[str, Any]] = []
    for i, (name, c) in enumerate(arms.items()):
        mid: list[float | None] = []
        lo: list[float | None] = []
        hi: list[float | None] = []
        for n, h in zip(c.n, c.hits, strict=True):
            if not n:  # the arm was not served yet
                mid.append(None)
                lo.append(None)
                hi.append(None)
                continue
            a, b = wilson_interval(h, n)
            mid.append(100 * h / n)
            lo.append(100 * a)
            hi.append(100 * b)
        traces += _band(days, mid, lo, hi, name, i, f"hit-{name}")
    traces.append({"type": "scatter", "mode": "lines", "x": [days[0], days[-1]], "y": [50, 50],
                   "name": "50% (coin flip)", "hoverinfo": "skip",
                   "line": {"dash": "dot", "color": "#888", "width": 1}})
    return traces


def _pnl_traces(days: list[str], arms: Mapping[str, ArmCumulative]) -> list[dict[str, Any]]:
    """Cumulative net P&L (sum of net returns, %) with ±1.96·sd·√n around it."""
    traces: list[dict[str, Any]] = []
    for i, (name, c) in enumerate(arms.items()):
        mid: list[float | None] = []
        lo: list[float | None] = []
        hi: list[float | None] = []
        for n, s, q in zip(c.n, c.sum_return, c.sum_sq, strict=True):
            if s is None or q is None:
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


def over_time(ab: AbtestSummary, add: AddFigure) -> str:
    parts = []
    split = ab.timeline.split
    if split.days:
        hit = _hit_traces(split.days, split.arms)
        parts.append(add(hit, _layout(
            "Cumulative hit rate per arm, served traffic (95% Wilson band)", "hit rate (%)",
            "%", _bands_range(hit, [50.0])), 400))
        pnl = _pnl_traces(split.days, split.arms)
        parts.append(add(pnl, _layout(
            "Cumulative net P&L per arm, served traffic only (95% band)",
            "sum of net returns (%)", "%", _bands_range(pnl, [0.0])), 400))
    paired = ab.timeline.paired
    if paired is not None and paired.days:
        pnl = _pnl_traces(paired.days, paired.arms)
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


def _scaled(xs: list[float | None], scale: float) -> list[float | None]:
    return [None if x is None else x * scale for x in xs]


def sequential_chart(ab: AbtestSummary, add: AddFigure, scale: float, unit: str) -> str:
    metric, minfx, alpha = ab.metric, ab.min_effect, ab.alpha
    views: dict[View, Timeline] = {v: t for v in ("split", "paired")
                                   if (t := timeline_of(ab, v)) is not None and t.days}
    if not views:
        return ""
    yr = _y_range([(_scaled(t.lower, scale), _scaled(t.upper, scale)) for t in views.values()],
                  [0.0, minfx * scale])
    figs = []
    for view, t in views.items():
        days, acts = t.days, t.action
        est, lo, hi = (_scaled(xs, scale) for xs in (t.estimate, t.lower, t.upper))
        edge = {"type": "scatter", "mode": "lines", "x": days, "line": {"width": 0},
                "hoverinfo": "skip", "showlegend": False}
        traces: list[dict[str, Any]] = [
            {**edge, "y": rounded(lo), "name": "lower"},
            {**edge, "y": rounded(hi), "name": f"{100 * (1 - alpha):.0f}% confidence sequence",
             "fill": "tonexty", "fillcolor": "rgba(31,119,180,0.2)", "showlegend": True},
            {"type": "scatter", "mode": "lines", "x": days, "y": rounded(est),
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
        k = decided_on(ab, view)
        if k is not None:
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
            f"{esc(promote)}, roll back when it lies entirely below zero, continue otherwise "
            "(invalid while an arm has too few outcomes or traffic mismatches the split)."
            + (" Both charts share one y-scale (set by the bounds after the first tenth of the "
               "days; earlier days are wider), so the paired sequence's narrower width shows."
               if len(figs) > 1 else "") + "</p>" + "".join(figs))
