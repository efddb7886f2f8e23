"""Market data: sources, schema checks and the versioned Parquet store (local or s3://)."""

from finmlops.data._source import Source
from finmlops.data.ingest import IngestResult, ingest
from finmlops.data.manifest import FileEntry, Manifest, TickerRange, content_version
from finmlops.data.quality import QualityReport, check_bars
from finmlops.data.schema import (
    BAR_COLUMNS,
    Violation,
    canonical,
    find_violations,
    validate_bars,
)
from finmlops.data.sources import BundledSource, CsvSource, make_source
from finmlops.data.store import (
    DatasetStore,
    PublishResult,
    get_manifest,
    list_versions,
    read_bars,
)

__all__ = [
    "BAR_COLUMNS",
    "BundledSource",
    "CsvSource",
    "DatasetStore",
    "FileEntry",
    "IngestResult",
    "Manifest",
    "PublishResult",
    "QualityReport",
    "Source",
    "TickerRange",
    "Violation",
    "canonical",
    "check_bars",
    "content_version",
    "find_violations",
    "get_manifest",
    "ingest",
    "list_versions",
    "make_source",
    "read_bars",
    "validate_bars",
]
