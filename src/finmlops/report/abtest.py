"""The report's A/B section, drawn generically from the abtest stage's JSON.

It looks for a decision (``decision``/``action`` and ``reason``), a per-arm mapping
(``arms``: n, hit rate, mean net return and their intervals) and any day-by-day series (a
mapping with a ``days``/``dates`` list and numeric lists of the same length, or a list of
records); missing keys just leave their part out.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

AddFigure = Callable[[list[dict[str, Any]], dict[str, Any], int], str]

X_KEYS = ("days", "dates", "day", "date", "ts", "n")
BOUNDARY_WORDS = ("bound", "lower", "upper", "threshold", "alpha", "critical")
MAX_SCALARS = 40
MAX_SERIES_PLOTS = 6


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _first(m: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if m.get(k) is not None:
            return m[k]
    return None


def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) in the tree, breadth first."""
    queue: list[tuple[str, Any]] = [(path, obj)]
    while queue:
        p, o = queue.pop(0)
        yield p, o
        if isinstance(o, Mapping):
            queue.extend((f"{p}.{k}" if p else str(k), v) for k, v in o.items())


def _find(obj: Any, key: str) -> Any:
    for p, v in _walk(obj):
        if p.rsplit(".", 1)[-1] == key and v is not None:
            return v
    return None


def _decision(ab: Mapping[str, Any]) -> tuple[str | None, str | None]:
    d = ab.get("decision")
    if isinstance(d, Mapping):
        return _first(d, "action", "decision"), _first(d, "reason")
    action = d if isinstance(d, str) else _find(ab, "action")
    reason = _find(ab, "reason")
    return (str(action) if action is not None else None,
            str(reason) if reason is not None else None)


def _ci(v: Any) -> str:
    if isinstance(v, Sequence) and not isinstance(v, str) and len(v) == 2:
        return f"[{_fmt(v[0])}, {_fmt(v[1])}]"
    return "-"


def _arms_table(arms: Any) -> str:
    if isinstance(arms, Sequence) and not isinstance(arms, str):
        arms = {str(_first(a, "name", "arm") or i): a for i, a in enumerate(arms)
                if isinstance(a, Mapping)}
    if not isinstance(arms, Mapping) or not arms:
        return ""
    rows = []
    for name, a in arms.items():
        if not isinstance(a, Mapping):
            continue
        rows.append([name, _fmt(_first(a, "n", "count")), _fmt(a.get("hit_rate")),
                     _ci(a.get("hit_rate_ci")),
                     _fmt(_first(a, "mean_net_return", "mean_return", "net_return", "mean")),
                     _ci(_first(a, "mean_net_return_ci", "mean_return_ci", "net_return_ci",
                                "mean_ci"))])
    head = ("arm", "n", "hit rate", "hit rate CI", "mean net return", "mean net return CI")
    return (
        "<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                  for r in rows) + "</tbody></table>")


def _columns(o: Any) -> Mapping[str, Any] | None:
    """A mapping of equal-length lists, from itself or from a list of records."""
    if isinstance(o, Mapping):
        return o
    if isinstance(o, list) and o and all(isinstance(r, Mapping) for r in o):
        keys = [k for k in o[0] if all(k in r for r in o)]
        return {k: [r[k] for r in o] for k in keys}
    return None


def _numeric(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(
        x is None or (isinstance(x, int | float) and not isinstance(x, bool)) for x in v)


def _series(ab: Mapping[str, Any]) -> Iterator[tuple[str, Any, dict[str, list[Any]]]]:
    for path, o in _walk(ab):
        cols = _columns(o)
        if not cols:
            continue
        xkey = next((k for k in X_KEYS if isinstance(cols.get(k), list) and cols[k]), None)
        if xkey is None:
            continue
        xs = cols[xkey]
        ys = {k: v for k, v in cols.items()
              if k != xkey and _numeric(v) and len(v) == len(xs)}
        if ys:
            yield path or "experiment", xs, ys


def abtest_section(ab: Mapping[str, Any], add_figure: AddFigure) -> str:
    """The A/B section's HTML (decision, per-arm table, series plots, other numbers)."""
    parts = ["<h2 id='abtest'>A/B experiment</h2>"]
    action, reason = _decision(ab)
    if action or reason:
        parts.append(f"<p><b>Decision: {html.escape(action or '-')}</b>"
                     + (f" — {html.escape(reason)}" if reason else "") + "</p>")
    parts.append(_arms_table(_find(ab, "arms")))
    for i, (path, xs, ys) in enumerate(_series(ab)):
        if i >= MAX_SERIES_PLOTS:
            break
        traces = [{"type": "scatter", "mode": "lines", "name": k, "x": xs, "y": v,
                   "line": {"dash": "dash"} if any(w in k.lower() for w in BOUNDARY_WORDS)
                   else {}} for k, v in ys.items()]
        parts.append(add_figure(traces, {"title": {"text": path}}, 340))
    scalars = [(p, v) for p, v in _walk(ab)
               if p and not isinstance(v, Mapping | list) and not p.endswith(("reason",))]
    if scalars:
        parts.append("<details><summary>All numbers</summary><table><tbody>" + "".join(
            f"<tr><td class='l'>{html.escape(p)}</td><td>{html.escape(_fmt(v))}</td></tr>"
            for p, v in scalars[:MAX_SCALARS]) + "</tbody></table></details>")
    return "".join(parts)
