"""Helpers for the serving tests: tiny ONNX models (distinguishable per arm), settings, bodies.

A module of its own (not conftest) so test modules can import it by a unique name."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from finmlops.config import Settings, load_settings
from finmlops.contracts import ModelCard

WINDOW = 4
FEATURES = ["ret_1", "vol_5", "spy_ret_1"]
ARMS = {"baseline": (1.0, 0.0), "enhanced": (1.0, 2.0), "challenger": (-1.0, -1.0)}
"""arm -> (weight, bias): p = sigmoid(weight * mean(x) + bias), so x = 0 tells arms apart."""


def expected_probability(arm: str, x: np.ndarray) -> np.ndarray:
    w, b = ARMS[arm]
    z = w * x.reshape(len(x), -1).mean(axis=1) + b
    return 1.0 / (1.0 + np.exp(-z))


def write_model(dest: Path, arm: str, version: str = "1", reference: bool = False) -> Path:
    """An exported model dir: sigmoid(w * mean(features) + b), input [-1, W, F]."""
    import onnx
    from onnx import TensorProto, helper

    w, b = ARMS[arm]
    graph = helper.make_graph(
        [helper.make_node("Mul", ["features", "w"], ["scaled"]),
         helper.make_node("ReduceMean", ["scaled"], ["mean"], axes=[1, 2], keepdims=0),
         helper.make_node("Add", ["mean", "b"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["probability"])],
        f"tiny_{arm}",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", WINDOW,
                                                                       len(FEATURES)])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch"])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [], [w]),
                     helper.make_tensor("b", TensorProto.FLOAT, [], [b])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    dest.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest / "model.onnx"))
    extra: dict[str, Any] = {}
    if reference:
        from finmlops.monitoring.drift import build_reference

        rng = np.random.default_rng(0)
        extra["reference"] = build_reference(rng.normal(size=(500, len(FEATURES))), FEATURES)
    ModelCard(variant=arm, target=["IBB"], window=WINDOW, feature_names=FEATURES,
              data_version="test", weights_hash=f"hash-{arm}", trained_until="2018-12-31",
              horizon=1, model_version=version, **extra).write(dest)
    return dest


def make_settings(home: Path, **overrides: Any) -> Settings:
    """Settings with ``home`` under the test's tmp dir; dotted keys override."""
    base: dict[str, Any] = {"home": str(home)}
    base.update(overrides)
    return load_settings(environ={}, overrides=base)


def infer_body(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "features", "datatype": "FP32", "shape": list(x.shape),
                        "data": x.reshape(-1).tolist()}], **extra}


def zeros(n: int = 1) -> np.ndarray:
    return np.zeros((n, WINDOW, len(FEATURES)), dtype=np.float32)


def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Poll ``/v2/health/ready`` of a service started in another process until it answers 200."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "service never became ready"
        time.sleep(0.05)
