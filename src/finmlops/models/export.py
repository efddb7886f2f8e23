"""ONNX export of a :class:`~finmlops.models._modules.DirectionModel`, its ``model.json`` and an
input example (a few real input windows, for the MLflow model's signature and docs)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from finmlops.contracts import INPUT_NAME as INPUT_NAME  # re-exported: the graph's names
from finmlops.contracts import MODEL_FORMAT, ModelCard
from finmlops.contracts import OUTPUT_NAME as OUTPUT_NAME

OPSET = 17
INPUT_EXAMPLE = "input_example.json"
"""File name, in an exported model directory, of the input example written by
:func:`write_input_example`."""


def export_onnx(model: Any, path: Path, window: int, n_features: int) -> Path:
    """Write ``model`` as ONNX: input ``features`` FP32 ``[-1, window, n_features]``, output
    ``probability`` FP32 ``[-1]``, dynamic batch axis, opset 17 (legacy TorchScript exporter,
    which handles LSTM/GRU without onnxscript)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.zeros(2, window, n_features, dtype=torch.float32)
    with warnings.catch_warnings():
        # The legacy exporter announces its deprecation and warns about tracing RNNs with a
        # variable batch or a slice it cannot fold; all are expected here and parity is tested.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # type: ignore[attr-defined]
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(
            model, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    return path


def model_card(*, variant: str, target: list[str], window: int, feature_names: list[str],
               data_version: str, weights_hash: str, trained_until: str | None, horizon: int,
               reference: dict[str, Any] | None) -> ModelCard:
    """The ``model.json`` of an exported model (docs/CONTRACTS.md, "Exported model
    directory"): every field given, the format, input and output names the export's own."""
    return ModelCard(format=MODEL_FORMAT, variant=variant, target=list(target),
                     input_name=INPUT_NAME, output_name=OUTPUT_NAME, window=window,
                     feature_names=list(feature_names), data_version=data_version,
                     weights_hash=weights_hash, trained_until=trained_until, horizon=horizon,
                     reference=reference)


def write_model_json(path: Path, card: ModelCard) -> Path:
    """``card`` as ``path`` (the ``model.json`` of the directory it is in)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card.text(), encoding="utf-8")
    return path


def write_input_example(path: Path, windows: Any) -> Path:
    """Write ``windows`` (raw float32 ``[n, W, F]``, what the model's ``features`` input takes)
    as ``{"features": [...]}``: float32 values survive the JSON round trip exactly."""
    import numpy as np

    x = np.asarray(windows, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(f"an input example is [n >= 1, W, F] windows, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("an input example must hold finite values only")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({INPUT_NAME: x.tolist()}) + "\n", encoding="utf-8")
    return path


def read_input_example(path: Path) -> Any:
    """The float32 ``[n, W, F]`` windows :func:`write_input_example` wrote."""
    import numpy as np

    data = json.loads(path.read_text(encoding="utf-8"))
    return np.asarray(data[INPUT_NAME], dtype=np.float32)
