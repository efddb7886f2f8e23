"""The pipeline's stages, in order. Each runs the same code as its ``finmlops <stage>`` command."""

from __future__ import annotations

from finmlops.pipeline.runner import Stage

STAGES: tuple[Stage, ...] = (
    Stage("ingest", "finmlops.pipeline._ingest:run",
          "fetch, validate and store daily bars as a versioned dataset"),
)
