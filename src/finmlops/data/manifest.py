"""Dataset versions: the content hash that names them and the manifest that describes them.

Pure: no I/O. The version hashes the canonical content (bars sorted by ticker and date, fixed
dtypes, little-endian), not Parquet bytes, so the same data is the same version whatever
library wrote the files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from finmlops.data.schema import PRICE_COLUMNS, canonical

MANIFEST_FORMAT = 1
_HASH_DOMAIN = b"finmlops-bars-v1\x00"


def content_version(bars: pd.DataFrame) -> str:
    """The first 16 hex digits of sha256 over the canonical content of valid ``bars``."""
    c = canonical(bars)
    h = hashlib.sha256(_HASH_DOMAIN)
    h.update(len(c).to_bytes(8, "little"))
    h.update("\n".join(c["ticker"].tolist()).encode("utf-8") + b"\x00")
    h.update(c["date"].to_numpy(dtype="datetime64[ns]").view("<i8").tobytes())
    for col in PRICE_COLUMNS:
        h.update(col.encode() + b"\x00")
        h.update(np.ascontiguousarray(c[col].to_numpy(dtype="<f8")).tobytes())
    h.update(b"volume\x00" + np.ascontiguousarray(c["volume"].to_numpy(dtype="<i8")).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class TickerRange:
    start: str
    end: str
    rows: int


@dataclass(frozen=True)
class FileEntry:
    ticker: str
    sha256: str
    bytes: int
    rows: int


@dataclass(frozen=True)
class Manifest:
    """What a published version holds; written last, so its presence marks a valid version."""

    version: str
    source: str
    tickers: list[str]
    ranges: dict[str, TickerRange]
    rows: int
    files: dict[str, FileEntry]
    created_at: str
    finmlops_version: str
    format: int = MANIFEST_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def start(self) -> str:
        return min(r.start for r in self.ranges.values()) if self.ranges else ""

    @property
    def end(self) -> str:
        return max(r.end for r in self.ranges.values()) if self.ranges else ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Parse a manifest; ``KeyError``/``TypeError``/``ValueError`` when it is not one."""
        return cls(
            version=str(data["version"]),
            source=str(data["source"]),
            tickers=[str(t) for t in data["tickers"]],
            ranges={k: TickerRange(**v) for k, v in data["ranges"].items()},
            rows=int(data["rows"]),
            files={k: FileEntry(**v) for k, v in data["files"].items()},
            created_at=str(data["created_at"]),
            finmlops_version=str(data["finmlops_version"]),
            format=int(data.get("format", MANIFEST_FORMAT)),
            extra=dict(data.get("extra") or {}),
        )

    def summary(self) -> dict[str, Any]:
        """The row ``finmlops data list`` shows."""
        return {"version": self.version, "created_at": self.created_at, "source": self.source,
                "tickers": self.tickers, "rows": self.rows, "start": self.start,
                "end": self.end}


def file_name(ticker: str) -> str:
    return f"bars-{ticker}.parquet"


def build_manifest(bars: pd.DataFrame, *, version: str, source: str,
                   files: Mapping[str, tuple[str, int]], created_at: dt.datetime,
                   finmlops_version: str) -> Manifest:
    """The manifest of canonical ``bars``; ``files`` maps ticker to (sha256, byte size)."""
    ranges: dict[str, TickerRange] = {}
    entries: dict[str, FileEntry] = {}
    for ticker, group in bars.groupby("ticker", sort=True):
        t = str(ticker)
        ranges[t] = TickerRange(start=group["date"].min().date().isoformat(),
                                end=group["date"].max().date().isoformat(), rows=len(group))
        digest, size = files[t]
        entries[file_name(t)] = FileEntry(ticker=t, sha256=digest, bytes=size, rows=len(group))
    return Manifest(
        version=version, source=source, tickers=sorted(ranges), ranges=ranges, rows=len(bars),
        files=entries, created_at=created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        finmlops_version=finmlops_version,
    )
