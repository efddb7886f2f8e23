"""The service as Triton's own Python clients see it: tritonclient.http (binary tensors, as
its defaults send them, and JSON; gzip bodies) and tritonclient.grpc against a real server —
metadata, the repository index, inference on the experiment and on each arm, errors, tokens,
and every answer committed to the ledger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from serving_support import expected_probability, zeros

from finmlops.config import Settings

pytestmark = pytest.mark.integration
triton_http = pytest.importorskip("tritonclient.http", reason="pip package tritonclient[http]")
triton_grpc = pytest.importorskip("tritonclient.grpc", reason="pip package tritonclient[grpc]")
from tritonclient.utils import InferenceServerException  # noqa: E402

TOKEN = "inference-7c1f"


def auth() -> dict[str, str]:
    """A fresh header dict each call: tritonclient.http writes its own headers into the one
    it is given (Inference-Header-Content-Length), which would leak into the next request."""
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def served(start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> Any:
    return start_server(settings_for(**{"serve.grpc_port": 0,
                                        "serve.tokens.inference": TOKEN,
                                        "serve.tokens.feedback": "feedback-2b9e",
                                        "serve.tokens.admin": "admin-88d0"}))


def batch(seed: int, n: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4, 3)).astype(np.float32)


def http_inputs(x: np.ndarray, binary: bool) -> list[Any]:
    tensor = triton_http.InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    return [tensor]


def grpc_auth() -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}"}  # gRPC metadata keys are lower case


def test_tritonclient_http_binary_json_gzip_and_errors(served: Any) -> None:
    client = triton_http.InferenceServerClient(served.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready(headers=auth())
    meta = client.get_server_metadata(headers=auth())
    assert {"binary_tensor_data", "model_repository"} <= set(meta["extensions"])
    model = client.get_model_metadata("enhanced", headers=auth())
    assert model["inputs"][0] == {"name": "features", "datatype": "FP32", "shape": [-1, 4, 3]}
    assert client.is_model_ready("baseline", headers=auth())
    index = client.get_model_repository_index(headers=auth())
    assert {(m["name"], m["state"]) for m in index} >= {
        ("baseline", "READY"), ("enhanced", "READY"), ("direction-ab", "READY")}
    x = batch(1)
    ids = []
    for binary_in in (True, False):
        for binary_out in (True, False):
            out = triton_http.InferRequestedOutput("probability", binary_data=binary_out)
            for arm in ("baseline", "enhanced", "challenger"):
                # baseline is the experiment's default: its own endpoint enters the
                # experiment, as in Seldon; the others answer as themselves
                result = client.infer(arm, http_inputs(x, binary_in), outputs=[out],
                                      headers=auth())
                served_by = result.get_response()["model_name"]
                assert served_by == arm or arm == "baseline"
                np.testing.assert_allclose(result.as_numpy("probability"),
                                           expected_probability(served_by, x), rtol=1e-6)
                ids.append(result.get_response()["parameters"]["prediction_id"])
    # the experiment by name, the client's defaults (binary in and out), a gzip body
    result = client.infer("direction-ab", http_inputs(x, True), headers=auth(),
                          request_compression_algorithm="gzip")
    arm = result.get_response()["model_name"]
    np.testing.assert_allclose(result.as_numpy("probability"), expected_probability(arm, x),
                               rtol=1e-6)
    ids.append(result.get_response()["parameters"]["prediction_id"])
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope", http_inputs(x, True), headers=auth())
    with pytest.raises(InferenceServerException, match="unknown output"):
        client.infer("enhanced", http_inputs(x, True), headers=auth(),
                     outputs=[triton_http.InferRequestedOutput("logits")])
    with pytest.raises(InferenceServerException, match="does not match"):
        client.infer("enhanced", http_inputs(batch(2).reshape(3, 3, 4), True), headers=auth())
    with pytest.raises(InferenceServerException, match="bearer"):
        client.infer("enhanced", http_inputs(x, True))
    client.close()
    rows = {r["prediction_id"]: r for r in served.app.plane.ledger.predictions()}
    assert set(ids) <= set(rows) and len(rows) == 3 * len(ids)  # three rows a request


def test_tritonclient_grpc_against_the_same_service(served: Any) -> None:
    import grpc

    port = served.app.grpc.port
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata(headers=grpc_auth()).extensions
    meta = client.get_model_metadata("enhanced", headers=grpc_auth())
    assert list(meta.inputs[0].shape) == [-1, 4, 3] and meta.outputs[0].name == "probability"
    assert client.is_model_ready("challenger", headers=grpc_auth())
    names = {m.name for m in client.get_model_repository_index(headers=grpc_auth()).models}
    assert names >= {"baseline", "enhanced", "challenger", "direction-ab"}
    x = batch(3)
    answers = {}
    for name in ("direction-ab", "enhanced", "challenger"):
        tensor = triton_grpc.InferInput("features", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer(name, [tensor], headers=grpc_auth(),
                              parameters={"routing_key": f"IBB:2020-01-0{len(answers) + 2}"})
        response = result.get_response()
        arm = response.model_name
        np.testing.assert_allclose(result.as_numpy("probability"),
                                   expected_probability(arm, x), rtol=1e-6)
        params = {k: getattr(v, v.WhichOneof("parameter_choice"))
                  for k, v in response.parameters.items()}
        answers[name] = params
    assert answers["direction-ab"]["assignment"] == "hash"
    assert answers["direction-ab"]["experiment_version"] == 1
    assert answers["enhanced"]["assignment"] == "direct"
    tensor = triton_grpc.InferInput("features", [1, 4, 3], "FP32")
    tensor.set_data_from_numpy(zeros())
    with pytest.raises(InferenceServerException) as err:
        client.infer("nope", [tensor], headers=grpc_auth())
    assert err.value.status() == str(grpc.StatusCode.NOT_FOUND)
    with pytest.raises(InferenceServerException) as err:
        client.infer("enhanced", [tensor])
    assert err.value.status() == str(grpc.StatusCode.UNAUTHENTICATED)
    with pytest.raises(InferenceServerException) as err:
        client.infer("enhanced", [tensor], headers={"authorization": "Bearer admin-88d0"})
    assert err.value.status() == str(grpc.StatusCode.PERMISSION_DENIED)
    bad = triton_grpc.InferInput("features", [1, 3, 4], "FP32")
    bad.set_data_from_numpy(zeros().reshape(1, 3, 4))
    with pytest.raises(InferenceServerException) as err:
        client.infer("enhanced", [bad], headers=grpc_auth())
    assert err.value.status() == str(grpc.StatusCode.INVALID_ARGUMENT)
    client.close()
    ledger = served.app.plane.ledger
    rows = {r["prediction_id"]: r for r in ledger.predictions()}
    for params in answers.values():
        row = rows[params["prediction_id"]]
        assert row["assignment"] == params["assignment"] and row["arm"] == params["arm"]
    keyed = rows[answers["direction-ab"]["prediction_id"]]
    assert (keyed["routing_key"], keyed["config_version"]) == ("IBB:2020-01-02", 1)


def test_tritonclient_sends_a_days_tickers_with_one_routing_key_per_row(served: Any) -> None:
    """The ``routing_key`` BYTES input as tritonclient builds it (binary over HTTP, its
    default, and gRPC): each row served by the arm its key picks, recorded under its key."""
    x = batch(5, n=6)
    keys = np.array([f"T{i}:2021-03-01".encode() for i in range(6)], dtype=np.object_)
    http = triton_http.InferenceServerClient(served.url.removeprefix("http://"))
    key_in = triton_http.InferInput("routing_key", [6], "BYTES")
    key_in.set_data_from_numpy(keys)  # binary_data=True: 4-byte lengths, then the bytes
    result = http.infer("direction-ab", [*http_inputs(x, True), key_in], headers=auth(),
                        outputs=[triton_http.InferRequestedOutput(n, binary_data=False)
                                 for n in ("probability", "arm", "prediction_id")])
    http.close()
    grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{served.app.grpc.port}")
    features = triton_grpc.InferInput("features", list(x.shape), "FP32")
    features.set_data_from_numpy(x)
    grpc_keys = triton_grpc.InferInput("routing_key", [6], "BYTES")
    grpc_keys.set_data_from_numpy(keys)
    over_grpc = grpc_client.infer("direction-ab", [features, grpc_keys], headers=grpc_auth())
    grpc_client.close()
    rows = {r["prediction_id"]: r for r in served.app.plane.ledger.predictions()}

    def text(values: np.ndarray) -> list[str]:  # JSON gives str, gRPC's raw BYTES bytes
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    arms_by_transport = []
    for answer in (result, over_grpc):
        arms, ids = text(answer.as_numpy("arm")), text(answer.as_numpy("prediction_id"))
        probs = answer.as_numpy("probability")
        for i, (arm, pid) in enumerate(zip(arms, ids, strict=True)):
            assert rows[pid]["routing_key"] == keys[i].decode() and rows[pid]["arm"] == arm
            np.testing.assert_allclose(probs[i], expected_probability(arm, x[i:i + 1])[0],
                                       rtol=1e-6)
        arms_by_transport.append(arms)
    assert arms_by_transport[0] == arms_by_transport[1]  # the key decides, not the transport
