"""``finmlops evaluate`` (backtests net of costs, stress windows, break-even cost) and
``finmlops report`` (the self-contained HTML report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from finmlops.cli._common import JsonOption, console, print_json, settings_from

EVALUATE_STAGE = ("evaluate", "finmlops.pipeline._evaluate:run",
                  "backtest OOS predictions with costs; stress windows, cost sweep, PSR/DSR")
REPORT_STAGE = ("report", "finmlops.pipeline._report:run",
                "write the self-contained HTML report")

# (label, key, format): percentages as %, ratios with 2 decimals.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("days", "days", "d"), ("total", "total_return", "%"), ("annual", "annual_return", "%"),
    ("vol", "volatility", "%"), ("Sharpe", "sharpe", "f"), ("Sortino", "sortino", "f"),
    ("max DD", "max_drawdown", "%"), ("hit", "hit_rate", "%"), ("exposure", "exposure", "%"),
    ("turnover/yr", "turnover", "f1"), ("cost/yr", "cost_drag", "%"), ("PSR", "psr", "f"),
    ("DSR", "dsr", "f"),
)
LINES = (("strategy", "strategy"), ("buy_and_hold", "buy & hold"),
         ("always_long", "always long"))


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(ctx: typer.Context, as_json: JsonOption = False) -> None:
        """Backtest each variant's out-of-sample predictions net of the configured costs:
        overall and per stress window, against buy-and-hold, with the break-even cost."""
        state = _run_stage(ctx, EVALUATE_STAGE, as_json)
        evaluation = json.loads(Path(state["evaluation"]["path"]).read_text("utf-8"))
        if as_json:  # everything but the daily series (they are in the file)
            for e in evaluation["variants"].values():
                e.pop("series", None)
            print_json({"path": state["evaluation"]["path"], **evaluation})
            return
        out = console()
        for table in tables(evaluation):
            out.print(table)
        for line in break_even_lines(evaluation):
            out.print(line)
        for note in evaluation.get("notes", []):
            out.print(f"[dim]note: {note}[/]")

    @app.command("report")
    def report(ctx: typer.Context, as_json: JsonOption = False) -> None:
        """Write one self-contained HTML report of the latest run (no network needed to open)."""
        state = _run_stage(ctx, REPORT_STAGE, as_json)
        if as_json:
            print_json(state["report"])
            return
        console().print(f"report written to {state['report']['path']}")


def _run_stage(ctx: typer.Context, spec: tuple[str, str, str], as_json: bool) -> dict[str, Any]:

    from finmlops.cli._progress import ConsoleReporter
    from finmlops.pipeline import Stage, run_stages

    settings = settings_from(ctx)
    out = console(stderr=as_json)
    with ConsoleReporter(out) as reporter:
        return run_stages(settings, [Stage(*spec)], reporter)


def fmt(value: Any, kind: str) -> str:
    """One table cell: ``-`` for missing values."""
    if value is None:
        return "-"
    if kind == "d":
        return str(int(value))
    if kind == "%":
        return f"{100 * value:.1f}%"
    if kind == "f1":
        return f"{value:.1f}"
    return f"{value:.2f}"


def tables(evaluation: dict[str, Any]) -> list[Any]:
    """One rich table per variant: overall and per stress window, strategy and benchmarks."""
    from rich.table import Table

    out = []
    cost = evaluation.get("cost_bps")
    for variant, e in evaluation["variants"].items():
        table = Table(title=f"{variant}: {e['start']} to {e['end']}, net of {cost:g} bps "
                            "per unit traded", title_justify="left")
        table.add_column("period")
        table.add_column("line")
        for label, _, _ in COLUMNS:
            table.add_column(label, justify="right")
        periods = [("overall", e["metrics"]), *e["stress"].items()]
        for i, (period, metrics) in enumerate(periods):
            for key, label in LINES:
                m = metrics.get(key)
                cells = [fmt(m.get(k), kind) if m else "-" for _, k, kind in COLUMNS]
                table.add_row(period if key == "strategy" else "", label, *cells,
                              end_section=key == LINES[-1][0] and i < len(periods) - 1)
        out.append(table)
    return out


def break_even_lines(evaluation: dict[str, Any]) -> list[str]:
    """The break-even one-way cost of each variant, in words."""
    lines = []
    for variant, e in evaluation["variants"].items():
        be = e.get("break_even_bps")
        if be is None:
            lines.append(f"{variant}: no break-even cost: it trails buy-and-hold even at zero "
                         "cost (or never trades)")
        else:
            lines.append(f"{variant}: break-even cost {be:.1f} bps per unit traded "
                         f"(configured {evaluation.get('cost_bps', 0):g} bps)")
    return lines
