"""Ingest: fetch bars from a source, validate all of them, publish them as a version.

Nothing is written unless every bar passes validation, so a bad download never becomes a
dataset version.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from finmlops.config import Settings
from finmlops.data._source import Source
from finmlops.data.manifest import Manifest
from finmlops.data.schema import TICKER_PATTERN, validate_bars
from finmlops.data.sources import make_source
from finmlops.data.store import DatasetStore, ProgressFn, no_progress
from finmlops.errors import ConfigError, SourceError


@dataclass(frozen=True)
class IngestResult:
    manifest: Manifest
    created: bool
    """False when the store already held identical content."""

    @property
    def version(self) -> str:
        return self.manifest.version

    def summary(self) -> str:
        m = self.manifest
        state = "" if self.created else ", unchanged"
        return (f"version {m.version} ({len(m.tickers)} ticker{'s' if len(m.tickers) != 1 else ''}"
                f", {m.rows:,} rows, {m.start}..{m.end}{state})")


def ingest(settings: Settings, *, source: Source | None = None,
           tickers: Sequence[str] | None = None, start: dt.date | None = None,
           end: dt.date | None = None, progress: ProgressFn | None = None,
           store: DatasetStore | None = None) -> IngestResult:
    """Fetch, validate and store; arguments left as None come from ``settings.data``."""
    report = progress or no_progress
    data = settings.data
    src = source or make_source(settings)
    names = [t.strip().upper() for t in (tickers or data.tickers) if t.strip()]
    odd = [t for t in names if not re.fullmatch(TICKER_PATTERN, t)]
    if odd:  # checked before any request: a ticker becomes part of a URL and a file name
        raise ConfigError(f"invalid ticker {odd[0]!r}: use 1-20 of A-Z 0-9 . - ^ =")
    first = start or data.start
    last = end or data.end
    if last is not None and last < first:
        raise ConfigError(f"the end date {last} is before the start date {first}")
    frames = []
    for i, ticker in enumerate(names):
        report(f"fetching {ticker} from {src.name}", i, len(names))
        frame = src.fetch([ticker], first, last)
        if frame.empty:
            raise SourceError(f"{src.name}: no bars for {ticker} between {first} and "
                              f"{last or 'today'}")
        frames.append(frame)
    report("validating", len(names), len(names))
    bars = validate_bars(pd.concat(frames), source=f"{src.name} bars")
    result = (store or DatasetStore.from_settings(settings)).publish(
        bars, source=src.name, progress=report)
    return IngestResult(result.manifest, result.created)
