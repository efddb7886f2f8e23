"""The one builder of the tiny ONNX models the tests serve, register, replay and publish: a
linear score of the input window through a sigmoid, in an exported model directory as the
pipeline writes one (``features`` FP32 ``[-1, W, F]`` -> ``probability`` FP32 ``[-1]``,
opset 17, and the card of :func:`finmlops.models.export.model_card`).

A module of its own (not conftest) so every test package imports it by name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finmlops.models.export import INPUT_NAME, OPSET, OUTPUT_NAME, model_card


def mean_weights(scale: float, window: int, n_features: int) -> np.ndarray:
    """The weights of ``p = sigmoid(scale * mean(x) + bias)`` over ``[window, n_features]``."""
    return np.full((window, n_features), scale / (window * n_features), dtype=np.float32)


def write_linear_model(dest: Path, weights: np.ndarray, *, variant: str,
                       feature_names: Sequence[str], bias: float = 0.0,
                       data_version: str = "test", weights_hash: str | None = None,
                       trained_until: str | None = "2018-12-31",
                       reference: dict[str, Any] | None = None,
                       model_version: str | None = None,
                       aliases: list[str] | None = None) -> Path:
    """``dest`` as an exported model directory whose model scores each window ``x`` as
    ``sigmoid(sum(weights * x) + bias)`` (``weights`` is ``[W, F]``).

    ``model_version`` and ``aliases`` are what :func:`finmlops.tracking.download_model` adds
    to a registered version's card; ``weights_hash`` defaults to ``hash-<variant>``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    window, n_features = weights.shape
    graph = helper.make_graph(
        [helper.make_node("Mul", [INPUT_NAME, "w"], ["scaled"]),
         helper.make_node("ReduceSum", ["scaled", "axes"], ["z0"], keepdims=0),
         helper.make_node("Add", ["z0", "b"], ["z"]),
         helper.make_node("Sigmoid", ["z"], [OUTPUT_NAME])],
        f"tiny_{variant}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                       ["batch", window, n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch"])],
        initializer=[numpy_helper.from_array(weights.astype(np.float32), "w"),
                     numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
                     numpy_helper.from_array(np.array(bias, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    dest.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest / "model.onnx"))
    card = model_card(variant=variant, target=["IBB"], window=window,
                      feature_names=list(feature_names), data_version=data_version,
                      weights_hash=weights_hash or f"hash-{variant}",
                      trained_until=trained_until, horizon=1, reference=reference)
    card.model_copy(update={"model_version": model_version, "aliases": aliases}).write(dest)
    return dest
