"""Registered versions are real MLflow models: MLflow's own loader and server, and MLServer's
MLflow runtime, answer with the probabilities ONNX Runtime gives on the exported graph."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from finmlops.config import Settings, public_dict
from finmlops.models import TrainedVariant
from finmlops.models.export import read_input_example
from finmlops.tracking import configure, download_model, log_training, register

REPO = Path(__file__).resolve().parents[2]
MLSERVER_VENV = REPO / ".venv-mlserver"

MakeTrained = Callable[..., TrainedVariant]


@dataclass(frozen=True)
class Registered:
    settings: Settings
    x: Any
    """The exported model's input example, float32 ``[2, W, F]``."""
    expected: Any
    """ONNX Runtime's probabilities on ``x`` from the exported ``model.onnx``."""
    model_dir: Path


def _ort(model_dir: Path, x: Any) -> Any:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_dir / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    return session.run(["probability"], {"features": x})[0]


@pytest.fixture
def registered(settings: Settings, make_trained: MakeTrained,
               lstm_model_dir: Path) -> Registered:
    """The real LSTM export registered as the baseline (so the champion), a tiny graph as the
    enhanced challenger."""
    for variant, kwargs in (("baseline", {"model_dir": lstm_model_dir}), ("enhanced", {})):
        trained = make_trained(variant, settings, **kwargs)
        register(settings, log_training(settings, trained, public_dict(settings)), variant,
                 trained.data_version)
    x = read_input_example(lstm_model_dir / "input_example.json")
    return Registered(settings, x, _ort(lstm_model_dir, x), lstm_model_dir)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pyfunc_loads_the_champion_and_answers_as_onnx_runtime(
        registered: Registered, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered.settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{registered.settings.registered_model}@champion")
    got = model.predict({"features": registered.x})["probability"]
    assert got.dtype == np.float32 and got.shape == (2,)
    np.testing.assert_array_equal(got, registered.expected)
    # Any batch size: the batch dimension is free in the signature and in the graph.
    batch = np.random.default_rng(3).normal(size=(7, *registered.x.shape[1:])).astype(
        np.float32)
    np.testing.assert_array_equal(model.predict({"features": batch})["probability"],
                                  _ort(registered.model_dir, batch))


def test_signature_and_input_example_describe_the_served_input(
        registered: Registered, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered.settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{registered.settings.registered_model}/1")
    window, n_features = registered.x.shape[1:]
    (features,) = model.metadata.get_input_schema().inputs
    (probability,) = model.metadata.get_output_schema().inputs
    assert (features.name, features.type, features.shape) == (
        "features", np.dtype(np.float32), (-1, window, n_features))
    assert (probability.name, probability.type, probability.shape) == (
        "probability", np.dtype(np.float32), (-1,))
    local = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=configure(registered.settings).client.get_model_version_download_uri(
            registered.settings.registered_model, "1")))
    example = model.metadata.load_input_example(str(local))
    np.testing.assert_array_equal(example["features"], registered.x)


def test_serving_gets_the_same_graph_from_the_registry(registered: Registered,
                                                       tmp_path: Path) -> None:
    import mlflow.pyfunc

    dest = download_model(registered.settings, "champion", tmp_path / "serve" / "baseline")
    assert _sha256(dest / "model.onnx") == _sha256(registered.model_dir / "model.onnx")
    card = json.loads((dest / "model.json").read_text())
    exported = json.loads((registered.model_dir / "model.json").read_text())
    assert {k: card[k] for k in exported} == exported
    assert (card["model_version"], card["aliases"]) == ("1", ["baseline", "champion"])
    # The downloaded directory is itself a loadable MLflow model.
    got = mlflow.pyfunc.load_model(str(dest)).predict({"features": registered.x})
    np.testing.assert_array_equal(got["probability"], registered.expected)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` in its own process group; at exit stop that group (SIGTERM, then KILL)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"{url} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


@pytest.mark.integration
@pytest.mark.slow
def test_mlflow_models_serve_answers_on_loopback(registered: Registered, tmp_path: Path) -> None:
    import httpx

    port = _free_port()
    name = registered.settings.registered_model
    # `mlflow models serve` execs uvicorn from PATH: the venv's bin, as with an activated venv.
    env = _env(MLFLOW_TRACKING_URI=registered.settings.tracking_uri,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@champion",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    log = tmp_path / "mlflow-serve.log"
    with _process(cmd, env, log) as proc:
        _wait(f"http://127.0.0.1:{port}/ping", proc, log)
        reply = httpx.post(f"http://127.0.0.1:{port}/invocations",
                           json={"inputs": {"features": registered.x.tolist()}}, timeout=30)
    assert reply.status_code == 200, reply.text
    got = np.asarray(reply.json()["predictions"]["probability"], dtype=np.float32)
    np.testing.assert_array_equal(got, registered.expected)


@pytest.mark.integration
@pytest.mark.slow
def test_mlserver_mlflow_runtime_answers_the_same(registered: Registered, tmp_path: Path) -> None:
    import httpx

    mlserver = MLSERVER_VENV / "bin" / "mlserver"
    if not mlserver.is_file():
        pytest.skip(f"MLServer (pip packages mlserver, mlserver-mlflow) is not installed in "
                    f"{MLSERVER_VENV}: run `make mlserver-venv`")
    location = configure(registered.settings).client.get_model_version_download_uri(
        registered.settings.registered_model, "1")
    model_path = location.removeprefix("file://")
    assert Path(model_path, "MLmodel").is_file()  # the logged model itself, as stored
    http, grpc, metrics = _free_port(), _free_port(), _free_port()
    root = tmp_path / "mlserver"
    root.mkdir()
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http, "grpc_port": grpc, "metrics_port": metrics,
        "parallel_workers": 0}))
    (root / "model-settings.json").write_text(json.dumps({
        "name": "baseline", "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": model_path}}))
    log = tmp_path / "mlserver.log"
    base = f"http://127.0.0.1:{http}"
    with _process([str(mlserver), "start", str(root)], _env(), log) as proc:
        _wait(f"{base}/v2/models/baseline/ready", proc, log)
        meta = httpx.get(f"{base}/v2/models/baseline", timeout=10).json()
        reply = httpx.post(f"{base}/v2/models/baseline/infer", timeout=30, json={
            "inputs": [{"name": "features", "datatype": "FP32",
                        "shape": list(registered.x.shape),
                        "data": registered.x.ravel().tolist()}]})
    assert reply.status_code == 200, reply.text
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("features", "FP32", [-1, *registered.x.shape[1:]])]
    (out,) = reply.json()["outputs"]
    assert (out["name"], out["datatype"]) == ("probability", "FP32")
    np.testing.assert_array_equal(np.asarray(out["data"], dtype=np.float32),
                                  registered.expected)
