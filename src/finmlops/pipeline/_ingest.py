"""Pipeline stage ``ingest``: the configured source, validated, stored as a dataset version."""

from __future__ import annotations

from finmlops.pipeline.runner import RunContext, StageResult


def run(ctx: RunContext) -> StageResult:
    """Ingest per ``settings.data``; outputs ``dataset_version``."""
    from finmlops.data import ingest

    result = ingest(ctx.settings, progress=ctx.progress)
    return StageResult(summary=result.summary(), outputs={"dataset_version": result.version})
