"""What every source shares: the :class:`Source` interface, the frame helpers, and
:class:`HttpSource`, the fetch loop of the network sources.

The sources (``sources.py``, ``yahoo.py``, ``stooq.py``) import this module and it imports none
of them, so the registry in ``sources.py`` imports the network sources without a cycle.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import pandas as pd

from finmlops.data._http import RetryingClient
from finmlops.data.schema import BAR_COLUMNS
from finmlops.errors import SourceError

QueryParams = dict[str, str | int]


@runtime_checkable
class Source(Protocol):
    """Fetches daily bars for some tickers over a date range (both ends inclusive)."""

    name: str

    def fetch(self, tickers: Sequence[str], start: dt.date | None,
              end: dt.date | None) -> pd.DataFrame: ...


def filter_dates(bars: pd.DataFrame, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    """Rows within ``[start, end]``; unparseable dates (NaT) are kept for validation to report."""
    dates = bars["date"]
    keep = pd.Series(True, index=bars.index)
    if start is not None:
        keep &= dates.isna() | (dates >= pd.Timestamp(start))
    if end is not None:
        keep &= dates.isna() | (dates <= pd.Timestamp(end))
    return bars.loc[keep]


def parse_file_dates(col: pd.Series) -> pd.Series:
    """ISO dates (``YYYY-MM-DD``) as timestamps; anything else becomes NaT for validation."""
    return pd.to_datetime(col.astype(str).str.strip(), format="%Y-%m-%d", errors="coerce")


def concat_bars(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames of several tickers as one, in the bar columns (no rows for no frames)."""
    out = pd.concat(frames) if frames else pd.DataFrame(columns=list(BAR_COLUMNS))
    return out.loc[:, list(BAR_COLUMNS)]


class HttpSource(ABC):
    """A network source: one GET per ticker through a :class:`RetryingClient`, an HTTP error
    status turned into a :class:`SourceError`, the body parsed and filtered to the dates.

    A subclass says only what is its own: where to ask (:meth:`url`, :meth:`params`), how to
    read the answer (:meth:`parse`) and what an error body adds (:meth:`error_detail`)."""

    name: str

    def __init__(self, client: RetryingClient | None = None,
                 base_url: str | None = None) -> None:
        self.client = client or RetryingClient()
        self.base_url = base_url
        """``data.source_url``: another host serving the same API (a mirror, a test server)."""

    def fetch(self, tickers: Sequence[str], start: dt.date | None,
              end: dt.date | None) -> pd.DataFrame:
        frames = []
        for t in tickers:
            ticker = t.upper()
            what = f"{self.name} {ticker}"
            response = self.client.get(self.url(ticker), params=self.params(ticker, start, end),
                                       what=what)
            if response.status_code >= 400:
                raise SourceError(f"{what}: HTTP {response.status_code}"
                                  f"{self.error_detail(response.text)}")
            frames.append(filter_dates(self.parse(response.text, ticker), start, end))
        return concat_bars(frames)

    @abstractmethod
    def url(self, ticker: str) -> str:
        """The URL to GET for ``ticker`` (upper case)."""

    @abstractmethod
    def params(self, ticker: str, start: dt.date | None, end: dt.date | None) -> QueryParams:
        """The query parameters of that request."""

    @abstractmethod
    def parse(self, body: str, ticker: str) -> pd.DataFrame:
        """Bars from a successful response body; :class:`SourceError` when it holds none."""

    def error_detail(self, body: str) -> str:
        """What to add to ``HTTP <status>`` from an error response's body (nothing by default)."""
        return ""
