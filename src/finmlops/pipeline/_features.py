"""Pipeline stage ``features``: the feature matrix of the dataset version, cached as Parquet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from finmlops.pipeline.runner import RunContext, StageResult

FEATURES_FORMAT = 1
"""Bump when feature definitions change, so cached matrices are rebuilt."""


def _write_parquet(frame: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def run(ctx: RunContext) -> StageResult:
    """Build features + labels of ``settings.features`` from the stored bars (cached)."""
    import pyarrow.parquet as pq

    from finmlops.data import read_bars
    from finmlops.features import build_features, feature_names

    settings = ctx.settings
    f = settings.features
    version = str(ctx.require("dataset_version", "ingest"))
    key = {"format": FEATURES_FORMAT, "dataset_version": version,
           "features": f.model_dump(mode="json")}
    path = ctx.cache_dir("features", key) / "features.parquet"
    names = feature_names("full", f.context)
    if path.is_file():
        rows = int(pq.read_metadata(path).num_rows)
        cached = " (cached)"
    else:
        ctx.progress(f"building features of {', '.join(f.target)} on dataset {version[:12]}")
        bars = read_bars(settings, version, list(dict.fromkeys([*f.target, *f.context])))
        frame = build_features(bars, f.target, f.context, f.horizon)
        _write_parquet(frame, path)
        rows, cached = len(frame), ""
    return StageResult(
        summary=f"{rows} rows x {len(names)} features{cached}",
        outputs={"features": {"path": str(path), "rows": rows, "columns": names}},
    )
