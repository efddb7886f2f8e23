"""Pipeline stage ``features``: the feature matrix of the dataset version, cached as Parquet, with
its calendar report (gaps per ticker, target rows they cost) beside it as ``features.json``."""

from __future__ import annotations

import json

from finmlops.files import write_atomic, write_text
from finmlops.pipeline.runner import RunContext, StageResult

FEATURES_FORMAT = 2
"""Bump when feature definitions change, so cached matrices are rebuilt."""


def run(ctx: RunContext) -> StageResult:
    """Build features + labels of ``settings.features`` from the stored bars (cached)."""
    import pyarrow.parquet as pq

    from finmlops.data import read_bars
    from finmlops.features import feature_matrix, feature_names, gap_warning

    settings = ctx.settings
    f = settings.features
    version = ctx.run_state("dataset_version").need_dataset_version()
    key = {"format": FEATURES_FORMAT, "dataset_version": version,
           "features": f.model_dump(mode="json")}
    path = ctx.cache_dir("features", key) / "features.parquet"
    meta_path = path.with_name("features.json")
    names = feature_names("full", f.context)
    if path.is_file() and meta_path.is_file():
        rows = int(pq.read_metadata(path).num_rows)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        cached = " (cached)"
    else:
        ctx.progress(f"building features of {', '.join(f.target)} on dataset {version[:12]}")
        bars = read_bars(settings, version, list(dict.fromkeys([*f.target, *f.context])))
        matrix = feature_matrix(bars, f.target, f.context, f.horizon)
        meta = matrix.metadata()
        # The report first: a matrix on disk always has its report.
        write_text(meta_path, json.dumps(meta, indent=1) + "\n")
        write_atomic(path, lambda p: matrix.frame.to_parquet(p, index=False))
        rows, cached = len(matrix.frame), ""
    summary = f"{rows} rows x {len(names)} features{cached}"
    warning = gap_warning(meta["gaps"], meta["dropped_rows"])
    if warning:
        summary += f"; {warning}"
    return StageResult(
        summary=summary,
        outputs={"features": {"path": str(path), "rows": rows, "columns": names, **meta}},
    )
