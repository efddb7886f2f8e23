"""A request with one routing key per row (the ``routing_key`` BYTES input): each row is
routed, scored, recorded and answered exactly as the same row sent alone under its key —
one app in-process for the module, its ledger read back after each answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serving_support import (
    FEATURES,
    WINDOW,
    asgi_calls,
    expected_probability,
    infer_body,
    started_app,
)

from finmlops.serving import RestApp

EXP = "/v2/models/direction-ab/infer"
Call = Callable[..., httpx.Response]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory,
        models: dict[str, Path]) -> Iterator[RestApp]:
    """The experiment 70/30 with shadow scoring and a 50% mirror to the challenger."""
    yield from started_app(tmp_path_factory.mktemp("rows"), models,
                           **{"experiment.mirror": {"name": "challenger", "percent": 50}})


@pytest.fixture(scope="module")
def call(app: RestApp) -> Iterator[Call]:
    """``call(method, path, **httpx kwargs)``: one request through the ASGI app."""
    yield from asgi_calls(app)


def rows(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    x = np.random.default_rng(seed).normal(size=(n, WINDOW, len(FEATURES))).astype(np.float32)
    return x, [f"T{seed}-{i}:2021-03-0{1 + i % 5}" for i in range(n)]


def keyed_body(x: np.ndarray, keys: list[str]) -> dict[str, Any]:
    body = infer_body(x)
    body["inputs"].append({"name": "routing_key", "datatype": "BYTES", "shape": [len(keys)],
                           "data": keys})
    return body


def outputs(answer: dict[str, Any]) -> dict[str, list[Any]]:
    return {o["name"]: o["data"] for o in answer["outputs"]}


def test_each_row_is_routed_and_recorded_as_if_it_came_alone(app: RestApp, call: Call) -> None:
    x, keys = rows(40, seed=1)
    r = call("POST", EXP, json=keyed_body(x, keys))
    assert r.status_code == 200, r.text
    answer = r.json()
    out = outputs(answer)
    assert answer["model_name"] == "direction-ab" and "arm" not in answer["parameters"]
    assert "x-seldon-route" not in r.headers  # no single arm served it
    assert len(out["arm"]) == len(out["prediction_id"]) == len(out["probability"]) == 40
    assert set(out["arm"]) == {"baseline", "enhanced"}  # 40 keys at 70/30
    assert len(set(out["prediction_id"])) == 40
    ledger = app.plane.ledger
    assert ledger is not None
    recorded = {p["prediction_id"]: p for p in ledger.predictions("direction-ab")}
    for i, key in enumerate(keys):
        alone = call("POST", EXP, json=infer_body(x[i:i + 1],
                                                  parameters={"routing_key": key})).json()
        assert alone["parameters"]["arm"] == out["arm"][i]
        assert out["probability"][i] == pytest.approx(alone["outputs"][0]["data"][0], rel=1e-6)
        assert out["probability"][i] == pytest.approx(
            float(expected_probability(out["arm"][i], x[i:i + 1])[0]), rel=1e-6)
        row, single = (recorded[out["prediction_id"][i]],
                       ledger.predictions("direction-ab")[-1])
        for field in ("routing_key", "entity", "day", "arm", "assignment", "propensity",
                      "inputs_digest"):
            assert row[field] == single[field], field
        assert row["routing_key"] == key
        scored = {s["arm"] for s in ledger.scores(out["prediction_id"][i])}
        assert scored == {s["arm"] for s in ledger.scores(alone["parameters"]["prediction_id"])}
        assert {"baseline", "enhanced"} <= scored  # shadow: every row scored by both arms


def test_binary_features_and_binary_keys_give_the_json_answer(call: Call) -> None:
    x, keys = rows(7, seed=2)
    as_json = outputs(call("POST", EXP, json=keyed_body(x, keys)).json())
    raw_x = np.ascontiguousarray(x, dtype="<f4").tobytes()
    raw_keys = b"".join(len(k).to_bytes(4, "little") + k.encode() for k in keys)
    import orjson

    head = orjson.dumps({"inputs": [
        {"name": "features", "datatype": "FP32", "shape": list(x.shape),
         "parameters": {"binary_data_size": len(raw_x)}},
        {"name": "routing_key", "datatype": "BYTES", "shape": [7],
         "parameters": {"binary_data_size": len(raw_keys)}}]})
    r = call("POST", EXP, content=head + raw_x + raw_keys,
             headers={"inference-header-content-length": str(len(head))})
    assert r.status_code == 200, r.text
    as_binary = outputs(r.json())
    assert as_binary["arm"] == as_json["arm"]
    assert as_binary["probability"] == pytest.approx(as_json["probability"], rel=1e-6)


def test_a_keyed_request_counts_once_and_its_rows_under_their_arms(call: Call) -> None:
    def metric(text: str, name: str, **labels: str) -> float:
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line
                                                   for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    before = call("GET", "/metrics").text
    x, keys = rows(12, seed=3)
    out = outputs(call("POST", EXP, json=keyed_body(x, keys)).json())
    after = call("GET", "/metrics").text
    requests = "finmlops_requests_total"
    assert metric(after, requests, arm="per-row") - metric(before, requests, arm="per-row") == 1
    for arm in ("baseline", "enhanced"):
        served = out["arm"].count(arm)
        grown = (metric(after, "finmlops_predictions_total", arm=arm)
                 - metric(before, "finmlops_predictions_total", arm=arm))
        assert grown == served, arm


def _with_keys(keys: Any, datatype: str = "BYTES", shape: Any = None,
               parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    x, _ = rows(2, seed=4)
    body = infer_body(x, **({"parameters": parameters} if parameters else {}))
    body["inputs"].append({"name": "routing_key", "datatype": datatype,
                           "shape": [2] if shape is None else shape, "data": keys})
    return body


@pytest.mark.parametrize(("body", "says"), [
    (_with_keys(["A:2021-01-04"]), "must hold 2 strings"),
    (_with_keys(["A", "B"], shape=[3]), "shape [2]"),
    (_with_keys(["A", "B"], datatype="FP32"), "BYTES"),
    (_with_keys([1, 2]), "routing_key must be a printable string"),
    (_with_keys(["A", "B"], parameters={"routing_key": "A"}), "not both"),
], ids=["too-few-keys", "wrong-shape", "wrong-datatype", "not-strings", "key-twice"])
def test_bad_row_keys_are_a_400_naming_the_rule(call: Call, body: dict[str, Any],
                                                says: str) -> None:
    r = call("POST", EXP, json=body)
    assert r.status_code == 400
    assert says in r.json()["error"]


def test_a_direct_model_records_each_rows_key(app: RestApp, call: Call) -> None:
    x, keys = rows(3, seed=5)
    out = outputs(call("POST", "/v2/models/enhanced/infer", json=keyed_body(x, keys)).json())
    assert out["arm"] == ["enhanced"] * 3
    ledger = app.plane.ledger
    assert ledger is not None
    recorded = {p["prediction_id"]: p for p in ledger.predictions()}
    assert [(recorded[p]["routing_key"], recorded[p]["assignment"])
            for p in out["prediction_id"]] == [(k, "direct") for k in keys]
