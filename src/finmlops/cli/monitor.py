"""``finmlops monitor drift``: a live window of features against a model's training reference.

The reference is the one stored with each model version (``model.json`` ``reference``, with
its null calibrated on windows of the training period), from a model directory or the
registry; without a model it is built from the bars up to a date, calibrated at the live
window's length. The live window comes from the bars (``--start/--end``, features computed as
in training) or from a Parquet/CSV file of feature rows (``--live``).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from finmlops.cli._common import JsonOption, console, emit, print_json, settings_from
from finmlops.errors import DataValidationError, ModelNotFoundError, StoreError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from finmlops.config import Settings
    from finmlops.monitoring import DriftResult, DriftRow

monitor_app = typer.Typer(name="monitor", no_args_is_help=True,
                          help="Monitoring: drift of live data against the training reference.")

DateOption = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"])]


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")


@dataclass(frozen=True)
class DriftReport:
    """What ``monitor drift`` found: where the numbers came from, and the comparison."""

    reference_source: str
    live_source: str
    live_rows: int
    live_start: str | None
    live_end: str | None
    result: DriftResult

    @property
    def rows(self) -> list[DriftRow]:
        return list(self.result)

    @property
    def drifted(self) -> list[str]:
        return self.result.drifted

    def to_json(self) -> dict[str, Any]:
        agg = self.result.aggregate
        return {
            "reference": self.reference_source, "live": self.live_source,
            "live_rows": self.live_rows, "live_start": self.live_start,
            "live_end": self.live_end, "psi_threshold": self.result.psi_threshold,
            "ks_alpha": self.result.alpha, "calibrated": self.result.calibrated,
            "alarm": self.result.alarm, "drifted": self.drifted,
            "aggregate": agg.to_dict() if agg is not None else None,
            "features": [r.to_dict() for r in self.result],
        }


def load_model_card(model_dir: Path) -> dict[str, Any]:
    """``model.json`` of an exported model directory, which must hold a drift reference."""
    path = Path(model_dir) / "model.json"
    if not path.is_file():
        raise ModelNotFoundError(f"no model.json in {model_dir}")
    try:
        card: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise DataValidationError(f"{path} is not valid JSON") from None
    ref = card.get("reference")
    if not isinstance(ref, dict) or not ref.get("feature_names"):
        raise DataValidationError(f"{path} has no drift reference (retrain to add one)")
    return card


def load_bars(settings: Settings, dataset: str | None = None) -> pd.DataFrame:
    """Bars of the dataset store; the bundled history when the store is empty (offline)."""
    from finmlops.data import BundledSource, read_bars, validate_bars

    try:
        return read_bars(settings, dataset)
    except StoreError:
        if dataset is not None or settings.data.source != "bundled":
            raise
        tickers = list(dict.fromkeys([*settings.features.target, *settings.features.context]))
        return validate_bars(BundledSource().fetch(tickers, None, None), "bundled")


def feature_frame(settings: Settings, bars: pd.DataFrame) -> pd.DataFrame:
    """Features of every target ticker, computed exactly as for training."""
    from finmlops.features import build_features

    f = settings.features
    return build_features(bars, f.target, f.context, f.horizon)


def select_columns(frame: pd.DataFrame, names: list[str], what: str) -> np.ndarray:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DataValidationError(f"{what} lacks reference features: {', '.join(missing)}")
    return frame.loc[:, names].to_numpy(dtype="float64")


def read_live_file(path: Path) -> pd.DataFrame:
    """A Parquet or CSV file of feature rows (columns named like the reference's features)."""
    import pandas as pd

    if path.is_dir():
        raise DataValidationError(f"live file {path} is a directory, not a file")
    if not path.is_file():
        raise DataValidationError(f"live file not found: {path}")
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    try:
        return pd.read_parquet(path) if parquet else pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        # EmptyDataError, UnicodeDecodeError and pyarrow's ArrowInvalid are ValueErrors.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataValidationError(f"{path}: not a readable {'Parquet' if parquet else 'CSV'} "
                                  f"file ({first})") from None


def window_mask(frame: pd.DataFrame, start: dt.date | None, end: dt.date | None,
                last: int) -> np.ndarray:
    """Rows within ``[start, end]``; without dates the last ``last`` trading days."""
    import numpy as np
    import pandas as pd

    dates = pd.to_datetime(frame["date"])
    if start is None and end is None:
        days = np.sort(dates.unique())[-last:]
        return np.asarray(dates.isin(days))
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= np.asarray(dates >= pd.Timestamp(start))
    if end is not None:
        keep &= np.asarray(dates <= pd.Timestamp(end))
    return keep


def live_predictions(model_dir: Path, card: dict[str, Any], frame: pd.DataFrame,
                     mask: np.ndarray) -> np.ndarray | None:
    """The model's probabilities on the live rows (full windows only), when it can run."""
    import numpy as np

    from finmlops.features import make_windows, window_ends
    from finmlops.serving import load_model

    if not (Path(model_dir) / "model.onnx").is_file():
        return None
    model = load_model(str(card.get("variant", "model")), Path(model_dir))
    names = list(card.get("feature_names") or [])
    if len(names) != model.n_features or any(n not in frame.columns for n in names):
        return None
    ends = window_ends(frame["ticker"].to_numpy(), model.window)
    ends = ends[mask[ends]]
    if ends.size == 0:
        return None
    x = make_windows(frame.loc[:, names].to_numpy(dtype="float64"), ends, model.window)
    return np.asarray(model.predict(x), dtype=np.float64)


def in_time_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of a live file sorted by ticker and date (when it has those columns)."""
    keys = [c for c in ("ticker", "date") if c in frame.columns]
    if not keys:
        return frame.reset_index(drop=True)
    if "date" in keys:
        import pandas as pd

        frame = frame.assign(date=pd.to_datetime(frame["date"]))
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def daily_changes(frame: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    """Each row's change from the previous row of its ticker (NaN on a ticker's first row)."""
    from finmlops.monitoring import changes_of

    groups = frame["ticker"].astype(str).to_numpy() if "ticker" in frame.columns else None
    return changes_of(values, groups)


def drift_report(settings: Settings, *, model_dir: Path | None = None,
                 live: Path | None = None, start: dt.date | None = None,
                 end: dt.date | None = None, reference_until: dt.date | None = None,
                 dataset: str | None = None, reference_source: str | None = None) -> DriftReport:
    """Drift of the live window against the model's reference (or one built from bars)."""
    import numpy as np
    import pandas as pd

    from finmlops.features import feature_names
    from finmlops.monitoring import build_reference, compare

    mon = settings.monitoring
    frame: pd.DataFrame | None = None

    def features() -> pd.DataFrame:
        nonlocal frame
        if frame is None:
            frame = feature_frame(settings, load_bars(settings, dataset))
        return frame

    card: dict[str, Any] | None = None
    if model_dir is not None:
        card = load_model_card(model_dir)
        names = list(card["reference"]["feature_names"])
    else:
        names = feature_names("full", settings.features.context)

    predictions: np.ndarray | None = None
    if live is not None:
        source = in_time_order(read_live_file(live))
        all_values = select_columns(source, names, str(live))
        keep = (window_mask(source, start, end, len(source))
                if "date" in source.columns and (start or end) else np.ones(len(source), bool))
        live_source = str(live)
    else:
        source = features()
        all_values = select_columns(source, names, "the bars")
        keep = window_mask(source, start, end, mon.drift_window_days)
        live_source = "bars"
        if card is not None and model_dir is not None and "prediction" in card["reference"]:
            predictions = live_predictions(model_dir, card, source, keep)
    changes = daily_changes(source, all_values)[keep]
    values = all_values[keep]
    dates = pd.to_datetime(source.loc[keep, "date"]) if "date" in source.columns else None
    complete = np.isfinite(values).all(axis=1)
    values, changes = values[complete], changes[complete]
    if dates is not None:
        dates = dates[complete]
    if len(values) < 2:
        raise DataValidationError(f"the live window has {len(values)} complete rows; "
                                  "need at least 2 (check --start/--end)")

    if card is not None:
        reference: dict[str, Any] = card["reference"]
        ref_source = reference_source or f"model {card.get('variant', '?')} ({model_dir})"
    else:
        until = reference_until or settings.train.cutoff or (
            (start - dt.timedelta(days=1)) if start else None)
        if until is None:
            raise DataValidationError("no model and no date to build a reference until: "
                                      "give --model-dir, --model or --reference-until")
        f = features()
        past = f[pd.to_datetime(f["date"]) <= pd.Timestamp(until)]
        if past.empty:
            raise DataValidationError(f"no feature rows on or before {until}")
        reference = build_reference(select_columns(past, names, "the bars"), names,
                                    bins=mon.bins, lengths=(len(values),),
                                    groups=past["ticker"].astype(str).to_numpy())
        ref_source = f"bars until {until} ({len(past)} rows)"

    result = compare(reference, values, mon.psi_threshold, mon.ks_alpha,
                     predictions=predictions, bins=mon.bins, changes=changes)
    first = str(dates.min().date()) if dates is not None and len(dates) else None
    last = str(dates.max().date()) if dates is not None and len(dates) else None
    return DriftReport(ref_source, live_source, len(values), first, last, result)


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
    kwargs: dict[str, Any] = {
        "live": live, "start": start.date() if start else None,
        "end": end.date() if end else None,
        "reference_until": reference_until.date() if reference_until else None,
        "dataset": dataset,
    }
    if model is not None:
        from finmlops.tracking import download_model

        with tempfile.TemporaryDirectory(prefix="finmlops-drift-") as tmp:
            path = download_model(settings, model, Path(tmp) / "model")
            report = drift_report(settings, model_dir=path,
                                  reference_source=f"registry {model}", **kwargs)
    else:
        report = drift_report(settings, model_dir=model_dir, **kwargs)
    emit(ctx, {"alarm": bool(report.result.alarm), "drift.json": report.to_json()})
    if as_json:
        print_json(report.to_json())
    else:
        _render(report)
    if fail_on_drift and report.result.alarm:
        raise typer.Exit(code=1)
