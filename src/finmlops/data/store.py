"""The versioned Parquet store, through fsspec: a local directory or ``s3://bucket/prefix``.

Layout::

    <root>/versions/<version>/bars-<TICKER>.parquet
    <root>/versions/<version>/manifest.json     # written last: marks the version valid
    <root>/staging/<uuid>/...                   # in-flight writes, never read

A publish writes every file into a fresh staging directory, moves the Parquet files into the
version directory, and moves ``manifest.json`` last (a rename locally, a single PUT on S3), so a
crash at any point leaves either no new version or a complete one. Readers list only versions
with a manifest and check each file's sha256 against it. Leftover staging directories are
ignored and removed by the next publish (one writer per store at a time).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from finmlops import __version__
from finmlops.config import Settings
from finmlops.data.manifest import Manifest, build_manifest, content_version, file_name
from finmlops.data.schema import BAR_COLUMNS, PRICE_COLUMNS, canonical, empty_bars
from finmlops.errors import StoreError

ProgressFn = Callable[[str, float | None, float | None], None]
PARQUET_COMPRESSION = "zstd"


@dataclass(frozen=True)
class PublishResult:
    manifest: Manifest
    created: bool
    """False when identical content was already stored (a no-op)."""

    @property
    def version(self) -> str:
        return self.manifest.version


class DatasetStore:
    """Dataset versions under one root URI; every operation goes through one fsspec filesystem."""

    def __init__(self, uri: str, *, s3_endpoint_url: str | None = None,
                 fs: Any | None = None) -> None:
        self.uri = uri
        if fs is not None:
            self.fs, self.root = fs, uri.rstrip("/")
        else:
            import fsspec

            options: dict[str, Any] = {}
            if uri.startswith(("s3://", "s3a://")):
                options["skip_instance_cache"] = True
                if s3_endpoint_url:
                    options["client_kwargs"] = {"endpoint_url": s3_endpoint_url}
            self.fs, root = fsspec.core.url_to_fs(uri, **options)
            self.root = str(root).rstrip("/")
        self._local = "file" in _protocols(self.fs)

    @classmethod
    def from_settings(cls, settings: Settings) -> DatasetStore:
        return cls(settings.store_uri, s3_endpoint_url=settings.data.s3_endpoint_url)

    # -- reading ------------------------------------------------------------------------
    def list_versions(self) -> list[Manifest]:
        """Published versions, newest first; directories without a valid manifest are skipped."""
        self.fs.invalidate_cache()
        try:
            paths = self.fs.glob(f"{self.root}/versions/*/manifest.json")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list the store at {self.uri}: {exc}") from None
        found = []
        for path in sorted(paths):
            manifest = self._load_manifest(str(path))
            if manifest is not None and str(path).split("/")[-2] == manifest.version:
                found.append(manifest)
        return sorted(found, key=lambda m: (m.created_at, m.version), reverse=True)

    def resolve(self, version: str | None = None) -> Manifest:
        """The manifest of ``version`` (full id, unique prefix, ``latest`` or None for newest)."""
        versions = self.list_versions()
        if not versions:
            raise StoreError(f"no dataset versions in {self.uri}: run `finmlops ingest` first")
        if version is None or version == "latest":
            return versions[0]
        matches = [m for m in versions if m.version == version] or [
            m for m in versions if len(version) >= 4 and m.version.startswith(version)]
        if len(matches) > 1:
            raise StoreError(f"dataset version {version!r} is ambiguous in {self.uri}: it "
                             f"starts {', '.join(m.version for m in matches)}; give more "
                             "characters")
        if not matches:
            if version and any(m.version.startswith(version) for m in versions):
                raise StoreError(f"dataset version {version!r} is too short: give at least 4 "
                                 "characters of the version")
            known = ", ".join(m.version for m in versions[:5])
            raise StoreError(f"dataset version {version!r} not found in {self.uri} "
                             f"(newest: {known})")
        return matches[0]

    def read(self, version: str | None = None,
             tickers: Sequence[str] | None = None) -> pd.DataFrame:
        """Bars of one version per the contract (sorted, typed), checked against the manifest."""
        manifest = self.resolve(version)
        wanted = manifest.tickers if tickers is None else [t.upper() for t in tickers]
        absent = [t for t in wanted if t not in manifest.tickers]
        if absent:
            raise StoreError(f"dataset version {manifest.version} has no {', '.join(absent)} "
                             f"(it has {', '.join(manifest.tickers)})")
        frames = [self._read_file(manifest, t) for t in wanted]
        if not frames:
            return empty_bars()
        return canonical(pd.concat(frames, ignore_index=True))

    def _read_file(self, manifest: Manifest, ticker: str) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = file_name(ticker)
        entry = manifest.files[name]
        path = f"{self._version_dir(manifest.version)}/{name}"
        try:
            data = self.fs.cat_file(path)
        except OSError as exc:
            raise StoreError(f"dataset version {manifest.version}: cannot read {name} "
                             f"({type(exc).__name__})") from None
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise StoreError(f"dataset version {manifest.version}: {name} does not match its "
                             "manifest (corrupt or modified)")
        frame: pd.DataFrame = pq.read_table(pa.BufferReader(data)).to_pandas()
        return frame

    def _load_manifest(self, path: str) -> Manifest | None:
        try:
            return Manifest.from_dict(json.loads(self.fs.cat_file(path)))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # not a manifest we wrote: the version is not valid

    # -- writing ------------------------------------------------------------------------
    def publish(self, bars: pd.DataFrame, *, source: str, progress: ProgressFn | None = None,
                now: dt.datetime | None = None) -> PublishResult:
        """Store valid ``bars`` as a version (or find the identical one already stored)."""
        report = progress or no_progress
        bars = canonical(bars)
        if bars.empty:
            raise StoreError("refusing to store an empty dataset")
        version = content_version(bars)
        self.clean_staging()
        existing = [m for m in self.list_versions() if m.version == version]
        if existing:
            return PublishResult(existing[0], created=False)
        staging = f"{self.root}/staging/{uuid.uuid4().hex}"
        target = self._version_dir(version)
        try:
            self._makedirs(staging)
            files: dict[str, tuple[str, int]] = {}
            groups = [(str(t), g) for t, g in bars.groupby("ticker", sort=True)]
            for i, (ticker, group) in enumerate(groups):
                report(f"writing {ticker}", i, len(groups))
                data = parquet_bytes(group)
                self._write(f"{staging}/{file_name(ticker)}", data)
                files[ticker] = (hashlib.sha256(data).hexdigest(), len(data))
            manifest = build_manifest(bars, version=version, source=source, files=files,
                                      created_at=now or dt.datetime.now(dt.UTC),
                                      finmlops_version=__version__)
            self._write(f"{staging}/manifest.json", manifest_bytes(manifest))
            report(f"publishing {version}", len(groups), len(groups))
            self._makedirs(target)
            for ticker in files:
                self._move(f"{staging}/{file_name(ticker)}", f"{target}/{file_name(ticker)}")
            self._move(f"{staging}/manifest.json", f"{target}/manifest.json")
        except OSError as exc:
            self._abandon(staging, target)
            raise StoreError(f"cannot write to the store at {self.uri}: {exc}") from None
        except BaseException:  # Ctrl-C, a bug: leave no half-moved version behind either
            self._abandon(staging, target)
            raise
        self._remove(staging)
        return PublishResult(manifest, created=True)

    def _abandon(self, staging: str, target: str) -> None:
        """Undo an unfinished publish: its staging directory, and the version directory
        unless its manifest landed (then the version is complete and stays)."""
        self._remove(staging)
        try:
            complete = self.fs.exists(f"{target}/manifest.json")
        except OSError:
            return
        if not complete:
            self._remove(target)

    def clean_staging(self) -> None:
        """Remove every staging directory (left by crashed writers)."""
        self._remove(f"{self.root}/staging")

    def _version_dir(self, version: str) -> str:
        return f"{self.root}/versions/{version}"

    def _makedirs(self, path: str) -> None:
        if self._local:
            self.fs.makedirs(path, exist_ok=True)

    def _write(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(path, data)

    def _move(self, src: str, dst: str) -> None:
        self.fs.mv(src, dst)

    def _remove(self, path: str) -> None:
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        except OSError:
            pass  # best effort: staging leftovers are never read


def parquet_bytes(bars: pd.DataFrame) -> bytes:
    """Deterministic Parquet for canonical bars: fixed schema, no index, no pandas metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("ticker", pa.string()), ("date", pa.timestamp("ns")),
        *[(c, pa.float64()) for c in PRICE_COLUMNS], ("volume", pa.int64()),
    ])
    table = pa.Table.from_pandas(bars.loc[:, list(BAR_COLUMNS)], schema=schema,
                                 preserve_index=False).replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION, version="2.6",
                   write_statistics=True)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def manifest_bytes(manifest: Manifest) -> bytes:
    return (json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def no_progress(message: str, completed: float | None = None,
                 total: float | None = None) -> None:
    return None


def read_bars(settings: Settings, version: str | None = None,
              tickers: list[str] | None = None) -> pd.DataFrame:
    """Bars of ``version`` (newest when None); see docs/CONTRACTS.md."""
    return DatasetStore.from_settings(settings).read(version, tickers)


def list_versions(settings: Settings) -> list[Manifest]:
    """Published versions in the configured store, newest first."""
    return DatasetStore.from_settings(settings).list_versions()


def get_manifest(settings: Settings, version: str | None = None) -> Manifest:
    """The manifest of ``version`` (id, unique prefix, ``latest`` or None); StoreError if absent."""
    return DatasetStore.from_settings(settings).resolve(version)
