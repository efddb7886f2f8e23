"""The REST routes in-process: the ASGI app behind ``httpx.ASGITransport``, started the way
its lifespan starts it (``start`` + ``wait_loaded``), no socket. One failure per test, so a
red test names the rule that broke; the real server keeps its own tests (test_service.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_support import (
    asgi_calls,
    expected_probability,
    infer_body,
    started_app,
    zeros,
)

from finmlops.serving import RestApp

EXP = "/v2/models/direction-ab/infer"
Call = Callable[..., httpx.Response]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory,
        models: dict[str, Path]) -> Iterator[RestApp]:
    """One app for the module, its bodies capped at 2 KiB."""
    yield from started_app(tmp_path_factory.mktemp("inprocess"), models,
                           **{"serve.max_body_bytes": 2048})


@pytest.fixture(scope="module")
def call(app: RestApp) -> Iterator[Call]:
    """``call(method, path, **httpx kwargs)``: one request through the ASGI app."""
    yield from asgi_calls(app)


def _bad(**change: Any) -> dict[str, Any]:
    body = infer_body(zeros())
    body["inputs"][0].update(change)
    return body


def _short() -> dict[str, Any]:
    body = infer_body(zeros())
    body["inputs"][0]["data"] = body["inputs"][0]["data"][:-1]
    return body


def _overflow() -> dict[str, Any]:
    body = infer_body(zeros())
    body["inputs"][0]["data"][0] = 1e300
    return body


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "says"), [
    ("POST", EXP, {"content": b"{nope"}, 400, "JSON"),
    ("POST", EXP, {"json": _bad(datatype="INT32")}, 400, "datatype"),
    ("POST", EXP, {"json": _bad(shape=[1, 3, 4])}, 400, "shape"),
    ("POST", EXP, {"json": _short()}, 400, "values"),
    ("POST", EXP, {"json": _overflow()}, 400, "finite"),
    ("POST", "/v2/models/nope/infer", {"json": infer_body(zeros())}, 404, "nope"),
    ("POST", "/v2/models/baseline/versions/99/infer", {"json": infer_body(zeros())}, 404,
     "99"),
    ("GET", "/v2/models/nope", {}, 404, "nope"),
    ("GET", "/nothing/here", {}, 404, ""),
    ("POST", EXP, {"content": b"x" * 5000}, 413, ""),
    ("POST", "/v2/feedback", {"json": {"outcomes": "x"}}, 400, ""),
], ids=["not-json", "datatype", "shape", "short-data", "overflow", "unknown-model",
        "unknown-version", "unknown-metadata", "no-route", "body-too-large", "bad-feedback"])
def test_a_bad_request_is_one_json_error_with_its_status(
        call: Call, method: str, path: str, kwargs: dict[str, Any], status: int,
        says: str) -> None:
    r = call(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert says in r.json()["error"]


def test_a_wrong_method_is_a_405_naming_the_allowed_one(call: Call) -> None:
    r = call("GET", EXP)
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


def test_an_arm_answers_with_its_own_model_and_version(call: Call) -> None:
    x = zeros(2)
    r = call("POST", "/v2/models/enhanced/infer", json=infer_body(x))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["model_name"], out["model_version"]) == ("enhanced", "7")
    assert out["outputs"][0]["data"] == pytest.approx(
        expected_probability("enhanced", x).tolist(), rel=1e-6)
    assert r.headers["x-prediction-id"] == out["parameters"]["prediction_id"]


def test_the_probes_answer_and_the_bad_requests_are_counted(call: Call) -> None:
    assert call("GET", "/v2/health/live").json() == {"live": True}
    assert call("GET", "/v2/health/ready").json() == {"ready": True}
    assert call("POST", EXP, content=b"{nope").status_code == 400
    text = call("GET", "/metrics").text
    assert any(line.startswith("finmlops_") and 'status="400"' in line
               for line in text.splitlines())
