"""A universe of many tickers from bar files, with sectors, into the versioned store.

The files are the ``csv`` source's formats (a multi-ticker file with a ``ticker`` column, or
per-ticker ``TICKER.csv``). Bars breaking only the price-order rules (``high < open`` and the
like: vendor errors, e.g. HUBB and PEAK on 2021-05-05 in the S&P file) are dropped and
listed, so the day becomes a reported calendar gap instead of stopping the study; any other
violation (missing, non-positive, duplicate, unordered) stops it with one line, as ingest does.

Survivorship: a list of today's index members omits every company that left the index (or
failed) before today, so a study over it is biased towards survivors. The result says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from finmlops.config import Settings, UniverseSettings
from finmlops.data._source import filter_dates
from finmlops.data.schema import find_violations, validate_bars
from finmlops.data.sources import CsvSource
from finmlops.data.store import DatasetStore, ProgressFn
from finmlops.errors import ConfigError, SourceError

ORDER_RULES = frozenset({"high < low", "open < low", "close < low", "open > high",
                         "close > high"})
"""Violations a universe drops (the row becomes a gap) rather than refuses."""
UNKNOWN_SECTOR = "Unknown"
SURVIVORSHIP_NOTE = ("survivorship bias: the universe is a list of today's members; "
                     "companies that left it earlier are missing, which flatters any "
                     "strategy over it")


@dataclass(frozen=True)
class UniverseData:
    """What :func:`read_universe` found: valid bars and the rows it dropped."""

    bars: pd.DataFrame
    tickers: list[str]
    """The universe (without the context tickers), sorted."""
    context: list[str]
    dropped: list[str] = field(default_factory=list)
    """``TICKER YYYY-MM-DD: rule`` per dropped bar."""


def _file_bars(path: Path) -> pd.DataFrame:
    """Every bar of one file, parsed by the ``csv`` source's reader."""
    return CsvSource(path)._load()


def read_universe(universe: UniverseSettings) -> UniverseData:
    """The universe's and context's bars from ``universe.files``, within its dates."""
    if not universe.files:
        raise ConfigError("universe.files is empty: name the bar CSVs of the universe "
                          "(e.g. universe.files: [sp500.csv, SPY.csv])")
    frames = [_file_bars(Path(p)) for p in universe.files]
    raw = pd.concat(frames)
    present = set(raw["ticker"].astype(str))
    missing_ctx = [t for t in universe.context if t not in present]
    if missing_ctx:
        raise SourceError(f"no bars for the context ticker(s) {', '.join(missing_ctx)} in "
                          f"universe.files")
    if universe.tickers:
        absent = [t for t in universe.tickers if t not in present]
        if absent:
            raise SourceError(f"no bars for {', '.join(absent[:5])}"
                              f"{' and more' if len(absent) > 5 else ''} in universe.files")
        names = sorted(universe.tickers)
    else:
        names = sorted(present - set(universe.context))
    if not names:
        raise ConfigError("the universe is empty: universe.files hold only context tickers")
    wanted = set(names) | set(universe.context)
    raw = raw.loc[raw["ticker"].isin(wanted)]
    raw = filter_dates(raw, universe.start, universe.end).reset_index(drop=True)
    violations = find_violations(raw)
    order_rows = sorted({int(str(v.row)) for v in violations if v.rule in ORDER_RULES})
    dropped = [f"{v.ticker} {v.date}: {v.rule}" for v in violations if v.rule in ORDER_RULES]
    dropped = list(dict.fromkeys(dropped))
    kept = raw.drop(index=order_rows)
    bars = validate_bars(kept, source="universe bars")
    return UniverseData(bars=bars, tickers=names, context=list(universe.context),
                        dropped=dropped)


def read_sectors(path: Path | None, tickers: Sequence[str]) -> dict[str, str]:
    """``{ticker: GICS sector}`` from a constituents CSV (``Symbol``, ``GICS Sector``);
    tickers it lacks (or every one, without a file) are :data:`UNKNOWN_SECTOR`."""
    found: dict[str, str] = {}
    if path is not None:
        if not Path(path).is_file():
            raise SourceError(f"sectors file not found: {path}")
        try:
            frame = pd.read_csv(path, dtype=str)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            raise SourceError(f"{path}: not a readable CSV file") from None
        cols = {c.strip().lower(): c for c in frame.columns}
        sym, sec = cols.get("symbol"), cols.get("gics sector")
        if sym is None or sec is None:
            raise SourceError(f"{path}: needs the columns Symbol and GICS Sector")
        for s, g in zip(frame[sym], frame[sec], strict=True):
            if isinstance(s, str) and isinstance(g, str):
                found[s.strip().upper()] = g.strip()
    return {t: found.get(t, UNKNOWN_SECTOR) for t in tickers}


def ingest_universe(settings: Settings, *, progress: ProgressFn | None = None,
                    now: dt.datetime | None = None) -> tuple[str, UniverseData]:
    """Read the universe and publish it as a dataset version (identical content is found,
    not rewritten); returns the version and what was read."""
    data = read_universe(settings.universe)
    result = DatasetStore.from_settings(settings).publish(
        data.bars, source="csv", progress=progress, now=now)
    return result.manifest.version, data
