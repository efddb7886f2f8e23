"""ONNX Runtime sessions for exported model directories, signatures precomputed per model."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finmlops.contracts import CARD, ModelCard
from finmlops.errors import ConfigError, ModelNotFoundError

log = logging.getLogger("finmlops.serving")


@dataclass(frozen=True)
class LoadedModel:
    """One arm: its session, signature and metadata (see docs/CONTRACTS.md)."""

    name: str
    version: str
    path: Path
    session: Any
    input_name: str
    output_name: str
    window: int
    n_features: int
    card: ModelCard | None = None
    """``model.json``, when the directory has one."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(up) for a float32 batch shaped ``[n, window, n_features]``."""
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def metadata(self) -> dict[str, Any]:
        """V2 model metadata."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime",
            "inputs": [{"name": self.input_name, "datatype": "FP32",
                        "shape": [-1, self.window, self.n_features]}],
            "outputs": [{"name": self.output_name, "datatype": "FP32", "shape": [-1]}],
        }


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def load_model(name: str, path: Path) -> LoadedModel:
    """Open ``path/model.onnx`` with one intra-op thread and sequential execution."""
    import onnxruntime as ort

    onnx_path = path / "model.onnx"
    if not onnx_path.is_file():
        raise ModelNotFoundError(f"model {name!r}: no model.onnx in {path}")
    try:
        card = ModelCard.read(path) if (path / CARD).is_file() else None
    except ConfigError as exc:
        raise ConfigError(f"model {name!r}: {exc.message}") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(onnx_path), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types
        raise ConfigError(f"model {name!r}: cannot load {onnx_path}: {exc}") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    input_name = card.input_name if card else str(inputs[0].name)
    output_name = card.output_name if card else str(outputs[0].name)
    shape = next((i.shape for i in inputs if i.name == input_name), None)
    if shape is None or output_name not in {o.name for o in outputs}:
        raise ConfigError(f"model {name!r}: no input {input_name!r} or output {output_name!r}")
    if len(shape) != 3:
        raise ConfigError(f"model {name!r}: input must be [batch, window, features], got {shape}")
    window = _dim(shape[1]) or (_dim(card.window) if card else None)
    n_features = _dim(shape[2]) or (_dim(len(card.feature_names)) if card else None)
    if window is None or n_features is None:
        raise ConfigError(f"model {name!r}: window/feature count unknown (shape {shape})")
    return LoadedModel(name, card.version if card else "1", path, session, input_name,
                       output_name, window, n_features, card)


def load_models(dirs: Mapping[str, Path]) -> dict[str, LoadedModel]:
    """Load every arm; they must share one input signature so any arm can serve a request."""
    models = {name: load_model(name, Path(p)) for name, p in dirs.items()}
    sigs = {(m.window, m.n_features) for m in models.values()}
    if len(sigs) > 1:
        raise ConfigError(f"models disagree on the input signature [-1, W, F]: {sorted(sigs)}")
    for m in models.values():
        log.info("loaded model %s version %s from %s", m.name, m.version, m.path)
    return models


def discover(model_dir: Path) -> dict[str, Path]:
    """``{arm: dir}`` for every sub-directory of ``model_dir`` holding a ``model.onnx``."""
    if not model_dir.is_dir():
        raise ModelNotFoundError(f"model directory not found: {model_dir}")
    found = {p.name: p for p in sorted(model_dir.iterdir()) if (p / "model.onnx").is_file()}
    if not found:
        raise ModelNotFoundError(f"no model sub-directories (with model.onnx) in {model_dir}")
    return found
