"""What ``abtest.json`` says, read for the report: safe accessors, number formats, the
decision, the arms and the sequential tests' end points (:mod:`finmlops.report.abtest`)."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

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
