"""``finmlops ingest`` and ``finmlops data list|show``: building and inspecting dataset versions."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from finmlops.cli._common import JsonOption, console, emit, print_json, settings_from

data_app = typer.Typer(name="data", help="Inspect the versioned dataset store.",
                       no_args_is_help=True)

DateOption = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"])]


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_command)
    app.add_typer(data_app, name="data")


def ingest_command(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Option(
        help="bundled | yahoo | stooq | csv (default: data.source).")] = None,
    tickers: Annotated[str | None, typer.Option(
        help="Comma-separated tickers (default: data.tickers, or --ticker).")] = None,
    start: DateOption = None,
    end: DateOption = None,
    csv: Annotated[Path | None, typer.Option(
        "--csv", help="Bar file for --source csv (format: see `finmlops.data.sources`).")] = None,
    ticker: Annotated[str | None, typer.Option(
        help="Ticker of a per-ticker CSV file (one without a ticker column).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch, validate and store daily bars as a dataset version; prints the version."""
    from finmlops.cli._progress import ConsoleReporter
    from finmlops.data import CsvSource, ingest, make_source

    if csv is not None and source is None:
        source = "csv"
    settings = settings_from(ctx, {
        "data.source": source,
        "data.start": start.date() if start else None,
        "data.end": end.date() if end else None,
        "data.csv_path": str(csv) if csv else None,
    })
    # Tickers go to the ingest directly: they need not be the modelled ones in `features`.
    src = make_source(settings, ticker=ticker)
    names = [t for t in (tickers or "").split(",") if t.strip()] or (
        [ticker] if ticker else None)
    if names is None and isinstance(src, CsvSource):
        single = src.file_ticker()  # a per-ticker file ingests its own ticker by default
        names = [single] if single else None
    t0 = time.perf_counter()
    with ConsoleReporter(console(stderr=as_json)) as reporter:
        reporter.stage_started("ingest", "fetching")
        result = ingest(settings, source=src, tickers=names,
                        progress=reporter.progress)
        reporter.stage_finished("ingest", time.perf_counter() - t0, result.summary())
    emit(ctx, {"dataset_version": result.version})
    if as_json:
        print_json({"version": result.version, "created": result.created,
                    **result.manifest.summary()})


@data_app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Dataset versions in the store, newest first."""
    from finmlops.data import list_versions

    versions = list_versions(settings_from(ctx))
    if as_json:
        print_json([m.summary() for m in versions])
        return
    out = console()
    if not versions:
        out.print("no dataset versions yet: run `finmlops ingest`")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for name in ("version", "created (UTC)", "tickers", "rows", "range"):
        table.add_column(name, no_wrap=name != "tickers",
                         min_width=7 if name == "tickers" else None)
    for m in versions:
        table.add_row(m.version, m.created_at[:16].replace("T", " "), ",".join(m.tickers),
                      f"{m.rows:,}", f"{m.start}..{m.end}")
    out.print(table)


@data_app.command("show")
def show_command(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version id, a unique prefix, or 'latest'.")],
    as_json: JsonOption = False,
) -> None:
    """The manifest of one dataset version."""
    from finmlops.data import get_manifest

    manifest = get_manifest(settings_from(ctx), version)
    if as_json:
        print_json(manifest.to_dict())
        return
    out = console()
    info: dict[str, Any] = manifest.summary()
    for key in ("version", "created_at", "source", "rows"):
        out.print(f"[bold]{key:<11}[/] {info[key]}")
    from rich.table import Table

    table = Table("ticker", "start", "end", "rows", "file", "sha256", box=None,
                  pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for name, entry in manifest.files.items():
        r = manifest.ranges[entry.ticker]
        table.add_row(entry.ticker, r.start, r.end, f"{r.rows:,}", name, entry.sha256[:12] + "…")
    out.print(table)


@data_app.command("validate")
def validate_command(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version id, a unique prefix, or 'latest'.")]
    = "latest",
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="The day the data must be fresh for (YYYY-MM-DD; default today, "
                        "UTC).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check a dataset version beyond the schema: every modelled ticker present, fresh for
    the as-of date, ending on the same day, no recent calendar gaps, no implausible moves
    (validation.*). Exits 3 naming each problem."""
    from finmlops.data import check_bars, get_manifest, read_bars
    from finmlops.errors import DataValidationError

    settings = settings_from(ctx)
    day = _as_of(as_of)
    manifest = get_manifest(settings, None if version == "latest" else version)
    tickers = list(dict.fromkeys([*settings.features.target, *settings.features.context]))
    v = settings.validation
    report = check_bars(read_bars(settings, manifest.version), tickers, day,
                        max_age_days=v.max_age_days, recent_days=v.recent_days,
                        max_abs_return=v.max_abs_return)
    out = {"dataset_version": manifest.version, **report.to_json()}
    if report.ok:
        newest = max(report.newest.values())
        emit(ctx, {"dataset_version": manifest.version, "newest": newest.isoformat(),
                   "validation.json": out})
    if as_json:
        print_json(out)
    else:
        c = console()
        for note in report.notes:
            c.print(f"note: {note}")
        if report.ok:
            c.print(f"dataset {manifest.version}: valid for {day} (newest bar "
                    f"{max(report.newest.values())}, {len(report.newest)} tickers)")
    if not report.ok:
        raise DataValidationError(f"dataset {manifest.version} is not valid for {day}: "
                                  + "; ".join(report.problems))


def _as_of(text: str | None) -> dt.date:
    from finmlops.errors import ConfigError

    if not text:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--as-of must be a date like 2024-01-31, not {text!r}") from None
