"""``finmlops monitor drift``: a live window of features against a model's training reference
(:mod:`finmlops.monitoring.report`), from a model directory, the registry or the bars."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from finmlops.cli._common import JsonOption, console, emit, print_json, settings_from
from finmlops.errors import DataValidationError

if TYPE_CHECKING:
    from finmlops.config import Settings
    from finmlops.monitoring import DriftReport

monitor_app = typer.Typer(name="monitor", no_args_is_help=True,
                          help="Monitoring: drift of live data against the training reference.")

DateOption = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"])]


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")


def _report_for(settings: Settings, model_dir: Path | None, reference_source: str | None,
                **window: Any) -> DriftReport:
    """The drift report of ``model_dir``'s reference (and its model), else of the bars."""
    from finmlops.monitoring import drift_card, drift_report
    from finmlops.serving import load_model

    if model_dir is None:
        return drift_report(settings, **window)
    card = drift_card(model_dir)
    model = (load_model(card.variant, model_dir) if (model_dir / "model.onnx").is_file()
             else None)
    return drift_report(settings, card=card, model=model,
                        reference_source=reference_source or f"model {card.variant} "
                                                             f"({model_dir})", **window)


def _render(report: DriftReport) -> None:
    from rich.table import Table

    out = console()
    res = report.result
    window = (f"{report.live_start} .. {report.live_end}" if report.live_start
              else report.live_source)
    table = Table(title=f"Drift: {window} ({report.live_rows} rows) vs {report.reference_source}")
    for col in ("feature", "tested on", "PSI", "KS", "p", "p family", "alarm"):
        table.add_column(col, justify="left" if col in ("feature", "tested on") else "right")
    for r in sorted(res, key=lambda r: (r.p_value, -r.ks)):
        style = "bold red" if r.alarm else ("yellow" if r.p_value <= res.alpha else None)
        table.add_row(r.feature, r.basis, f"{r.psi:.3f}", f"{r.ks:.3f}", f"{r.p_value:.2g}",
                      f"{r.p_family:.2g}", "DRIFT" if r.alarm else "", style=style)
    out.print(table)
    agg = res.aggregate
    if agg is None or agg.alpha is None or not res.calibrated:
        out.print(f"no null calibrated for a window of {report.live_rows} rows in this "
                  "reference (too short a window, or a model trained before calibration: "
                  "retrain): reported without alarms")
    else:
        verdict = "[bold red]DRIFT[/]" if agg.alarm else "no drift"
        reach = (f"{agg.threshold} or more" if agg.threshold is not None
                 else "no count")
        out.print(f"aggregate: {agg.unusual} of {agg.features} features unusual (calibrated p "
                  f"<= {agg.alpha:g}); alarm at {reach}, reached by at most "
                  f"{agg.alpha * 100:g}% of the reference's {agg.length}-day windows: {verdict}")
    drifted = report.drifted
    out.print(f"{len(drifted)} of {len(res)} series drifted on their own (family-wise p <= "
              f"{res.alpha:g}, PSI > {res.psi_threshold:g})"
              + (f": {', '.join(drifted)}" if drifted else ""))


@monitor_app.command("drift")
def drift_command(
    ctx: typer.Context,
    model_dir: Annotated[Path | None, typer.Option(
        "--model-dir", help="Exported model directory (model.json holds the reference).")] = None,
    model: Annotated[str | None, typer.Option(
        help="Registry reference (alias, version or variant) to download instead.")] = None,
    live: Annotated[Path | None, typer.Option(
        help="Parquet/CSV of live feature rows instead of features from the bars.")] = None,
    start: DateOption = None,
    end: DateOption = None,
    reference_until: Annotated[dt.datetime | None, typer.Option(
        formats=["%Y-%m-%d"],
        help="Without a model: build the reference from bars up to this date "
             "(default train.cutoff).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset version (default newest).")] = None,
    psi_threshold: Annotated[float | None, typer.Option(
        help="A series alarms only above this PSI (default monitoring.psi_threshold).")] = None,
    ks_alpha: Annotated[float | None, typer.Option(
        help="False-alarm rate per window of each alarm, calibrated on the reference's own "
             "windows (default monitoring.ks_alpha).")] = None,
    bins: Annotated[int | None, typer.Option(help="PSI bins (default monitoring.bins).")] = None,
    fail_on_drift: Annotated[bool, typer.Option(
        "--fail-on-drift", help="Exit with code 1 on any alarm (aggregate, a feature, the "
                                "prediction).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Drift of each feature (and the prediction) in a live window against the training
    reference: KS distance with p-values from the reference's own windows, PSI, and one
    aggregate alarm."""
    if model_dir is not None and model is not None:
        raise DataValidationError("give --model-dir or --model, not both")
    if start is not None and end is not None and end < start:
        raise DataValidationError(f"--end {end.date()} is before --start {start.date()}")
    settings = settings_from(ctx, {"monitoring.psi_threshold": psi_threshold,
                                   "monitoring.ks_alpha": ks_alpha, "monitoring.bins": bins})
    window: dict[str, Any] = {
        "live": live, "start": start.date() if start else None,
        "end": end.date() if end else None,
        "reference_until": reference_until.date() if reference_until else None,
        "dataset": dataset,
    }
    if model is not None:
        from finmlops.tracking import download_model

        with tempfile.TemporaryDirectory(prefix="finmlops-drift-") as tmp:
            path = download_model(settings, model, Path(tmp) / "model")
            report = _report_for(settings, path, f"registry {model}", **window)
    else:
        report = _report_for(settings, model_dir, None, **window)
    emit(ctx, {"alarm": bool(report.result.alarm), "drift.json": report.to_json()})
    if as_json:
        print_json(report.to_json())
    else:
        _render(report)
    if fail_on_drift and report.result.alarm:
        raise typer.Exit(code=1)
