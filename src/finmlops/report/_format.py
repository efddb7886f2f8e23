"""Cell formatting and HTML tables shared by the report's sections."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any


def fmt(value: Any, kind: str = "f") -> str:
    """A cell: ``%`` one decimal (``%2`` two), ``f`` two decimals (``f1``, ``f3``), ``d`` an
    integer, ``g`` four significant digits, ``p`` a p-value; ``-`` when missing."""
    if value is None or isinstance(value, str):
        return "-" if value is None else value
    if kind == "d":
        return f"{value:,.0f}"
    if kind == "%":
        return f"{100 * value:.1f}%"
    if kind == "%2":
        return f"{100 * value:.2f}%"
    if kind == "f1":
        return f"{value:.1f}"
    if kind == "f3":
        return f"{value:.3f}"
    if kind == "g":
        return f"{value:.4g}"
    if kind == "p":
        return "< 0.001" if value < 0.001 else f"{value:.3f}"
    return f"{value:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table of already formatted cells (escaped here)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
