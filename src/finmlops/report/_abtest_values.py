"""What ``abtest.json`` says, read for the report: number formats, each view's decision and
timeline, and how far its sequential test got (:mod:`finmlops.report.abtest`)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any, Literal

from finmlops.contracts import AbtestSummary, DecisionRecord, Timeline

AddFigure = Callable[[list[dict[str, Any]], dict[str, Any], int], str]
View = Literal["split", "paired"]
"""The split test (served traffic) or the paired one (shadow scoring)."""

Z95 = 1.959963984540054
BPS = 1e4
ACTION_COLORS = {"promote": "#2e7d32", "rollback": "#c62828", "continue": "#555",
                 "invalid": "#ef6c00"}


# --- formats ----------------------------------------------------------------------------------

def esc(v: object) -> str:
    return html.escape(str(v))


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def bps_text(x: float | None) -> str:
    return "-" if x is None else f"{BPS * x:.1f} bps"


def p_text(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def ci_text(bounds: Sequence[float | None] | None, one: Callable[[float | None], str]) -> str:
    return "-" if bounds is None else f"[{one(bounds[0])}, {one(bounds[1])}]"


def table_html(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    attr = f" class='{cls}'" if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def rounded(xs: Sequence[float | None], digits: int = 4) -> list[float | None]:
    return [None if x is None else round(x, digits) for x in xs]


def unit_of(metric: str) -> tuple[float, str]:
    """Scale and unit of the tested difference: bps of net return, or points of hit rate."""
    return (100.0, "pp") if metric == "hit_rate" else (BPS, "bps")


# --- the two views ------------------------------------------------------------------------------

def decision_of(ab: AbtestSummary, view: View) -> DecisionRecord | None:
    """The view's decision; the paired one is ``None`` when no arm was shadow-scored."""
    return ab.decision if view == "split" else ab.paired_decision


def timeline_of(ab: AbtestSummary, view: View) -> Timeline | None:
    return ab.timeline.split if view == "split" else ab.timeline.paired


def decided_on(ab: AbtestSummary, view: View) -> int | None:
    """The day (1-based) the view's sequential test first decided, ``None`` if not yet."""
    return ab.days_to_decision.split if view == "split" else ab.days_to_decision.paired


def last_cs(ab: AbtestSummary, view: View) -> tuple[float, float] | None:
    """The confidence sequence at the end: the decision's, else (a split decision made
    invalid by the sample-ratio test carries none) the timeline's last defined one."""
    decision = decision_of(ab, view)
    seq = decision.numbers.sequential if decision is not None else None
    if seq is not None and seq.lower is not None and seq.upper is not None:
        return seq.lower, seq.upper
    t = timeline_of(ab, view)
    if t is not None:
        for lo, hi in zip(reversed(t.lower), reversed(t.upper), strict=True):
            if lo is not None and hi is not None:
                return lo, hi
    return None


def reached_text(ab: AbtestSummary, view: View) -> str:
    t = timeline_of(ab, view)
    days = t.days if t is not None else []
    k = decided_on(ab, view)
    if k is not None:
        return f"Decision reached after {k} days (on {days[k - 1]})"
    if days:
        return f"Decision not reached in {len(days)} days"
    return "no day-by-day history"
