"""What a replay sends: the held-out days' full-feature windows, built exactly as a live
client on each day could have built them, and the outcome of each (day, ticker)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from finmlops.abtest.replay import ReplayInput
from finmlops.config import Settings
from finmlops.errors import StageError


def replay_period(settings: Settings, start: dt.date | None = None,
                  end: dt.date | None = None) -> tuple[dt.date, dt.date | None]:
    """``abtest.replay_start`` (default: the day after ``train.cutoff``) to ``replay_end``."""
    first = start or settings.abtest.replay_start
    if first is None:
        if settings.train.cutoff is None:
            raise StageError("no replay period: set abtest.replay_start (train.cutoff is None)")
        first = settings.train.cutoff + dt.timedelta(days=1)
    last = end or settings.abtest.replay_end
    if last is not None and last < first:
        raise StageError(f"replay period is empty: {first} > {last}")
    return first, last


def configured_signature(settings: Settings) -> tuple[int, list[str]]:
    """``(W, feature names)`` the configured variants share: the longest window of the
    experiment's candidates over the full feature list."""
    from finmlops.features import feature_names

    window = max(settings.train.variants[name].window
                 for name in settings.experiment.candidate_names)
    return window, feature_names("full", settings.features.context)


def build_replay_input(settings: Settings, bars: Any, window: int, names: list[str],
                       start: dt.date, end: dt.date | None) -> ReplayInput:
    """Full-feature windows ``[n, W, F]``, dates, tickers and forward returns of the period."""
    import numpy as np

    from finmlops.evaluation import execution_returns
    from finmlops.features import build_features, make_windows, window_ends

    f = settings.features
    frame = build_features(bars, f.target, f.context, horizon=1)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise StageError(f"the models expect features the data lacks: {', '.join(missing)}")
    ends = window_ends(frame["ticker"], window, frame["session"])  # none across a gap
    dates = frame["date"].to_numpy()[ends]
    keep = dates >= np.datetime64(start)
    if end is not None:
        keep &= dates <= np.datetime64(end)
    ends = ends[keep]
    if ends.size == 0:
        raise StageError(f"no trading days to replay from {start} to {end or 'the end'}")
    windows = make_windows(frame[names].to_numpy(dtype="float64"), ends, window)
    # Each served signal is a one-day position filled as the backtest fills it
    # (evaluation.execution), whatever the label horizon.
    realised = execution_returns(bars[bars["ticker"].isin(f.target)],
                                 settings.evaluation.execution)
    at = frame[["ticker", "date"]].iloc[ends].merge(realised, on=["ticker", "date"],
                                                   how="left")
    fwd = at["return"].to_numpy(dtype="float64")
    return ReplayInput(windows=windows,
                       dates=[d.date() for d in frame["date"].iloc[ends]],
                       tickers=[str(t) for t in frame["ticker"].iloc[ends]],
                       forward_returns=fwd)
