"""How evaluation figures are shown: the backtest lines, the metric and active-return columns
and the cell format, one definition for the CLI's tables and the report's."""

from __future__ import annotations

from typing import Any

Column = tuple[str, str, str]
"""``(label, key in the metrics, cell format)``: see :func:`fmt` for the formats."""

LINES: dict[str, str] = {"strategy": "strategy", "buy_and_hold": "buy & hold",
                         "always_long": "always long", "exposure_matched": "exposure-matched"}
"""Each backtested line of ``evaluation.json`` (``metrics[line]``) and its label."""

METRIC_COLUMNS: tuple[Column, ...] = (
    ("days", "days", "d"), ("total", "total_return", "%"), ("annual", "annual_return", "%"),
    ("vol", "volatility", "%"), ("Sharpe", "sharpe", "f"), ("Sortino", "sortino", "f"),
    ("Calmar", "calmar", "f"), ("max DD", "max_drawdown", "%"),
    ("DD days", "max_drawdown_days", "d"), ("hit", "hit_rate", "%"),
    ("exposure", "exposure", "%"), ("turnover/yr", "turnover", "f1"),
    ("cost/yr", "cost_drag", "%"), ("PSR", "psr", "f"), ("MinTRL days", "min_trl", "d"),
    ("DSR", "dsr", "f"),
)
"""The performance metrics of one line (the report shows all of them)."""

ACTIVE_COLUMNS: tuple[Column, ...] = (
    ("active total", "active_total", "%"), ("active/yr", "active_annual", "%"),
    ("tracking err", "tracking_error", "%"), ("IR", "information_ratio", "f"),
    ("active PSR", "psr", "f3"), ("active DSR", "dsr", "f3"),
    ("break-even bps", "break_even_bps", "f1"),
)
"""The active-return statistics against one benchmark (``relative[benchmark]``)."""


def columns(*keys: str) -> tuple[Column, ...]:
    """The metric columns of ``keys``, in that order (a narrower table)."""
    by_key = {c[1]: c for c in METRIC_COLUMNS}
    return tuple(by_key[k] for k in keys)


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
