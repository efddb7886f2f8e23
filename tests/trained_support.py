"""A run state's ``trained[variant]`` entry as the train stage writes it, for tests of the
stages after train that do not train (a module of its own: test modules import it by name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finmlops.config import VariantSettings
from finmlops.contracts import TrainedVariant


def trained_variant(variant: str, oos_path: Path, *, model_dir: Path | None = None,
                    run_id: str | None = None, weights_hash: str = "x",
                    data_version: str = "v-test",
                    settings: VariantSettings | None = None) -> TrainedVariant:
    """A trained variant whose files are ``oos_path`` (and ``model_dir``), no metrics."""
    return TrainedVariant(
        variant=variant, settings=settings or VariantSettings(),
        model_dir=model_dir or oos_path.parent, oos_path=oos_path, fold_metrics=[],
        metrics={}, baselines={}, weights_hash=weights_hash, data_version=data_version,
        feature_names=[], seconds=0.0, run_id=run_id)


def trained_entry(variant: str, oos_path: Path, **kwargs: Any) -> dict[str, Any]:
    """:func:`trained_variant` as the JSON the run state holds."""
    return trained_variant(variant, oos_path, **kwargs).to_json()
