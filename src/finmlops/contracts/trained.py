"""A trained variant: one type for ``result.json`` in its model directory, the run state's
``trained[variant]`` entry and what training hands to tracking and evaluation."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from finmlops.config.settings import VariantSettings
from finmlops.contracts._base import Contract


class TrainedVariant(Contract):
    """A variant after walk-forward evaluation and the final fit up to the cutoff.

    ``model_dir`` holds ``model.onnx`` + ``model.json``; ``oos_path`` is the Parquet of
    out-of-sample predictions (``date, ticker, probability, label, forward_return, fold``).
    ``metrics``/``fold_metrics`` are classification metrics of the walk-forward predictions;
    ``metrics["folds_not_improved"]`` counts the folds whose validation loss never beat their
    starting weights, and each fold's ``improved`` (1/0), ``best_epoch``, ``warm_start`` and
    losses say which. ``baselines`` maps a naive baseline name (``always_up``, ``yesterday``)
    to its metrics. ``final_epochs`` is how long the deployable model was refitted on every row
    up to the cutoff. ``run_id`` is the MLflow run that logged it (state entries only).
    """

    variant: str
    settings: VariantSettings
    model_dir: Path
    oos_path: Path
    fold_metrics: list[dict[str, float]]
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    weights_hash: str
    data_version: str
    feature_names: list[str]
    seconds: float
    final_epochs: int = 0
    epochs: list[int] = Field(default_factory=list)
    """Epochs run per fold, then by the deployable fit (last)."""
    losses: list[dict[str, list[float]]] = Field(default_factory=list)
    """Per fit (walk-forward folds in ``fold_metrics`` order, then the deployable fit):
    ``{"train": [...], "val": [...]}``, one loss per epoch run."""
    run_id: str | None = None
