"""The pipeline's stages, in order. Each runs the same code as its ``finmlops <stage>`` command."""

from __future__ import annotations

from finmlops.pipeline.runner import Stage

STAGES: tuple[Stage, ...] = (
    Stage("ingest", "finmlops.pipeline._ingest:run",
          "fetch, validate and store daily bars as a versioned dataset"),
    Stage("features", "finmlops.pipeline._features:run",
          "build features and labels from the dataset version"),
    Stage("train", "finmlops.pipeline._train:run",
          "walk-forward train every variant; export the deployable ONNX models"),
    Stage("evaluate", "finmlops.pipeline._evaluate:run",
          "backtest out-of-sample predictions with costs; stress windows, cost sweep, PSR/DSR"),
    Stage("register", "finmlops.pipeline._register:run",
          "log and register each variant's model in MLflow; move the aliases"),
    Stage("abtest", "finmlops.pipeline._abtest:run",
          "serve both arms, replay the held-out days as live traffic, decide the A/B test"),
    Stage("report", "finmlops.pipeline._report:run",
          "write the self-contained HTML report"),
)
