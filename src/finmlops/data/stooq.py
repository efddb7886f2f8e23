"""Stooq's daily CSV download (``Date,Open,High,Low,Close,Volume``).

Stooq's prices are already split- and dividend-adjusted, so ``adj_close`` is ``close``. Stooq
answers unknown symbols or throttled clients with 200 and a body such as "No data" or an HTML
page; anything that is not its CSV is a :class:`SourceError`, never half-parsed bars.
"""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd

from finmlops.data._source import HttpSource, QueryParams, parse_file_dates
from finmlops.data.schema import BAR_COLUMNS
from finmlops.errors import SourceError

BASE_URL = "https://stooq.com"
CSV_PATH = "/q/d/l/"
CSV_URL = BASE_URL + CSV_PATH
HEADER = ["Date", "Open", "High", "Low", "Close", "Volume"]


class StooqSource(HttpSource):
    """One CSV download per ticker (US listings: ``<ticker>.us``), always the whole history:
    the shared fetch loop filters it to ``[start, end]``."""

    name = "stooq"

    def url(self, ticker: str) -> str:
        return self.base_url.rstrip("/") + CSV_PATH if self.base_url else CSV_URL

    def params(self, ticker: str, start: dt.date | None, end: dt.date | None) -> QueryParams:
        return {"s": f"{ticker.lower()}.us", "i": "d"}

    def parse(self, body: str, ticker: str) -> pd.DataFrame:
        return parse_csv(body, ticker)


def parse_csv(body: str, ticker: str) -> pd.DataFrame:
    """Bars from a Stooq CSV body (CRLF or LF); :class:`SourceError` if it is not one."""
    text = body.lstrip("\ufeff")
    lines = text.splitlines()
    first = lines[0].strip() if lines else ""
    if [h.strip() for h in first.split(",")] != HEADER:
        snippet = " ".join(text.split())[:60] or "an empty body"
        raise SourceError(f"stooq {ticker}: not Stooq's daily CSV (got {snippet!r})")
    rows = [ln for ln in lines[1:] if ln.strip()]
    bad = [i + 2 for i, ln in enumerate(lines[1:]) if ln.strip() and ln.count(",") != 5]
    if bad:
        raise SourceError(f"stooq {ticker}: malformed line {bad[0]} (truncated body?)")
    if not rows:
        return pd.DataFrame(columns=list(BAR_COLUMNS))
    raw = pd.read_csv(io.StringIO("\n".join([first, *rows])), dtype=str)
    numbers = raw[HEADER[1:]].apply(pd.to_numeric, errors="coerce")
    dates = parse_file_dates(raw["Date"])
    if numbers.isna().any(axis=None) or dates.isna().any():
        line = int((numbers.isna().any(axis=1) | dates.isna()).to_numpy().argmax()) + 2
        raise SourceError(f"stooq {ticker}: malformed line {line} (truncated body?)")
    frame = pd.DataFrame({
        "ticker": ticker,
        "date": dates,
        "open": numbers["Open"],
        "high": numbers["High"],
        "low": numbers["Low"],
        "close": numbers["Close"],
        "adj_close": numbers["Close"],
        "volume": numbers["Volume"],
    })
    frame.index = frame.index + 2
    return frame.loc[:, list(BAR_COLUMNS)]
