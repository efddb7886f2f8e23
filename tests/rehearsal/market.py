"""A market for the rehearsal: synthetic daily bars with a planted lead-lag and, from a
chosen day, a planted shift; served over HTTP in Yahoo's v8 chart format.

The cluster's configuration ingests from Yahoo. No network is reachable here, so the rehearsal
points ``data.source_url`` (the one key its environment's config changes for this) at this
server, and the production Yahoo source parses its answers as it parses Yahoo's: the same
request (``/v8/finance/chart/<ticker>?period1&period2&interval=1d``), the same JSON shape
(``chart.result[0]``: ``meta.exchangeTimezoneName``, session-open ``timestamp``s,
``indicators.quote`` and ``adjclose``), the same trading-day conversion.

The bars are made so that the loop has something to decide: IBB's return on day t+1 follows
SPY's on day t (``LEAD``), which the ``enhanced`` variant sees (SPY's returns are among its
``full`` features) and the ``baseline`` does not (``core``: IBB's own history). Opens equal
the previous close, so the next-open fill earns exactly the next day's close-to-close move.
After ``shift_after``, volatility jumps (``SHIFT_VOL``) and SPY trends down: what the drift
check must catch.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

LEAD = 0.8
"""IBB's next-day return per unit of SPY's return today."""
SHIFT_VOL = 5.0
NEW_YORK = ZoneInfo("America/New_York")


def weekdays(start: dt.date, n: int) -> list[dt.date]:
    """``n`` weekdays from ``start`` (holidays are not modelled: every weekday trades)."""
    days = pd.bdate_range(start, periods=n)
    return [d.date() for d in days]


def synthetic_bars(days: list[dt.date], *, seed: int, shift_after: dt.date | None) -> pd.DataFrame:
    """IBB and SPY bars over ``days`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n = len(days)
    shifted = np.array([shift_after is not None and d > shift_after for d in days])
    vol = np.where(shifted, 0.01 * SHIFT_VOL, 0.01)
    spy = rng.normal(0.0004, 1.0, n) * vol + np.where(shifted, -0.01, 0.0)
    ibb = np.empty(n)
    ibb[0] = 0.0
    ibb[1:] = LEAD * spy[:-1] + rng.normal(0.0, 0.002, n - 1) * vol[1:] / 0.01
    frames = []
    for ticker, returns, base in (("SPY", spy, 200.0), ("IBB", ibb, 100.0)):
        close = base * np.cumprod(1.0 + returns)
        open_ = np.concatenate([[close[0]], close[:-1]])
        frames.append(pd.DataFrame({
            "ticker": ticker, "date": pd.to_datetime(days),
            "open": open_, "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998, "close": close, "adj_close": close,
            "volume": rng.integers(1_000_000, 2_000_000, n)}))
    return pd.concat(frames, ignore_index=True)


def chart_body(bars: pd.DataFrame, ticker: str, first: dt.date, last: dt.date) -> dict:
    """Yahoo's v8 chart answer for ``ticker`` over ``[first, last]``."""
    rows = bars[(bars["ticker"] == ticker) & (bars["date"].dt.date >= first)
                & (bars["date"].dt.date <= last)]
    stamps = [int(dt.datetime.combine(d.date(), dt.time(9, 30), NEW_YORK).timestamp())
              for d in rows["date"]]
    quote = {c: [round(float(v), 6) for v in rows[c]] for c in ("open", "high", "low", "close")}
    quote["volume"] = [int(v) for v in rows["volume"]]
    return {"chart": {"error": None, "result": [{
        "meta": {"symbol": ticker, "exchangeTimezoneName": "America/New_York",
                 "gmtoffset": -18000, "dataGranularity": "1d"},
        "timestamp": stamps,
        "indicators": {"quote": [quote],
                       "adjclose": [{"adjclose": [round(float(v), 6)
                                                  for v in rows["adj_close"]]}]}}]}}


@dataclass
class Market:
    """The bars the server answers with: everything up to ``until`` (the day's close)."""

    bars: pd.DataFrame
    until: dt.date
    requests: list[str] = field(default_factory=list)


@contextmanager
def yahoo_server(market: Market) -> Iterator[str]:
    """A loopback HTTP server answering ``/v8/finance/chart/<ticker>``; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            market.requests.append(url.path)
            prefix = "/v8/finance/chart/"
            if not url.path.startswith(prefix):
                self.send_error(404)
                return
            q = parse_qs(url.query)
            first = dt.datetime.fromtimestamp(int(q["period1"][0]), dt.UTC).date()
            last = dt.datetime.fromtimestamp(int(q["period2"][0]), dt.UTC).date() \
                - dt.timedelta(days=1)
            body = json.dumps(chart_body(market.bars, url.path[len(prefix):], first,
                                         min(last, market.until))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
