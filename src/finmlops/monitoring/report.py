"""A drift report: a live window of features (and predictions) against a training reference.

The reference is the one stored with each model version (``model.json`` ``reference``, with
its null calibrated on windows of the training period); without a model it is built from the
bars up to a date, calibrated at the live window's length. The live window comes from the
bars (``start``/``end``, features computed as in training) or from a Parquet/CSV file of
feature rows. ``finmlops monitor drift`` prints it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from finmlops.config import Settings
from finmlops.contracts import ModelCard
from finmlops.errors import DataValidationError, StoreError
from finmlops.monitoring.reference import PREDICTION

if TYPE_CHECKING:
    import pandas as pd

    from finmlops.monitoring.drift import DriftResult, DriftRow


class Predictor(Protocol):
    """What a drift report needs of a loaded model (:class:`finmlops.serving.LoadedModel`)."""

    @property
    def window(self) -> int: ...

    @property
    def n_features(self) -> int: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


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


def drift_card(model_dir: Path) -> ModelCard:
    """The card of an exported model directory, which must hold a drift reference."""
    card = ModelCard.read(model_dir)
    if card.reference is None or not card.reference.get("feature_names"):
        raise DataValidationError(f"{Path(model_dir) / 'model.json'} has no drift reference "
                                  "(retrain to add one)")
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


def live_predictions(model: Predictor, names: list[str], frame: pd.DataFrame,
                     mask: np.ndarray) -> np.ndarray | None:
    """The model's probabilities on the live rows (full windows only), when it can run."""
    from finmlops.features import make_windows, window_ends

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
    from finmlops.monitoring.reference import changes_of

    groups = frame["ticker"].astype(str).to_numpy() if "ticker" in frame.columns else None
    return changes_of(values, groups)


@dataclass(frozen=True)
class _Live:
    """The live window: complete rows, their daily changes, dates and model predictions."""

    values: np.ndarray
    changes: np.ndarray
    dates: pd.Series | None
    source: str
    predictions: np.ndarray | None


class _Features:
    """The feature frame of the bars, computed once and only when needed."""

    def __init__(self, settings: Settings, dataset: str | None) -> None:
        self.settings, self.dataset = settings, dataset
        self._frame: pd.DataFrame | None = None

    def __call__(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = feature_frame(self.settings, load_bars(self.settings, self.dataset))
        return self._frame


def _live_window(settings: Settings, names: list[str], features: _Features,
                 live: Path | None, start: dt.date | None, end: dt.date | None,
                 model: tuple[Predictor, list[str]] | None) -> _Live:
    """``model``: the model and its input's feature names, for the prediction's drift."""
    import pandas as pd

    predictions: np.ndarray | None = None
    if live is not None:
        source = in_time_order(read_live_file(live))
        all_values = select_columns(source, names, str(live))
        keep = (window_mask(source, start, end, len(source))
                if "date" in source.columns and (start or end) else np.ones(len(source), bool))
        where = str(live)
    else:
        source = features()
        all_values = select_columns(source, names, "the bars")
        keep = window_mask(source, start, end, settings.monitoring.drift_window_days)
        where = "bars"
        if model is not None:
            predictions = live_predictions(model[0], model[1], source, keep)
    changes = daily_changes(source, all_values)[keep]
    values = all_values[keep]
    dates = pd.to_datetime(source.loc[keep, "date"]) if "date" in source.columns else None
    complete = np.isfinite(values).all(axis=1)
    if len(values[complete]) < 2:
        raise DataValidationError(f"the live window has {int(complete.sum())} complete rows; "
                                  "need at least 2 (check --start/--end)")
    return _Live(values[complete], changes[complete],
                 dates[complete] if dates is not None else None, where, predictions)


def _bars_reference(settings: Settings, names: list[str], features: _Features,
                    until: dt.date | None, length: int) -> tuple[dict[str, Any], str]:
    """A reference built from the bars up to ``until``, calibrated at ``length`` days."""
    import pandas as pd

    from finmlops.monitoring.reference import build_reference

    if until is None:
        raise DataValidationError("no model and no date to build a reference until: "
                                  "give --model-dir, --model or --reference-until")
    f = features()
    past = f[pd.to_datetime(f["date"]) <= pd.Timestamp(until)]
    if past.empty:
        raise DataValidationError(f"no feature rows on or before {until}")
    reference = build_reference(select_columns(past, names, "the bars"), names,
                                bins=settings.monitoring.bins, lengths=(length,),
                                groups=past["ticker"].astype(str).to_numpy())
    return reference, f"bars until {until} ({len(past)} rows)"


def drift_report(settings: Settings, *, card: ModelCard | None = None,
                 model: Predictor | None = None, live: Path | None = None,
                 start: dt.date | None = None, end: dt.date | None = None,
                 reference_until: dt.date | None = None, dataset: str | None = None,
                 reference_source: str | None = None) -> DriftReport:
    """Drift of the live window against ``card``'s reference (:func:`drift_card`), or one
    built from the bars; ``model`` (the card's loaded model) adds the prediction's drift on
    a live window from the bars."""
    from finmlops.features import feature_names
    from finmlops.monitoring.drift import compare

    mon = settings.monitoring
    features = _Features(settings, dataset)
    names = (list(card.reference["feature_names"]) if card is not None and card.reference
             else feature_names("full", settings.features.context))
    predictor = (model, card.feature_names) if (
        model is not None and card is not None and PREDICTION in (card.reference or {})) else None
    window = _live_window(settings, names, features, live, start, end, predictor)
    if card is not None and card.reference is not None:
        reference = card.reference
        ref_source = reference_source or f"model {card.variant}"
    else:
        until = reference_until or settings.train.cutoff or (
            (start - dt.timedelta(days=1)) if start else None)
        reference, ref_source = _bars_reference(settings, names, features, until,
                                                len(window.values))
    result = compare(reference, window.values, mon.psi_threshold, mon.ks_alpha,
                     predictions=window.predictions, bins=mon.bins, changes=window.changes)
    dates = window.dates
    first = str(dates.min().date()) if dates is not None and len(dates) else None
    last = str(dates.max().date()) if dates is not None and len(dates) else None
    return DriftReport(ref_source, window.source, len(window.values), first, last, result)
