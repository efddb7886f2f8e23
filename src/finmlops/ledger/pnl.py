"""The A/B P&L: each arm's positions and net returns, by the backtest's own rule.

Each arm holds its own position series per entity (the ticker of ``"TICKER:DAY"``): every
prediction the arm scored for that entity — the ones it served and, with shadow scoring, the
ones it only scored — one per day (the first, if a key was sent twice), oldest first. Pinned
predictions are not part of any series. The series goes through
:func:`finmlops.evaluation.run_backtest` with ``settings.evaluation`` (rule, threshold, dead
band, per-unit costs on ``|Δposition|``), so an outcome's net return is
``position * r - cost(|position - that arm's previous position for the entity|)``, exactly as
in the backtest. Market impact needs volumes the ledger does not hold, so the A/B charges the
linear costs only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from finmlops.config import EvaluationSettings

ROW_COLUMNS = ["prediction_id", "ts", "day", "entity", "keyed", "config_version",
               "assignment", "arm", "served", "model_version", "probability",
               "realized_return", "direction"]
"""What :meth:`~finmlops.ledger.Ledger.score_rows` returns, one row per (prediction, arm)."""

OUTCOME_COLUMNS = ["request_id", "day", "arm", "served", "hit", "net_return", "position",
                   "entity", "config_version"]
"""One row per (prediction, arm) with a realised return: what the A/B statistics read."""


def outcome_frame(rows: Sequence[Sequence[Any]] | pd.DataFrame,
                  evaluation: EvaluationSettings) -> pd.DataFrame:
    """Positions and net returns of every (prediction, arm) in ``rows`` (non-pinned scores
    with their realised return, NaN when none yet); returns the rows that have an outcome."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows),
                                                                  columns=ROW_COLUMNS)
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _EMPTY.items()})
    df = df.sort_values(["arm", "entity", "day", "ts", "prediction_id"], kind="stable")
    # One decision per entity and day: a keyed prediction sent again that day is not traded.
    first = ~(df["keyed"].astype(bool) & df.duplicated(["arm", "entity", "day"]))
    df = df[first].reset_index(drop=True)
    realized = df["realized_return"].to_numpy(dtype=np.float64)
    known = np.isfinite(realized)
    prob = df["probability"].to_numpy(dtype=np.float64)
    position = np.empty(len(df))
    net = np.empty(len(df))
    keys = df["arm"].astype(str) + "\x00" + df["entity"].astype(str)
    for idx in keys.groupby(keys, sort=False).indices.values():
        pos_i, net_i = series_pnl(prob[idx], realized[idx], evaluation)
        position[idx] = pos_i
        net[idx] = net_i
    direction = df["direction"].to_numpy(dtype=np.float64)
    hit = (prob > evaluation.threshold) == (direction == 1)
    out = pd.DataFrame({
        "request_id": df["prediction_id"].astype(str), "day": df["day"].astype(str),
        "arm": df["arm"].astype(str), "served": df["served"].astype(bool), "hit": hit,
        "net_return": net, "position": position, "entity": df["entity"].astype(str),
        "config_version": df["config_version"]})
    out = out[known].sort_values(["day", "request_id", "arm"], kind="stable")
    result: pd.DataFrame = out.reset_index(drop=True)
    return result


_EMPTY = {"request_id": object, "day": object, "arm": object, "served": bool, "hit": bool,
          "net_return": float, "position": float, "entity": object, "config_version": float}


def series_pnl(probability: np.ndarray, realized: np.ndarray, evaluation: EvaluationSettings
               ) -> tuple[np.ndarray, np.ndarray]:
    """Positions and net returns of one arm's series for one entity (oldest first); a day
    whose return is not known yet (NaN) still holds its position and pays its trade."""
    from finmlops.evaluation import run_backtest

    r = np.where(np.isfinite(realized), realized, 0.0)
    result = run_backtest(probability, r, evaluation)
    return result.position, result.net


def next_outcome(previous_decided: float | None, probability: float, realized: float,
                 evaluation: EvaluationSettings) -> float:
    """The net return of one new outcome from the arm's latest earlier *decided* probability
    for the entity (outside the dead band; with no dead band, simply the previous one): the
    same rule as :func:`series_pnl` on the whole series, in O(1)."""
    if previous_decided is None:
        return float(series_pnl(np.array([probability]), np.array([realized]), evaluation)[1][0])
    _, net = series_pnl(np.array([previous_decided, probability]), np.array([0.0, realized]),
                        evaluation)
    return float(net[1])


def decided_bounds(evaluation: EvaluationSettings) -> tuple[float, float]:
    """``(low, high)``: a probability above ``high`` or at most ``low`` decides a position;
    in between (the dead band) the previous position is kept."""
    return evaluation.threshold - evaluation.dead_band, evaluation.threshold + evaluation.dead_band
