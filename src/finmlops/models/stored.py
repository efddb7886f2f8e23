"""The trained-variant directory: what training leaves on disk for every later stage.

``<dir>/`` holds ``model.onnx`` and ``model.json`` (the exported model, docs/CONTRACTS.md),
``input_example.json`` (a few real raw windows), ``oos.parquet`` (the walk-forward
out-of-sample predictions) and ``result.json`` (the :class:`TrainedVariant` without its
paths, which are the directory's own). A directory is written whole or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finmlops.contracts import ModelCard, TrainedVariant
from finmlops.errors import StageError
from finmlops.files import replace_dir

RESULT = "result.json"
OOS = "oos.parquet"
PATH_FIELDS = frozenset({"model_dir", "oos_path", "run_id"})
"""Fields of a :class:`TrainedVariant` that ``result.json`` does not hold."""


def write_variant(directory: Path, run: Any, card: ModelCard, data_version: str,
                  example: Any = None) -> TrainedVariant:
    """Write one :class:`~finmlops.models.walkforward.VariantRun` and its model ``card`` to
    ``directory`` (replaced atomically); ``example`` (raw ``[n, W, F]`` windows) becomes
    ``input_example.json``."""
    from finmlops.models.export import INPUT_EXAMPLE, export_onnx, write_input_example

    trained = TrainedVariant(
        variant=run.name, settings=run.settings, model_dir=directory,
        oos_path=directory / OOS, fold_metrics=run.fold_metrics, metrics=run.metrics,
        baselines=run.baselines, weights_hash=run.weights_hash, data_version=data_version,
        feature_names=card.feature_names, seconds=run.seconds, epochs=run.epochs,
        final_epochs=run.final_epochs, losses=run.losses)

    def fill(tmp: Path) -> None:
        run.oos.to_parquet(tmp / OOS, index=False)
        export_onnx(run.model, tmp / "model.onnx", card.window, len(card.feature_names))
        card.write(tmp)
        if example is not None:
            write_input_example(tmp / INPUT_EXAMPLE, example)
        (tmp / RESULT).write_text(json.dumps(result_json(trained), indent=1) + "\n",
                                  encoding="utf-8")

    replace_dir(directory, fill)
    return load_variant(directory)


def result_json(trained: TrainedVariant) -> dict[str, Any]:
    """What ``result.json`` holds: the trained variant without its paths and run."""
    return trained.model_dump(mode="json", exclude=set(PATH_FIELDS))


def is_stored(directory: Path) -> bool:
    """Whether ``directory`` holds a complete trained variant."""
    return (directory / RESULT).is_file()


def load_variant(directory: Path) -> TrainedVariant:
    """The :class:`TrainedVariant` stored in ``directory``."""
    path = directory / RESULT
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return TrainedVariant.model_validate(
            {**data, "model_dir": directory, "oos_path": directory / OOS})
    except (OSError, ValueError) as exc:
        raise StageError(f"cannot read the trained variant in {directory} "
                         f"({type(exc).__name__}): run `finmlops train` again") from None
