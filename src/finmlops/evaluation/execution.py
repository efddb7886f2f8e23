"""When a position is filled, told as it is: the return a decision taken at a close earns.

A model's features for day ``t`` use the bars of ``t``, its close included. The position it
decides can therefore be filled at:

- ``same_close``: the close of ``t`` itself, the very price the features used. Only a
  market-on-close order sent a few minutes before the bell comes near it, with inputs that
  are not quite the close; a backtest at this price flatters the model.
- ``next_open`` (the default): the open of ``t+1``, the first price an order computed after
  the close can trade at. The position is held until the next decision is filled, at the
  open of ``t+2``: it earns ``open[t+2] / open[t+1] - 1``, overnight gap and day together.
- ``next_close``: the close of ``t+1``, a full day late (a decision taken overnight and
  executed with a market-on-close order the next day).

Prices are dividend- and split-adjusted: ``adj_close`` directly, the open as
``open * adj_close / close`` (the same day's adjustment factor). Pure pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from finmlops.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

Execution = Literal["same_close", "next_open", "next_close"]
EXECUTIONS: tuple[str, ...] = get_args(Execution)
DESCRIPTIONS: dict[str, str] = {
    "same_close": "filled at the close of t, the price the features used (optimistic)",
    "next_open": "filled at the open of t+1, held to the open of t+2",
    "next_close": "filled at the close of t+1, held to the close of t+2 (one day late)",
}
_NEEDS: dict[str, tuple[str, ...]] = {
    "same_close": ("adj_close",),
    "next_open": ("open", "close", "adj_close"),
    "next_close": ("adj_close",),
}


def execution_returns(bars: pd.DataFrame, execution: Execution = "next_open") -> pd.DataFrame:
    """Per ticker and as-of date, the return a position decided at that date's close earns
    when filled as ``execution`` says: columns ``ticker, date, return`` sorted by ticker and
    date, ``return`` NaN for the last days, whose fill or exit price is not known yet.

    ``bars`` holds ``ticker, date`` and the prices ``execution`` needs (``adj_close``; also
    ``open`` and ``close`` for ``next_open``), one row per ticker and trading day.
    """
    import pandas as pd

    if execution not in EXECUTIONS:
        raise DataValidationError(
            f"execution must be one of {', '.join(EXECUTIONS)}, not {execution!r}")
    missing = [c for c in ("ticker", "date", *_NEEDS[execution]) if c not in bars.columns]
    if missing:
        raise DataValidationError(f"bars lack columns: {', '.join(missing)}")
    frame = bars.loc[:, ["ticker", "date", *_NEEDS[execution]]].copy()
    frame["ticker"] = frame["ticker"].astype(str)
    frame["date"] = pd.to_datetime(frame["date"])
    if frame.duplicated(["ticker", "date"]).any():
        raise DataValidationError("bars repeat a (ticker, date) row")
    frame = frame.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    adj = frame["adj_close"].to_numpy(np.float64)
    for col in _NEEDS[execution]:
        values = frame[col].to_numpy(np.float64)
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise DataValidationError("prices must be finite and positive")
    if execution == "next_open":
        price = frame["open"].to_numpy(np.float64) * adj / frame["close"].to_numpy(np.float64)
        entry = 1
    else:
        price = adj
        entry = 0 if execution == "same_close" else 1
    if not (np.isfinite(price).all() and (price > 0).all()):
        raise DataValidationError("prices must be finite and positive")
    series = pd.Series(price, index=frame.index)
    by = series.groupby(frame["ticker"], sort=False)
    fill, exit_ = by.shift(-entry), by.shift(-entry - 1)
    out = frame.loc[:, ["ticker", "date"]]
    out["return"] = (exit_ / fill - 1.0).to_numpy(np.float64)
    return out
