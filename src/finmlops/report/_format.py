"""HTML tables shared by the report's sections (cells formatted by
:func:`finmlops.evaluation.columns.fmt`)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from finmlops.evaluation.columns import fmt

__all__ = ["fmt", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table of already formatted cells (escaped here)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
