"""``finmlops evaluate`` (backtests net of costs, stress windows, break-even cost) and
``finmlops report`` (the self-contained HTML report)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from finmlops.cli._common import (
    JsonOption,
    console,
    emit,
    print_json,
    run_stage,
    settings_from,
)
from finmlops.errors import StageError

if TYPE_CHECKING:
    from finmlops.contracts import EvaluationFile, PerformanceMetrics

# The CLI's per-variant table: the report's metric columns (finmlops.evaluation.columns),
# narrower. Looked up when a table is drawn: evaluation imports numpy, --help must not.
TABLE_KEYS = ("days", "total_return", "annual_return", "volatility", "sharpe", "sortino",
              "max_drawdown", "hit_rate", "exposure", "turnover", "cost_drag", "psr", "dsr")

def evaluate_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Backtest each variant's out-of-sample predictions net of the configured costs and
    execution: overall and per stress window, against buy-and-hold and an
    exposure-matched benchmark, with active-return statistics, the trial count and the
    break-even cost."""
    from finmlops.contracts import read_evaluation

    state = run_stage(settings_from(ctx), "evaluate", as_json)
    path = state.need_evaluation().path
    evaluation = read_evaluation(Path(path))
    emit(ctx, {"evaluation.json": Path(path).read_text("utf-8")})
    if as_json:  # everything but the daily series (they are in the file)
        data = evaluation.to_json()
        for e in data["variants"].values():
            del e["series"]
        print_json({"path": path, **data})
        return
    out = console()
    out.print(headline_table(evaluation))
    for table in tables(evaluation):
        out.print(table)
    out.print(active_table(evaluation))
    for line in break_even_lines(evaluation):
        out.print(line)
    for note in evaluation.notes:
        out.print(f"[dim]note: {note}[/]")


def report_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Write one self-contained HTML report of the latest run (no network needed to open)."""
    state = run_stage(settings_from(ctx), "report", as_json)
    if state.report is None:  # pragma: no cover - the stage always outputs it
        raise StageError("the report stage wrote no report")
    if as_json:
        print_json(state.report.to_json())
        return
    console().print(f"report written to {state.report.path}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
    app.command("report")(report_cmd)


def tables(evaluation: EvaluationFile) -> list[Any]:
    """One rich table per variant: overall and per stress window, strategy and benchmarks."""
    from rich.table import Table

    from finmlops.evaluation.columns import LINES, columns, fmt

    table_columns, lines = columns(*TABLE_KEYS), tuple(LINES.items())

    out = []
    cost = evaluation.cost_bps
    for variant, e in evaluation.variants.items():
        table = Table(title=f"{variant}: {e.start} to {e.end}, net of {cost:g} bps "
                            "per unit traded", title_justify="left")
        table.add_column("period")
        table.add_column("line")
        for label, _, _ in table_columns:
            table.add_column(label, justify="right")
        periods: list[tuple[str, Mapping[str, PerformanceMetrics | None]]] = [
            ("overall", e.metrics), *e.stress.items()]
        for i, (period, metrics) in enumerate(periods):
            for key, label in lines:
                m = metrics.get(key)
                cells = [fmt(getattr(m, k), kind) if m else "-" for _, k, kind in table_columns]
                table.add_row(period if key == "strategy" else "", label, *cells,
                              end_section=key == lines[-1][0] and i < len(periods) - 1)
        out.append(table)
    return out


def headline_table(evaluation: EvaluationFile) -> Any:
    """The README's evaluation table: per variant and buy-and-hold, the absolute figures and
    the benchmark-relative ones the verdict rests on."""
    from rich.table import Table

    from finmlops.evaluation.columns import fmt

    table = Table(title=f"summary: net of {evaluation.cost_bps:g} bps, execution "
                        f"{evaluation.execution.setting}, {evaluation.trials.n} trials",
                  title_justify="left")
    for label in ("line", "total return", "Sharpe", "max DD", "DSR", "active return",
                  "alpha t", "IR", "active PSR", "active DSR", "Sharpe diff p"):
        table.add_column(label, justify="left" if label == "line" else "right")
    for variant, e in evaluation.variants.items():
        m = e.metrics["strategy"]
        a, capm = e.relative.buy_and_hold, e.relative.capm
        table.add_row(variant, fmt(m.total_return, "%"), fmt(m.sharpe, "f"),
                      fmt(m.max_drawdown, "%"), fmt(m.dsr, "f3"),
                      fmt(a.active_total, "%"), fmt(capm.alpha_t, "f"),
                      fmt(a.information_ratio, "f"), fmt(a.psr, "f3"), fmt(a.dsr, "f3"),
                      fmt(a.sharpe_difference.p_value, "f3"))
    first = next(iter(evaluation.variants.values()), None)
    if first is not None:
        b = first.metrics["buy_and_hold"]
        table.add_row("buy & hold", fmt(b.total_return, "%"), fmt(b.sharpe, "f"),
                      fmt(b.max_drawdown, "%"), *["-"] * 7)
    return table


def active_table(evaluation: EvaluationFile) -> Any:
    """Per variant and benchmark: active return, IR, active PSR/DSR, the Sharpe-difference
    test, alpha t and the break-even cost; the trial count in the title."""
    from rich.table import Table

    from finmlops.evaluation.columns import ACTIVE_COLUMNS, LINES, fmt

    trials = evaluation.trials
    table = Table(title=f"active return, net of costs; DSR deflated over {trials.n} "
                        f"trials ({trials.source})", title_justify="left")
    for label in ("variant", "vs", *(c[0] for c in ACTIVE_COLUMNS), "Sharpe diff p",
                  "alpha/yr", "alpha t", "beta"):
        table.add_column(label, justify="left" if label in ("variant", "vs") else "right")
    for variant, e in evaluation.variants.items():
        rel, capm = e.relative, e.relative.capm
        for key, a in (("buy_and_hold", rel.buy_and_hold),
                       ("exposure_matched", rel.exposure_matched)):
            first = key == "buy_and_hold"
            table.add_row(variant if first else "", LINES[key],
                          *(fmt(getattr(a, k), kind) for _, k, kind in ACTIVE_COLUMNS),
                          fmt(a.sharpe_difference.p_value, "f3"),
                          fmt(capm.alpha_annual, "%") if first else "",
                          fmt(capm.alpha_t, "f") if first else "",
                          fmt(capm.beta, "f") if first else "")
    return table


def break_even_lines(evaluation: EvaluationFile) -> list[str]:
    """The break-even one-way cost of each variant (mean active return zero), in words."""
    lines = []
    for variant, e in evaluation.variants.items():
        be = e.break_even_bps
        if be is None:
            lines.append(f"{variant}: no break-even cost: its active return against "
                         "buy-and-hold is negative even at zero cost")
        else:
            lines.append(f"{variant}: break-even cost {be:.1f} bps per unit traded against "
                         f"buy-and-hold (configured {evaluation.cost_bps:g} bps)")
    return lines
