"""The MLflow model of one trained variant: ONNX flavor + pyfunc, signature, input example.

Built with ``mlflow.onnx.save_model`` into a directory and uploaded as a ``LoggedModel`` through
the home's own client (``mlflow.onnx.log_model`` would go through MLflow's process-wide tracking
URI and active run, which two homes in one process must not share). The directory is also the
contract's exported model directory: ``model.onnx`` (the flavor's data file) and ``model.json``
(the finmlops card) sit at its root, so ``mlflow.pyfunc.load_model``, ``mlflow models serve``,
MLServer's MLflow runtime and ``finmlops serve`` all read the same bytes. No pickles: the pyfunc
loader is ``mlflow.onnx``, which opens the graph with ONNX Runtime.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finmlops.contracts import CARD, TrainedVariant
from finmlops.tracking.datasets import DatasetRef

if TYPE_CHECKING:
    from finmlops.tracking._client import Tracker

MODEL_TYPE = "onnx"
ONNX_FILE = "model.onnx"
EXAMPLE_FILE = "input_example.json"
"""Written by :func:`finmlops.models.export.write_input_example` into the exported directory."""
_V2_TYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32",
             "bool": "BOOL"}


def onnx_io(model_path: Path) -> dict[str, list[dict[str, Any]]]:
    """The graph's inputs (initializers excluded) and outputs: name, numpy dtype name and
    shape, symbolic dimensions as -1."""
    import onnx
    from onnx import helper

    model = onnx.load(str(model_path), load_external_data=False)

    def describe(values: Iterable[Any]) -> list[dict[str, Any]]:
        out = []
        for v in values:
            tensor = v.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
            dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
            out.append({"name": v.name, "dtype": dtype, "shape": shape})
        return out

    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    return {"inputs": describe(inputs), "outputs": describe(model.graph.output)}


def onnx_signature(model_path: Path) -> dict[str, Any]:
    """The graph's V2 tensor signature (names, datatypes, shapes; symbolic dims as -1)."""
    io = onnx_io(model_path)
    return {side: [{"name": t["name"], "datatype": _V2_TYPES.get(t["dtype"], "BYTES"),
                    "shape": t["shape"]} for t in tensors] for side, tensors in io.items()}


def model_signature(model_path: Path) -> Any:
    """The MLflow ``ModelSignature`` of the graph: one ``TensorSpec`` per input and output."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    io = onnx_io(model_path)

    def schema(tensors: list[dict[str, Any]]) -> Any:
        return Schema([TensorSpec(np.dtype(t["dtype"]), tuple(t["shape"]), t["name"])
                       for t in tensors])

    return ModelSignature(inputs=schema(io["inputs"]), outputs=schema(io["outputs"]))


def _example(model_dir: Path) -> dict[str, Any]:
    """The input example: the real windows the train stage kept, else (a directory exported
    without one) a single all-zero window of the graph's fixed shape."""
    import numpy as np

    from finmlops.models.export import read_input_example

    io = onnx_io(model_dir / ONNX_FILE)
    (spec,) = io["inputs"]
    path = model_dir / EXAMPLE_FILE
    if path.is_file():
        return {spec["name"]: read_input_example(path)}
    shape = [1 if d < 0 else d for d in spec["shape"]]
    return {spec["name"]: np.zeros(shape, dtype=np.dtype(spec["dtype"]))}


def requirements() -> list[str]:
    """What the pyfunc needs, pinned to what wrote it (no import-scanning subprocess)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "onnx", "onnxruntime", "numpy")]


def save_mlflow_model(model_dir: Path, dest: Path, *, mlflow_model: Any = None,
                      metadata: Mapping[str, Any] | None = None) -> Path:
    """Write the MLflow model of the exported directory ``model_dir`` into ``dest`` (which
    must not exist or be empty): ONNX flavor + pyfunc, the graph's signature, the input
    example, pinned requirements, and ``model.json`` copied beside ``model.onnx``."""
    import mlflow.onnx
    import onnx

    from finmlops.tracking._client import quiet

    onnx_path = model_dir / ONNX_FILE
    with quiet():
        mlflow.onnx.save_model(
            onnx.load(str(onnx_path)), str(dest), mlflow_model=mlflow_model,
            signature=model_signature(onnx_path), input_example=_example(model_dir),
            pip_requirements=requirements(), onnx_execution_providers=["CPUExecutionProvider"],
            metadata=dict(metadata or {}), save_as_external_data=False,
        )
    card = model_dir / CARD
    if card.is_file():
        shutil.copyfile(card, dest / CARD)
    return dest


def log_model(tracker: Tracker, run_id: str, trained: TrainedVariant, *,
              tags: Mapping[str, str], dataset: DatasetRef | None = None) -> str:
    """Upload ``trained``'s model as a ``LoggedModel`` of run ``run_id`` (its output at step 0)
    with the aggregate metrics attached to it; returns the model id."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    from finmlops.tracking.runs import flatten, metrics_of

    client = tracker.client
    params = flatten(trained.settings.model_dump(mode="json"))
    logged = client.create_logged_model(
        tracker.experiment_id, name=trained.variant, source_run_id=run_id, tags=dict(tags),
        params=params, model_type=MODEL_TYPE)
    model_id: str = logged.model_id
    try:
        with tempfile.TemporaryDirectory(prefix="finmlops-model-") as tmp:
            local = save_mlflow_model(
                Path(trained.model_dir), Path(tmp) / "model",
                mlflow_model=Model(artifact_path=logged.artifact_location, run_id=run_id,
                                   model_id=model_id, model_uuid=model_id),
                metadata={"variant": trained.variant, "data_version": trained.data_version,
                          "weights_hash": trained.weights_hash})
            client.log_model_artifacts(model_id, str(local))
    except BaseException:
        client.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(model_id, step=0)])
    metrics = metrics_of(trained.metrics, model_id=model_id,
                         dataset_name=dataset.name if dataset else None,
                         dataset_digest=dataset.digest if dataset else None)
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    return model_id


def model_id_of(run: Any) -> str | None:
    """The id of the model a training run logged (its newest output), if it logged one."""
    outputs = getattr(run, "outputs", None)
    found = list(getattr(outputs, "model_outputs", None) or [])
    if not found:
        return None
    return str(max(found, key=lambda m: m.step).model_id)


def link_version(tracker: Tracker, model_id: str, version: str) -> None:
    """Record ``version`` on the logged model (``mlflow.modelVersions``, as MLflow's own
    ``register_model`` does), so the model's page lists its registered versions."""
    tag = "mlflow.modelVersions"
    model = tracker.client.get_logged_model(model_id)
    entries = json.loads(model.tags.get(tag) or "[]")
    entry = {"name": tracker.registered_model, "version": str(version)}
    if entry not in entries:
        tracker.client.set_logged_model_tags(model_id, {tag: json.dumps([*entries, entry])})
