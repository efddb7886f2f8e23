"""The dataset a training run read, as an MLflow dataset input (``log_inputs``).

A stored dataset version is immutable and named by the hash of its content, so that hash is
the MLflow digest: two runs show the same digest exactly when they trained on the same bars.
The source is where the version lives in the store (``file://`` or ``s3://``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TRAINING_CONTEXT = "training"
_BAR_SCHEMA = [("ticker", "string"), ("date", "datetime"), ("open", "double"),
               ("high", "double"), ("low", "double"), ("close", "double"),
               ("adj_close", "double"), ("volume", "long")]


@dataclass(frozen=True)
class DatasetRef:
    """What the tracking store records about one dataset version."""

    name: str
    digest: str
    """The dataset version (content hash)."""
    source: str
    """URI of the version in the store, e.g. ``s3://finmlops/store/versions/<version>``."""
    rows: int
    tickers: tuple[str, ...]
    start: str
    end: str
    origin: str
    """Where the bars were ingested from (``bundled``, ``yahoo``, ``csv:...``)."""

    @property
    def source_type(self) -> str:
        scheme = self.source.split("://", 1)[0] if "://" in self.source else "file"
        return "local" if scheme == "file" else scheme


def dataset_input(ref: DatasetRef) -> Any:
    """The ``mlflow.entities.DatasetInput`` of ``ref``, tagged as the training context."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    schema = {"mlflow_colspec": [{"name": n, "type": t, "required": True}
                                 for n, t in _BAR_SCHEMA]}
    profile = {"rows": ref.rows, "tickers": list(ref.tickers), "start": ref.start,
               "end": ref.end, "origin": ref.origin}
    dataset = Dataset(name=ref.name, digest=ref.digest, source_type=ref.source_type,
                      source=json.dumps({"uri": ref.source}), schema=json.dumps(schema),
                      profile=json.dumps(profile))
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", TRAINING_CONTEXT)])
