"""Which realised outcomes to post as feedback: the forward return of (ticker, as-of date).

A scheduled job does not know the request ids the service handed out, but every request carries
``parameters.routing_key = "<ticker>:<YYYY-MM-DD>"``, so the outcome is addressed by that key.
The forward return of ``D`` is ``adj_close[D + h] / adj_close[D] - 1``, ``D + h`` being the
``h``-th trading day after ``D`` in the ticker's own bars; nothing later than ``D + h`` is read.
``finmlops abtest feedback`` posts next-day outcomes (``h = 1``): each served signal is held for
one day, as in the replay and the backtest.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from finmlops.abtest.replay import routing_key
from finmlops.errors import DataValidationError


@dataclass(frozen=True)
class RealisedOutcome:
    """The realised forward return of one (ticker, as-of date)."""

    ticker: str
    date: dt.date
    until: dt.date
    """The bar the return runs to (``horizon`` trading days after ``date``)."""
    forward_return: float

    @property
    def routing_key(self) -> str:
        return routing_key(self.ticker, self.date)

    @property
    def direction(self) -> int:
        return 1 if self.forward_return > 0 else 0

    def payload(self) -> dict[str, Any]:
        """One outcome of a ``POST /v2/feedback`` body, addressed by routing key."""
        return {"routing_key": self.routing_key, "realized_return": self.forward_return,
                "direction": self.direction}

    def to_json(self) -> dict[str, Any]:
        return {"ticker": self.ticker, "date": self.date.isoformat(),
                "until": self.until.isoformat(), **self.payload()}


def realised_outcomes(bars: Any, tickers: Sequence[str], day: dt.date | None = None,
                      horizon: int = 1) -> list[RealisedOutcome]:
    """One outcome per ticker for ``day``, or, when ``day`` is None, for each ticker's newest
    date whose forward return is known (the last bar that has ``horizon`` bars after it).

    ``bars`` follows docs/CONTRACTS.md (``ticker``, ``date``, ``adj_close``). Raises
    :class:`DataValidationError` when a ticker has no bars, no bar on ``day``, no bar
    ``horizon`` trading days later yet, or a non-positive price.
    """
    if horizon < 1:
        raise DataValidationError("horizon must be at least 1")
    out: list[RealisedOutcome] = []
    for ticker in tickers:
        rows = bars[bars["ticker"] == ticker]
        if rows.empty:
            raise DataValidationError(f"no bars for {ticker} in the dataset")
        dates = [d.date() for d in rows["date"]]
        prices = rows["adj_close"].to_numpy(dtype=np.float64)
        if day is None:
            i = len(dates) - 1 - horizon
            if i < 0:
                raise DataValidationError(
                    f"{ticker} has {len(dates)} bar(s): no forward return over {horizon} "
                    "trading day(s) is known yet")
        else:
            try:
                i = dates.index(day)
            except ValueError:
                raise DataValidationError(
                    f"{ticker} has no bar on {day.isoformat()} (not a trading day, or not "
                    "ingested)") from None
            if i + horizon >= len(dates):
                raise DataValidationError(
                    f"the forward return of {ticker} on {day.isoformat()} is not known yet: "
                    f"no bar {horizon} trading day(s) later")
        j = i + horizon
        start, end = float(prices[i]), float(prices[j])
        if not (start > 0 and math.isfinite(start) and end > 0 and math.isfinite(end)):
            raise DataValidationError(
                f"{ticker}: adj_close must be positive on {dates[i]} and {dates[j]}")
        out.append(RealisedOutcome(ticker, dates[i], dates[j], end / start - 1.0))
    return out
