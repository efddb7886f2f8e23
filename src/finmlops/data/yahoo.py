"""Yahoo Finance's v8 chart API, called directly (no yfinance): daily OHLCV plus adjclose.

Timestamps are the session's open in UTC; converted to the exchange's timezone they give the
trading day. Bars with a null field (holidays, halts Yahoo pads) are dropped.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from typing import Any, TypedDict

import pandas as pd

from finmlops.data._source import HttpSource, QueryParams
from finmlops.data.schema import BAR_COLUMNS
from finmlops.errors import SourceError

BASE_URL = "https://query2.finance.yahoo.com"
CHART_PATH = "/v8/finance/chart/{ticker}"
CHART_URL = BASE_URL + CHART_PATH


class ChartMeta(TypedDict, total=False):
    """The fields of a chart result's ``meta`` that place its timestamps on trading days."""

    exchangeTimezoneName: str
    gmtoffset: int


class YahooSource(HttpSource):
    """One chart request per ticker over ``[start, end]``."""

    name = "yahoo"

    def url(self, ticker: str) -> str:
        """``data.source_url`` + the chart path, else the public endpoint."""
        template = self.base_url.rstrip("/") + CHART_PATH if self.base_url else CHART_URL
        return template.format(ticker=ticker)

    def params(self, ticker: str, start: dt.date | None, end: dt.date | None) -> QueryParams:
        return chart_params(start, end)

    def parse(self, body: str, ticker: str) -> pd.DataFrame:
        return parse_chart(body, ticker)

    def error_detail(self, body: str) -> str:
        """Yahoo's own description of the error, e.g. `` (No data found)``."""
        return _yahoo_error(body)


def chart_params(start: dt.date | None, end: dt.date | None) -> QueryParams:
    """Query parameters: ``period2`` is exclusive, so it is the day after ``end``."""
    first = start or dt.date(1970, 1, 2)
    last = end or dt.datetime.now(dt.UTC).date()
    return {
        "period1": calendar.timegm(first.timetuple()),
        "period2": calendar.timegm((last + dt.timedelta(days=1)).timetuple()),
        "interval": "1d",
        "events": "div,split",
    }


def parse_chart(body: str, ticker: str) -> pd.DataFrame:
    """Bars from a chart response body; :class:`SourceError` for anything else."""
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        raise SourceError(f"yahoo {ticker}: response is not valid JSON "
                          f"(truncated? {len(body)} bytes)") from None
    try:
        chart = doc["chart"]
        if chart.get("error"):
            raise SourceError(f"yahoo {ticker}: {_describe(chart['error'])}")
        result = chart["result"][0]
        meta = result.get("meta", {})
        stamps = result.get("timestamp") or []
        quote = result["indicators"]["quote"][0] if stamps else {}
        adj = (result["indicators"].get("adjclose") or [{}])[0].get("adjclose") if stamps else []
    except (KeyError, IndexError, TypeError, AttributeError):
        raise SourceError(f"yahoo {ticker}: response is not a chart result") from None
    if not stamps:
        return pd.DataFrame(columns=list(BAR_COLUMNS))
    n = len(stamps)
    cols = {c: quote.get(c) for c in ("open", "high", "low", "close", "volume")}
    cols["adj_close"] = adj if adj is not None else cols["close"]
    if any(v is None or len(v) != n for v in cols.values()):
        raise SourceError(f"yahoo {ticker}: quote arrays are missing or do not match timestamps")
    frame = pd.DataFrame({c: pd.to_numeric(pd.Series(v, dtype=object), errors="coerce")
                          for c, v in cols.items()})
    frame.insert(0, "date", _trading_days(stamps, meta))
    frame.insert(0, "ticker", ticker)
    frame = frame.dropna()
    return frame.loc[:, list(BAR_COLUMNS)].reset_index(drop=True)


def _trading_days(stamps: list[int], meta: ChartMeta) -> pd.Series:
    utc = pd.to_datetime(pd.Series(stamps, dtype="int64"), unit="s", utc=True)
    tz = meta.get("exchangeTimezoneName")
    if tz:
        local = utc.dt.tz_convert(tz)
    else:
        local = utc + pd.Timedelta(seconds=int(meta.get("gmtoffset") or 0))
    return local.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")


def _describe(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("description") or error.get("code") or error)
    return str(error)


def _yahoo_error(body: str) -> str:
    try:
        err = json.loads(body)["chart"]["error"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return ""
    return f" ({_describe(err)})" if err else ""
