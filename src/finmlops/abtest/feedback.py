"""Which realised outcomes to record as feedback: the return of (ticker, as-of date).

A scheduled job does not know the prediction ids the service handed out, but every request
carries ``parameters.routing_key = "<ticker>:<YYYY-MM-DD>"``, so the outcome is addressed by
that key. The return of ``D`` is what a one-day position decided at ``D``'s close earns when
filled as ``evaluation.execution`` says (by default bought at the next open and sold at the
open after), exactly as in the backtest and the replay; nothing after its exit bar is read.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from finmlops.abtest.replay import routing_key
from finmlops.config import Settings
from finmlops.errors import ConfigError, DataValidationError


@dataclass(frozen=True)
class RealisedOutcome:
    """The realised forward return of one (ticker, as-of date)."""

    ticker: str
    date: dt.date
    until: dt.date
    """The bar whose price ends the position."""
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
                      execution: str = "next_open") -> list[RealisedOutcome]:
    """One outcome per ticker for ``day``, or, when ``day`` is None, for each ticker's newest
    date whose return is known: the return a position decided at that date's close earns when
    filled as ``execution`` says (:func:`finmlops.evaluation.execution_returns`, the
    backtest's own rule) — held one day, whatever the label horizon.

    ``bars`` follows docs/CONTRACTS.md. Raises :class:`DataValidationError` when a ticker has
    no bars, no bar on ``day``, or no exit price yet."""
    from finmlops.evaluation import execution_returns

    held = {"same_close": 1, "next_open": 2, "next_close": 2}[execution]
    """Bars after the as-of date until the exit price exists."""
    out: list[RealisedOutcome] = []
    for ticker in tickers:
        rows = bars[bars["ticker"] == ticker]
        if rows.empty:
            raise DataValidationError(f"no bars for {ticker} in the dataset")
        returns = execution_returns(rows, execution)  # type: ignore[arg-type]
        dates = [d.date() for d in returns["date"]]
        values = returns["return"].to_numpy(dtype=np.float64)
        if day is None:
            known = np.flatnonzero(np.isfinite(values))
            if known.size == 0:
                raise DataValidationError(
                    f"{ticker} has {len(dates)} bar(s): no return is known yet ({execution} "
                    f"needs {held} bar(s) after the as-of date)")
            i = int(known[-1])
        else:
            try:
                i = dates.index(day)
            except ValueError:
                raise DataValidationError(
                    f"{ticker} has no bar on {day.isoformat()} (not a trading day, or not "
                    "ingested)") from None
            if not math.isfinite(values[i]):
                raise DataValidationError(
                    f"the return of {ticker} on {day.isoformat()} is not known yet: "
                    f"{execution} needs {held} bar(s) after it")
        out.append(RealisedOutcome(ticker, dates[i], dates[i + held], float(values[i])))
    return out


def record_realised(settings: Settings, url: str | None, day: dt.date | None,
                    tickers: Sequence[str] | None, actor: str, *,
                    since: dt.date | None = None,
                    dataset: str | None = None) -> dict[str, Any]:
    """The realised outcomes of ``tickers`` (default ``features.target``) from ``dataset``
    (default: the newest version), filled as ``evaluation.execution`` says (the outcome the
    replay posts) — of ``day``, or with ``since`` of every as-of date from it whose return is
    known: posted in one batch to the service at ``url``, or, with ``url`` None, written
    straight into ``ledger.url`` as ``actor``'s. ``{target, dataset_version, posted,
    answer}``."""
    from finmlops.abtest.client import ServiceClient
    from finmlops.data import get_manifest, read_bars
    from finmlops.ledger import Feedback, open_ledger, redact

    names = list(settings.features.target) if tickers is None else list(tickers)
    if not names:
        raise ConfigError("--tickers names no ticker")
    manifest = get_manifest(settings, dataset)
    bars = read_bars(settings, manifest.version, names)
    execution = settings.evaluation.execution
    if since is None:
        outcomes = realised_outcomes(bars, names, day, execution)
    else:
        outcomes = _realised_since(bars, names, since, execution)
    if url is None:
        target = settings.ledger_url
        ledger = open_ledger(target, create=False, timeout_s=settings.ledger.write_timeout_s)
        try:
            answer = ledger.apply_feedback(
                [Feedback(o.forward_return, o.direction, routing_key=o.routing_key)
                 for o in outcomes], actor, settings.evaluation).to_json()
        finally:
            ledger.close()
        target = redact(target)
    else:
        with ServiceClient.of(settings, url) as client:
            target, answer = url, client.feedback([o.payload() for o in outcomes])
    return {"target": target, "dataset_version": manifest.version,
            "posted": [o.to_json() for o in outcomes], "answer": answer}


def _realised_since(bars: Any, names: Sequence[str], since: dt.date,
                    execution: str) -> list[RealisedOutcome]:
    """Every as-of date from ``since`` to each ticker's newest known outcome (a day without a
    return, at a gap, is left out): what a daily job posts after missed days."""
    outcomes: list[RealisedOutcome] = []
    for ticker in names:
        newest = realised_outcomes(bars, [ticker], None, execution)[0].date
        rows = bars[bars["ticker"] == ticker]
        for d in sorted({d.date() for d in rows["date"] if since <= d.date() <= newest}):
            try:
                outcomes += realised_outcomes(bars, [ticker], d, execution)
            except DataValidationError:  # a gap: that day has no return to record
                continue
    return outcomes
