"""``finmlops monitor drift``: a live window of features against a model's training reference.

The reference is the one stored with each model version (``model.json`` ``reference``), from a
model directory or the registry; without a model it is built from the bars up to a date. The
live window comes from the bars (``--start/--end``, features computed as in training) or from
a Parquet/CSV file of feature rows (``--live``).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from finmlops.cli._common import JsonOption, console, print_json, settings_from
from finmlops.errors import DataValidationError, ModelNotFoundError, StoreError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from finmlops.config import Settings
    from finmlops.monitoring import DriftRow

monitor_app = typer.Typer(name="monitor", no_args_is_help=True,
                          help="Monitoring: drift of live data against the training reference.")

DateOption = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"])]


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")


@dataclass(frozen=True)
class DriftReport:
    """What ``monitor drift`` found: where the numbers came from, and one row per feature."""

    reference_source: str
    live_source: str
    live_rows: int
    live_start: str | None
    live_end: str | None
    psi_threshold: float
    ks_alpha: float
    rows: list[DriftRow]

    @property
    def drifted(self) -> list[str]:
        return [r.feature for r in self.rows if r.alarm]

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference_source, "live": self.live_source,
            "live_rows": self.live_rows, "live_start": self.live_start,
            "live_end": self.live_end, "psi_threshold": self.psi_threshold,
            "ks_alpha": self.ks_alpha, "drifted": self.drifted,
            "features": [r.to_dict() for r in self.rows],
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


def drift_report(settings: Settings, *, model_dir: Path | None = None,
                 live: Path | None = None, start: dt.date | None = None,
                 end: dt.date | None = None, reference_until: dt.date | None = None,
                 dataset: str | None = None, reference_source: str | None = None) -> DriftReport:
    """Drift of the live window against the model's reference (or one built from bars)."""
    import numpy as np
    import pandas as pd

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
        reference: dict[str, Any] = card["reference"]
        ref_source = reference_source or f"model {card.get('variant', '?')} ({model_dir})"
    else:
        from finmlops.features import feature_names

        until = reference_until or settings.train.cutoff or (
            (start - dt.timedelta(days=1)) if start else None)
        if until is None:
            raise DataValidationError("no model and no date to build a reference until: "
                                      "give --model-dir, --model or --reference-until")
        names = feature_names("full", settings.features.context)
        f = features()
        past = f[pd.to_datetime(f["date"]) <= pd.Timestamp(until)]
        if past.empty:
            raise DataValidationError(f"no feature rows on or before {until}")
        reference = build_reference(select_columns(past, names, "the bars"), names,
                                    bins=mon.bins)
        ref_source = f"bars until {until} ({len(past)} rows)"

    names = list(reference["feature_names"])
    predictions: np.ndarray | None = None
    if live is not None:
        live_frame = read_live_file(live)
        if "date" in live_frame.columns and (start or end):
            live_frame = live_frame.loc[window_mask(live_frame, start, end, len(live_frame))]
        values = select_columns(live_frame, names, str(live))
        live_source = str(live)
        dates = pd.to_datetime(live_frame["date"]) if "date" in live_frame.columns else None
    else:
        f = features()
        mask = window_mask(f, start, end, mon.drift_window_days)
        window = f.loc[mask]
        values = select_columns(window, names, "the bars")
        live_source = "bars"
        dates = pd.to_datetime(window["date"])
        if card is not None and model_dir is not None and "prediction" in reference:
            predictions = live_predictions(model_dir, card, f, mask)
    values = values[np.isfinite(values).all(axis=1)]
    if len(values) < 2:
        raise DataValidationError(f"the live window has {len(values)} complete rows; "
                                  "need at least 2 (check --start/--end)")
    rows = compare(reference, values, mon.psi_threshold, mon.ks_alpha,
                   predictions=predictions, bins=mon.bins)
    first = str(dates.min().date()) if dates is not None and len(dates) else None
    last = str(dates.max().date()) if dates is not None and len(dates) else None
    return DriftReport(ref_source, live_source, len(values), first, last,
                       mon.psi_threshold, mon.ks_alpha, rows)


def _render(report: DriftReport) -> None:
    from rich.table import Table

    out = console()
    window = (f"{report.live_start} .. {report.live_end}" if report.live_start
              else report.live_source)
    table = Table(title=f"Drift: {window} ({report.live_rows} rows) vs {report.reference_source}")
    for col in ("feature", "PSI", "KS", "p-value", "alarm"):
        table.add_column(col, justify="left" if col == "feature" else "right")
    for r in sorted(report.rows, key=lambda r: -r.psi):
        style = "bold red" if r.alarm else ("yellow" if r.psi > report.psi_threshold else None)
        table.add_row(r.feature, f"{r.psi:.3f}", f"{r.ks:.3f}", f"{r.p_value:.2g}",
                      "DRIFT" if r.alarm else "", style=style)
    out.print(table)
    drifted = report.drifted
    out.print(f"{len(drifted)} of {len(report.rows)} drifted (PSI > {report.psi_threshold:g} "
              f"and KS p < {report.ks_alpha:g})" + (f": {', '.join(drifted)}" if drifted else ""))


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
        help="Alarm above this PSI (default monitoring.psi_threshold).")] = None,
    ks_alpha: Annotated[float | None, typer.Option(
        help="...and below this KS p-value (default monitoring.ks_alpha).")] = None,
    bins: Annotated[int | None, typer.Option(help="PSI bins (default monitoring.bins).")] = None,
    fail_on_drift: Annotated[bool, typer.Option(
        "--fail-on-drift", help="Exit with code 1 when a feature drifted.")] = False,
    as_json: JsonOption = False,
) -> None:
    """PSI and KS of each feature in a live window against the training reference."""
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
    if as_json:
        print_json(report.to_json())
    else:
        _render(report)
    if fail_on_drift and report.drifted:
        raise typer.Exit(code=1)
