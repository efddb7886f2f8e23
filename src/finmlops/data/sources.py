"""Where bars come from: one :class:`Source` interface, four implementations, and
:func:`make_source`, which picks the one the settings name.

Every source returns a frame with the bar columns (``ticker, date, open, high, low, close,
adj_close, volume``), ``date`` as naive midnight timestamps, filtered to ``[start, end]``.
Its index labels rows in the source (a line number for files), which validation errors cite.
Sources do not validate: :func:`finmlops.data.schema.validate_bars` does, for all of them.

The ``csv`` source reads a local file in the documented bar format, UTF-8, comma-separated,
one header line, ISO dates (``YYYY-MM-DD``)::

    ticker,date,open,high,low,close,adj_close,volume
    IBB,2020-01-02,84.50,85.10,84.00,85.00,82.10,1200300

or the per-ticker format (the same without ``ticker``; the ticker then comes from ``--ticker``,
or else the file name, e.g. ``IBB.csv``). ``adj_close`` may be omitted, in which case it equals
``close``. Extra columns are ignored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import httpx
import pandas as pd

from finmlops.config import Settings
from finmlops.data._http import RetryingClient
from finmlops.data._source import (
    HttpSource,
    Source,
    concat_bars,
    filter_dates,
    parse_file_dates,
)
from finmlops.data.schema import BAR_COLUMNS
from finmlops.data.stooq import StooqSource
from finmlops.data.yahoo import YahooSource
from finmlops.errors import ConfigError, SourceError

NETWORK_SOURCES: dict[str, type[HttpSource]] = {"yahoo": YahooSource, "stooq": StooqSource}
"""The sources fetched over HTTP, by the ``data.source`` that names them."""


class BundledSource:
    """The IBB and SPY history shipped inside the package (offline, the default)."""

    name = "bundled"

    @staticmethod
    def available() -> list[str]:
        folder = resources.files("finmlops.data").joinpath("bundled")
        return sorted(p.name.split(".")[0] for p in folder.iterdir()
                      if p.name.endswith(".csv.gz"))

    def fetch(self, tickers: Sequence[str], start: dt.date | None,
              end: dt.date | None) -> pd.DataFrame:
        have = self.available()
        unknown = [t for t in tickers if t.upper() not in have]
        if unknown:
            raise SourceError(f"not bundled: {', '.join(unknown)} (bundled tickers: "
                              f"{', '.join(have)}; use --source yahoo, stooq or csv)")
        frames = []
        for t in tickers:
            res = resources.files("finmlops.data").joinpath("bundled", f"{t.upper()}.csv.gz")
            with res.open("rb") as fh:
                df = pd.read_csv(fh, compression="gzip")
            df.index = df.index + 2  # line number in the file (line 1 is the header)
            df.insert(0, "ticker", t.upper())
            df["date"] = parse_file_dates(df["date"])
            frames.append(filter_dates(df, start, end))
        return concat_bars(frames)


class CsvSource:
    """A local CSV file in the bar format (see the module docstring)."""

    name = "csv"

    def __init__(self, path: Path, ticker: str | None = None) -> None:
        self.path = Path(path)
        self.ticker = ticker.strip().upper() if ticker else None
        self._frame: pd.DataFrame | None = None

    def file_ticker(self) -> str | None:
        """The ticker of a per-ticker file (``--ticker`` or the file name); None for long files."""
        try:
            header = pd.read_csv(self.path, nrows=0).columns
        except (OSError, ValueError):
            return None
        if "ticker" in {str(c).strip().lower() for c in header}:
            return None
        return self.ticker or self.path.name.split(".")[0].upper()

    def fetch(self, tickers: Sequence[str], start: dt.date | None,
              end: dt.date | None) -> pd.DataFrame:
        df = self._load()
        wanted = {t.upper() for t in tickers}
        absent = sorted(wanted - set(df["ticker"]))
        if absent:
            raise SourceError(f"{self.path}: no rows for {', '.join(absent)} "
                              f"(file has: {', '.join(sorted(set(df['ticker']))) or 'none'})")
        df = df.loc[df["ticker"].isin(wanted)]
        return concat_bars([filter_dates(df, start, end)])

    def _load(self) -> pd.DataFrame:
        """The file's bars, parsed once: ingest fetches one ticker at a time."""
        if self._frame is not None:
            return self._frame
        if self.path.is_dir():
            raise SourceError(f"{self.path} is a directory, not a CSV file")
        if not self.path.is_file():
            raise SourceError(f"csv file not found: {self.path}")
        try:
            df = pd.read_csv(self.path, dtype=str, keep_default_na=True, skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise SourceError(
                f"{self.path}: not a readable CSV file ({_first_line(exc)})") from None
        df.columns = [str(c).strip().lower() for c in df.columns]
        df.index = df.index + 2
        if "adj_close" not in df.columns and "close" in df.columns:
            df["adj_close"] = df["close"]
        if "ticker" not in df.columns:
            df.insert(0, "ticker", self.file_ticker())
        elif self.ticker is not None:
            df = df.loc[df["ticker"].astype(str).str.strip().str.upper() == self.ticker]
        need = [c for c in BAR_COLUMNS if c not in df.columns]
        if need:
            raise SourceError(f"{self.path}: missing column(s) {', '.join(need)}; expected "
                              f"{','.join(BAR_COLUMNS)} (ticker optional)")
        df["ticker"] = df["ticker"].astype(str).str.strip().str.upper()
        df["date"] = parse_file_dates(df["date"])
        self._frame = df
        return df


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def make_source(settings: Settings, *, ticker: str | None = None,
                transport: httpx.BaseTransport | None = None,
                sleep: Callable[[float], None] | None = None) -> Source:
    """The source ``settings.data.source`` names; ``transport``/``sleep`` are for tests."""
    data = settings.data
    if data.source == "bundled":
        return BundledSource()
    if data.source == "csv":
        if data.csv_path is None:
            raise ConfigError("data.source is 'csv' but data.csv_path is not set (use --csv PATH)")
        return CsvSource(data.csv_path, ticker=ticker)
    client = RetryingClient(timeout_s=data.timeout_s, max_retries=data.max_retries,
                            backoff_s=data.backoff_s, transport=transport)
    if sleep is not None:
        client.sleep = sleep
    return NETWORK_SOURCES[data.source](client, data.source_url)
