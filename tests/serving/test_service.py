"""The service end to end on a real uvicorn server: every route, error, the experiment, and
the ledger behind every answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from scipy.stats import chisquare
from serving_support import expected_probability, infer_body, make_settings, zeros

from finmlops.config import Settings
from finmlops.ledger import Ledger, open_ledger

pytestmark = pytest.mark.integration
EXP = "/v2/models/direction-ab/infer"


def client(handle: Any, **kw: Any) -> httpx.Client:
    """TCP_NODELAY: httpx writes headers and body separately, and Nagle + delayed ACK
    would add 40 ms to every request."""
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    return httpx.Client(base_url=handle.url, timeout=10.0,
                        transport=httpx.HTTPTransport(socket_options=nodelay), **kw)


def ledger_of(handle: Any) -> Ledger:
    led: Ledger = handle.app.plane.ledger
    return led


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


@dataclass(frozen=True)
class RouteTour:
    """One pass over every V2 route on a server of its own, in this order: the GETs of
    :data:`TOUR_GETS`, a 3-row infer on ``enhanced`` v7 (``id="abc"``), two experiment infers
    (one with an ``x-request-id`` header, one with no id), the OpenAPI document, five
    ``baseline`` infers, then ``/metrics`` — 8 requests, 20 rows."""

    handle: Any
    get: dict[str, httpx.Response]
    x: np.ndarray
    direct: httpx.Response
    from_header: httpx.Response
    generated: httpx.Response
    openapi: httpx.Response
    metrics: str


TOUR_GETS = ("/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/baseline",
             "/v2/models/baseline/versions/3", "/v2/models/baseline/ready",
             "/v2/models/baseline/versions/3/ready", "/v2/models/direction-ab",
             "/v2/models/direction-ab/ready")


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Any]
         ) -> Iterator[RouteTour]:
    from finmlops.serving import create_app, run_in_thread

    settings = make_settings(tmp_path_factory.mktemp("tour"))
    h = run_in_thread(create_app(settings, models=models), "127.0.0.1", 0)
    try:
        with client(h) as c:
            get = {path: c.get(path) for path in TOUR_GETS}
            x = np.random.default_rng(1).normal(size=(3, 4, 3)).astype(np.float32)
            direct = c.post("/v2/models/enhanced/versions/7/infer", json=infer_body(x, id="abc"))
            from_header = c.post(EXP, json=infer_body(zeros()),
                                 headers={"x-request-id": "from-header"})
            generated = c.post(EXP, json=infer_body(zeros()))
            openapi = c.get("/openapi.json")
            for _ in range(5):
                c.post("/v2/models/baseline/infer", json=infer_body(x))
            metrics = c.get("/metrics").text
        yield RouteTour(h, get, x, direct, from_header, generated, openapi, metrics)
    finally:
        h.stop()


def test_health_probes_answer_live_and_ready(tour: RouteTour) -> None:
    assert tour.get["/v2/health/live"].json() == {"live": True}
    assert tour.get["/v2/health/ready"].json() == {"ready": True}


def test_server_metadata_names_finmlops(tour: RouteTour) -> None:
    assert tour.get["/v2"].json()["name"] == "finmlops"


def test_model_metadata_lists_versions_and_tensors(tour: RouteTour) -> None:
    meta = tour.get["/v2/models/baseline"].json()
    assert meta["versions"] == ["3"]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4, 3]}]
    assert meta["outputs"][0]["name"] == "probability"


def test_a_model_version_has_the_model_metadata(tour: RouteTour) -> None:
    assert tour.get["/v2/models/baseline/versions/3"].json() == \
        tour.get["/v2/models/baseline"].json()


def test_model_readiness_by_name_and_by_version(tour: RouteTour) -> None:
    assert tour.get["/v2/models/baseline/ready"].json() == {"name": "baseline", "ready": True}
    assert tour.get["/v2/models/baseline/versions/3/ready"].status_code == 200


def test_the_experiment_is_described_like_a_model(tour: RouteTour) -> None:
    exp = tour.get["/v2/models/direction-ab"].json()
    assert exp["platform"] == "finmlops-experiment"
    assert exp["parameters"]["candidates"][0] == {"name": "baseline", "weight": 70}
    assert exp["parameters"]["version"] == 1
    assert tour.get["/v2/models/direction-ab/ready"].json()["ready"] is True


def test_a_model_version_infer_answers_as_that_version_directly(tour: RouteTour) -> None:
    r = tour.direct
    assert r.status_code == 200
    out = r.json()
    assert (out["model_name"], out["model_version"], out["id"]) == ("enhanced", "7", "abc")
    assert out["parameters"] == {"arm": "enhanced",
                                 "prediction_id": out["parameters"]["prediction_id"],
                                 "assignment": "direct"}


def test_a_model_version_infer_scores_with_that_model(tour: RouteTour) -> None:
    np.testing.assert_allclose(tour.direct.json()["outputs"][0]["data"],
                               expected_probability("enhanced", tour.x), rtol=1e-5)


def test_an_answer_names_its_request_prediction_and_route_in_headers(tour: RouteTour) -> None:
    r = tour.direct
    assert r.headers["x-request-id"] == "abc"
    assert r.headers["x-prediction-id"] == r.json()["parameters"]["prediction_id"]
    assert r.headers["x-seldon-route"] == ":enhanced_7:"


def test_an_experiment_infer_takes_its_id_from_the_request_id_header(tour: RouteTour) -> None:
    assert tour.from_header.json()["id"] == "from-header"


def test_an_experiment_infer_routes_at_random_to_a_candidate(tour: RouteTour) -> None:
    params = tour.from_header.json()["parameters"]
    assert params["arm"] in ("baseline", "enhanced")
    assert (params["experiment"], params["experiment_version"],
            params["assignment"]) == ("direction-ab", 1, "random")


def test_a_request_without_an_id_is_answered_under_its_prediction_id(tour: RouteTour) -> None:
    generated = tour.generated.json()
    assert generated["id"] == generated["parameters"]["prediction_id"]


def test_the_openapi_document_is_3_1_and_has_the_infer_route(tour: RouteTour) -> None:
    doc = tour.openapi.json()
    assert doc["openapi"].startswith("3.1") and "/v2/models/{name}/infer" in doc["paths"]


def test_metrics_count_requests_by_arm_experiment_and_model(tour: RouteTour) -> None:
    assert ('finmlops_requests_total{arm="enhanced",experiment="",model="enhanced"'
            in tour.metrics)


def test_metrics_report_readiness_and_ledger_health(tour: RouteTour) -> None:
    assert "finmlops_ready 1.0" in tour.metrics
    assert "finmlops_ledger_healthy 1.0" in tour.metrics


def test_metrics_report_the_experiment_version(tour: RouteTour) -> None:
    assert 'finmlops_experiment_version{experiment="direction-ab"} 1.0' in tour.metrics


def test_metrics_count_one_ledger_commit_per_request(tour: RouteTour) -> None:
    assert metric(tour.metrics, "finmlops_ledger_committed_total") == 8


def test_metrics_describe_the_models_and_the_weights(tour: RouteTour) -> None:
    assert 'finmlops_model_info{' in tour.metrics
    assert 'finmlops_experiment_weight_ratio{' in tour.metrics


def test_metrics_report_the_last_bar_of_the_models_data(tour: RouteTour) -> None:
    assert ('finmlops_data_last_bar_timestamp_seconds{dataset="test"} 1.5462144e+09'
            in tour.metrics)


def test_drift_is_measured_only_for_a_model_whose_card_has_a_reference(
        tour: RouteTour) -> None:
    """Only baseline's model.json carries a drift reference (without predictions)."""
    assert 'finmlops_drift_psi{feature="ret_1",model="baseline"}' in tour.metrics
    assert 'finmlops_drift_psi{feature="prediction"' not in tour.metrics
    assert 'model="enhanced"' not in "".join(
        line for line in tour.metrics.splitlines() if line.startswith("finmlops_drift"))


def test_each_row_of_a_batch_is_a_prediction_in_the_ledger(tour: RouteTour) -> None:
    assert len(ledger_of(tour.handle).predictions()) == 20  # 3-row batches: 8 requests


def test_a_batch_s_rows_are_numbered_under_its_prediction_id(tour: RouteTour) -> None:
    pid = tour.direct.json()["parameters"]["prediction_id"]
    direct = [r for r in ledger_of(tour.handle).predictions() if r["client_id"] == "abc"]
    assert [r["prediction_id"] for r in direct] == [pid, f"{pid}/1", f"{pid}/2"]


def test_direct_traffic_is_recorded_outside_the_experiment(tour: RouteTour) -> None:
    direct = [r for r in ledger_of(tour.handle).predictions() if r["client_id"] == "abc"]
    assert len(direct) == 3
    assert all(r["assignment"] == "direct" and r["experiment"] is None for r in direct)


def test_every_answered_prediction_is_committed_before_its_answer(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    """A second connection to the ledger sees each prediction the moment its 200 arrives."""
    s = settings_for()
    h = start_server(s)
    reader = open_ledger(s.ledger_url, create=False)
    try:
        with client(h) as c:
            for i in range(30):
                r = c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": f"T:{i}"}))
                pid = r.json()["parameters"]["prediction_id"]
                scores = reader.scores(pid)
                assert {row["arm"] for row in scores} == {"baseline", "enhanced"}  # shadow
                assert sum(row["served"] for row in scores) == 1
    finally:
        reader.close()


def test_error_codes(start_server: Callable[..., Any], settings_for: Callable[..., Settings]
                     ) -> None:
    h = start_server(settings_for(**{"serve.max_body_bytes": 2048}))
    good = infer_body(zeros())
    with client(h) as c:
        def err(r: httpx.Response, status: int) -> str:
            assert r.status_code == status, r.text
            assert r.headers["content-type"] == "application/json"
            message: str = r.json()["error"]
            return message

        assert "JSON" in err(c.post(EXP, content=b"{nope"), 400)
        err(c.post(EXP, content=b'{"inputs": [{"data": [NaN]}]}'), 400)
        bad_type = infer_body(zeros())
        bad_type["inputs"][0]["datatype"] = "INT32"
        assert "datatype" in err(c.post(EXP, json=bad_type), 400)
        bad_shape = infer_body(zeros())
        bad_shape["inputs"][0]["shape"] = [1, 3, 4]
        assert "shape" in err(c.post(EXP, json=bad_shape), 400)
        short = infer_body(zeros())
        short["inputs"][0]["data"] = short["inputs"][0]["data"][:-1]
        assert "values" in err(c.post(EXP, json=short), 400)
        overflow = infer_body(zeros())
        overflow["inputs"][0]["data"][0] = 1e300
        assert "finite" in err(c.post(EXP, json=overflow), 400)
        err(c.post("/v2/models/nope/infer", json=good), 404)
        err(c.post("/v2/models/baseline/versions/99/infer", json=good), 404)
        err(c.get("/v2/models/nope"), 404)
        err(c.get("/v2/models/baseline/versions/1"), 404)
        err(c.get("/nothing/here"), 404)
        r = c.get(EXP)
        err(r, 405)
        assert r.headers["allow"] == "POST"
        err(c.post(EXP, content=b"x" * 5000), 413)

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b" " * 500

        r = c.post(EXP, content=chunks())
        assert "content-length" not in r.request.headers
        err(r, 413)
        err(c.post("/v2/feedback", json={"outcomes": "x"}), 400)
        assert c.post(EXP, json=good).status_code == 200
        text = c.get("/metrics").text
        assert 'status="400"' in text
        assert 'finmlops_feedback_requests_total{status="400"} 1.0' in text
    assert ledger_of(h).counts()["predictions"] == 1


def test_request_timeout_is_a_504(start_server: Callable[..., Any],
                                  settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for(**{"serve.request_timeout_s": 0.3}))
    with socket.create_connection((h.host, h.port), timeout=5) as s:
        s.sendall(b"POST /v2/models/direction-ab/infer HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"inp")
        reply = ""
        while not reply.endswith("}"):
            chunk = s.recv(4096).decode()
            if not chunk:
                break
            reply += chunk
    assert reply.startswith("HTTP/1.1 504") and "timed out" in reply


def test_not_ready_until_models_are_loaded(start_server: Callable[..., Any],
                                           settings_for: Callable[..., Settings],
                                           models: dict[str, Any]) -> None:
    gate = threading.Event()

    def slow_loader() -> dict[str, Any]:
        gate.wait(10)
        return models

    h = start_server(settings_for(), wait_ready=False, loader=slow_loader)
    with client(h) as c:
        assert c.get("/v2/health/live").status_code == 200
        r = c.get("/v2/health/ready")
        assert r.status_code == 503 and r.json() == {"error": "not ready"}
        assert c.post(EXP, json=infer_body(zeros())).status_code == 503
        assert c.get("/v2/models/baseline").status_code == 503
        assert "finmlops_ready 0.0" in c.get("/metrics").text
        assert c.get("/admin/status").json()["models_loaded"] is False
        gate.set()
        assert h.app.wait_loaded(10)
        assert c.get("/v2/health/ready").status_code == 200
        assert c.post(EXP, json=infer_body(zeros())).status_code == 200


def test_a_model_that_cannot_load_is_reported_to_admin_not_to_the_probe(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings],
        tmp_path: Any) -> None:
    h = start_server(settings_for(), wait_ready=False,
                     models={"baseline": tmp_path / "missing", "enhanced": tmp_path / "gone"})
    h.app.wait_loaded(10)
    with client(h) as c:
        r = c.get("/v2/health/ready")
        assert r.status_code == 503 and r.json() == {"error": "not ready"}
        assert str(tmp_path) not in r.text
        status = c.get("/admin/status").json()
        assert status["ready"] is False and "model.onnx" in status["load_error"]


def test_sticky_pinned_and_seldon_routing(start_server: Callable[..., Any],
                                          settings_for: Callable[..., Settings]) -> None:
    from finmlops.serving.router import Router

    h = start_server(settings_for())
    router = Router.build("direction-ab", [("baseline", 70), ("enhanced", 30)], version=1)
    with client(h) as c:
        for key in ("alice", "bob", "carol", "dave", "erin", "frank"):
            arms = {c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": key}))
                    .json()["model_name"] for _ in range(5)}
            by_header = {c.post(EXP, json=infer_body(zeros()), headers={"x-routing-key": key})
                         .json()["model_name"] for _ in range(3)}
            assert arms == by_header == {router.choose(key, 0.0).arm}
        pinned = [c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": "p:1"}),
                         headers={"x-seldon-route": ":enhanced_7:"}).json()
                  for _ in range(15)]
        assert {p["model_name"] for p in pinned} == {"enhanced"}
        assert {p["parameters"]["assignment"] for p in pinned} == {"pinned"}
        first = c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": "zed"}))
        again = {c.post(EXP, json=infer_body(zeros()),
                        headers={"x-seldon-route": first.headers["x-seldon-route"]})
                 .json()["model_name"] for _ in range(10)}
        assert again == {first.json()["model_name"]}
        # Seldon Core v2: the experiment by header, and the default model's own endpoint
        # enters the experiment; <model>.model reaches the model itself.
        r = c.post("/v2/models/whatever/infer", json=infer_body(zeros()),
                   headers={"seldon-model": "direction-ab.experiment"})
        assert r.status_code == 200 and r.json()["parameters"]["experiment"] == "direction-ab"
        via_default = [c.post("/v2/models/baseline/infer", json=infer_body(zeros())).json()
                       for _ in range(40)]
        assert {v["parameters"]["experiment"] for v in via_default} == {"direction-ab"}
        assert {v["model_name"] for v in via_default} == {"baseline", "enhanced"}
        r = c.post("/v2/models/whatever/infer", json=infer_body(zeros()),
                   headers={"seldon-model": "baseline.model"})
        assert r.json()["model_name"] == "baseline" and "experiment" not in r.json()["parameters"]
        r = c.post("/v2/models/whatever/infer", json=infer_body(zeros()),
                   headers={"seldon-model": "challenger"})
        assert r.json()["model_name"] == "challenger"
    rows = ledger_of(h).predictions("direction-ab")
    assert sum(r["assignment"] == "pinned" for r in rows) == 25  # 15 + the 10 replayed
    assert all(r["propensity"] == 1.0 for r in rows if r["assignment"] == "pinned")


def test_end_to_end_split_matches_the_router_and_passes_srm(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    from finmlops.serving.router import Router

    h = start_server(settings_for())
    router = Router.build("direction-ab", [("baseline", 70), ("enhanced", 30)], version=1)
    n = 1500
    counts = {"baseline": 0, "enhanced": 0}
    with client(h) as c:
        for i in range(n):
            key = f"user-{i}"
            arm = c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": key})
                         ).json()["parameters"]["arm"]
            assert arm == router.choose(key, 0.0).arm
            counts[arm] += 1
    assert abs(counts["baseline"] / n - 0.70) < 0.03
    assert chisquare(list(counts.values()), [0.7 * n, 0.3 * n]).pvalue > 0.001
    led = ledger_of(h)
    rows = led.predictions("direction-ab")
    assert len(rows) == n
    assert sum(r["arm"] == "baseline" for r in rows) == counts["baseline"]
    assert {(r["assignment"], r["config_version"]) for r in rows} == {("hash", 1)}
    assert {r["propensity"] for r in rows if r["arm"] == "baseline"} == {0.7}
    assert led.assignment_counts("direction-ab") == {1: counts}


def test_mirror_is_scored_and_committed_but_never_returned(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    s = settings_for(**{"experiment.mirror": {"name": "challenger", "percent": 100}})
    h = start_server(s)
    with client(h) as c:
        ids = []
        for i in range(30):
            out = c.post(EXP, json=infer_body(zeros(), id=f"m{i}")).json()
            assert out["model_name"] != "challenger"
            ids.append(out["parameters"]["prediction_id"])
    led = ledger_of(h)
    for pid in ids:
        rows = {r["arm"]: r for r in led.scores(pid)}
        assert rows["challenger"]["served"] == 0
        assert rows["challenger"]["probability"] == pytest.approx(
            float(expected_probability("challenger", zeros())[0]), rel=1e-5)
        assert sum(r["served"] for r in rows.values()) == 1
    assert all(r["arm"] != "challenger" for r in led.predictions())


def test_shadow_mode_scores_every_arm_per_request(start_server: Callable[..., Any],
                                                  settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for(**{"experiment.shadow": True}))
    x = np.random.default_rng(3).normal(size=(1, 4, 3)).astype(np.float32)
    with client(h) as c:
        answers = [c.post(EXP, json=infer_body(x, parameters={"routing_key": f"S{i}:2020-01-02"}))
                   .json() for i in range(40)]
        assert {a["model_name"] for a in answers} == {"baseline", "enhanced"}
        ids = [a["parameters"]["prediction_id"] for a in answers]
        fb = c.post("/v2/feedback", json={"outcomes": [
            {"prediction_id": pid, "realized_return": 0.01} for pid in ids]}).json()
        assert fb == {"accepted": 40, "duplicates": 0, "unknown": []}
        text = c.get("/metrics").text
    led = ledger_of(h)
    for pid in ids:
        rows = {r["arm"]: r for r in led.scores(pid)}
        assert set(rows) == {"baseline", "enhanced"}
        assert sum(r["served"] for r in rows.values()) == 1
        for arm, r in rows.items():
            assert r["probability"] == pytest.approx(
                float(expected_probability(arm, x)[0]), rel=1e-5)
    assert ('finmlops_paired_outcomes_total{arm="enhanced",experiment="direction-ab",'
            'reference="baseline"} 40.0') in text


def test_feedback_counts_once_in_the_ledger_and_the_counters(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    s = settings_for(**{"experiment.shadow": False})
    h = start_server(s)
    with client(h) as c:
        ids = [c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": f"F{i}:2020-01-02"}))
               .json()["parameters"]["prediction_id"] for i in range(20)]
        batch = c.post(EXP, json=infer_body(zeros(3), id="batch")).json()
        assert batch["outputs"][0]["shape"] == [3]
        bpid = batch["parameters"]["prediction_id"]
        # the prediction was committed before its answer: feedback finds it at once
        one = c.post("/v2/feedback", json={"prediction_id": ids[0], "realized_return": 0.02})
        assert one.json() == {"accepted": 1, "duplicates": 0, "unknown": []}
        body = {"outcomes": [{"prediction_id": ids[0], "realized_return": 0.02}]
                + [{"prediction_id": p, "realized_return": -0.01} for p in ids[1:]]
                + [{"prediction_id": f"{bpid}/2", "realized_return": 0.0, "direction": 1},
                   {"prediction_id": "ghost", "realized_return": 0.01}]}
        first = c.post("/v2/feedback", json=body).json()
        assert first == {"accepted": 20, "duplicates": 1, "unknown": ["ghost"]}
        second = c.post("/v2/feedback", json=body).json()
        assert second == {"accepted": 0, "duplicates": 21, "unknown": ["ghost"]}
        text = c.get("/metrics").text
    led = ledger_of(h)
    assert led.counts() == {"predictions": 23, "scores": 23, "feedback": 21}
    served = led.outcomes("direction-ab", s.evaluation)
    served = served[served["served"]]
    assert len(served) == 21
    assert metric(text, "finmlops_feedback_total") == 21
    assert metric(text, "finmlops_feedback_hits_total") == served["hit"].sum()
    assert metric(text, "finmlops_feedback_return_sum") == pytest.approx(
        served["net_return"].sum(), abs=1e-12)
    assert metric(text, "finmlops_feedback_return_sq_sum") == pytest.approx(
        (served["net_return"] ** 2).sum(), abs=1e-12)


def test_a_second_different_outcome_is_a_409_and_changes_nothing(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for())
    with client(h) as c:
        key = "IBB:2026-04-30"
        c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": key}))
        assert c.post("/v2/feedback", json={"routing_key": key, "realized_return": 0.01}
                      ).json()["accepted"] == 1
        r = c.post("/v2/feedback", json={"routing_key": key, "realized_return": 0.05})
        assert r.status_code == 409
        body = r.json()
        assert "recorded once" in body["error"] and len(body["conflicts"]) == 1
        assert 'finmlops_feedback_requests_total{status="409"} 1.0' in c.get("/metrics").text
    rows = ledger_of(h).feedback()
    assert [round(r["realized_return"], 6) for r in rows] == [0.01]


def test_weights_change_at_run_time_under_concurrent_traffic(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    reloaded = settings_for(**{"experiment.candidates": [{"name": "baseline", "weight": 0},
                                                        {"name": "enhanced", "weight": 5}]})
    h = start_server(settings_for(), settings_loader=lambda: reloaded)
    failures: list[str] = []
    served = 0
    stop = threading.Event()

    def fire() -> None:
        nonlocal served
        with client(h) as c:
            while not stop.is_set():
                r = c.post(EXP, json=infer_body(zeros()))
                if r.status_code != 200:
                    failures.append(r.text)
                served += 1

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for t in threads:
        t.start()
    with client(h) as admin:
        for i in range(20):
            w = [{"name": "baseline", "weight": i % 3}, {"name": "enhanced", "weight": 1}]
            r = admin.put("/admin/experiment", json={"candidates": w})
            assert r.status_code == 200, r.text
            assert r.json()["version"] == i + 2
            time.sleep(0.02)
        stop.set()
        for t in threads:
            t.join()
        for bad in ([{"name": "nope", "weight": 1}], [{"name": "baseline", "weight": -1}],
                    [{"name": "baseline", "weight": 0}]):
            assert admin.put("/admin/experiment", json={"candidates": bad}).status_code == 400
        r = admin.put("/admin/experiment", json={"candidates": [
            {"name": "baseline", "weight": 0}, {"name": "enhanced", "weight": 1}]})
        assert r.json()["candidates"][1] == {"name": "enhanced", "weight": 1}
        assert {admin.post(EXP, json=infer_body(zeros())).json()["model_name"]
                for _ in range(20)} == {"enhanced"}
        assert 'finmlops_experiment_weight_ratio{arm="enhanced",experiment="direction-ab"} 1.0' \
            in admin.get("/metrics").text
        reload = admin.post("/admin/reload").json()
        assert reload["candidates"] == [{"name": "baseline", "weight": 0},
                                        {"name": "enhanced", "weight": 5}]
    assert served > 50 and failures == []
    led = ledger_of(h)
    versions = led.experiment_versions("direction-ab")
    assert [v.source for v in versions] == ["config"] + ["admin"] * 21 + ["config"]
    assert versions[1].actor == "anonymous"
    rows = led.predictions("direction-ab")
    assert len(rows) == served + 20
    # every row carries the version that routed it, and that version's weights decided it
    by_version = {v.version: v.weights for v in versions}
    assert all(by_version[r["config_version"]][r["arm"]] > 0 for r in rows)


def test_feedback_by_routing_key_reaches_every_prediction_once(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    """A cron job knows only "TICKER:DATE": the outcome joins every prediction and every
    scored arm under that key, once, in the ledger and in the counters."""
    s = settings_for(**{"experiment.shadow": True})
    h = start_server(s)
    key, other, batch_key = "IBB:2026-04-30", "IBB:2026-05-01", "SPY:2026-04-30"
    pids: dict[str, str] = {}

    def infer(c: httpx.Client, name: str, routing_key: str, n: int = 1) -> None:
        r = c.post(EXP, json=infer_body(zeros(n), id=name,
                                        parameters={"routing_key": routing_key}))
        assert r.status_code == 200, r.text
        pids[name] = r.json()["parameters"]["prediction_id"]

    with client(h) as c:
        for i in range(3):  # the same key from three clients / reruns
            infer(c, f"k{i}", key)
        infer(c, "b", batch_key, n=2)  # one request, two rows
        infer(c, "o", other)
        body = {"outcomes": [{"routing_key": key, "realized_return": 0.0123},
                             {"routing_key": "GHOST:2026-01-01", "realized_return": 0.01}]}
        first = c.post("/v2/feedback", json=body)
        assert first.json() == {"accepted": 3, "duplicates": 0,
                                "unknown": ["GHOST:2026-01-01"]}, first.text
        assert c.post("/v2/feedback", json=body).json() == {
            "accepted": 0, "duplicates": 3, "unknown": ["GHOST:2026-01-01"]}
        single = c.post("/v2/feedback", json={"routing_key": batch_key,
                                              "realized_return": -0.01, "direction": 1})
        assert single.json() == {"accepted": 2, "duplicates": 0, "unknown": []}
        by_id = c.post("/v2/feedback", json={"prediction_id": pids["o"],
                                             "realized_return": 0.02})
        assert by_id.json()["accepted"] == 1
        for bad in ({"prediction_id": "x", "routing_key": key, "realized_return": 0.01},
                    {"realized_return": 0.01},
                    {"request_id": pids["o"], "realized_return": 0.01},
                    {"outcomes": [{"routing_key": "", "realized_return": 0.01}]},
                    {"routing_key": 7, "realized_return": 0.01},
                    {"routing_key": key, "realized_return": 11.0}):
            r = c.post("/v2/feedback", json=bad)
            assert r.status_code == 400 and isinstance(r.json()["error"], str), bad
        text = c.get("/metrics").text
    led = ledger_of(h)
    assert led.counts() == {"predictions": 6, "scores": 12, "feedback": 6}
    fb = {r["prediction_id"]: r for r in led.feedback()}
    assert all(fb[pids[f"k{i}"]]["realized_return"] == 0.0123 for i in range(3))
    assert fb[pids["b"]]["direction"] == fb[f"{pids['b']}/1"]["direction"] == 1  # as sent
    # one decision per entity and day: the key sent three times, and the batch's two rows
    # under one key, are traded once each day
    frame = led.outcomes("direction-ab", s.evaluation)
    assert sorted(set(frame["request_id"])) == sorted([pids["k0"], pids["b"], pids["o"]])
    served = frame[frame["served"]]
    assert metric(text, "finmlops_feedback_total") == len(served) == 3
    assert metric(text, "finmlops_feedback_return_sum") == pytest.approx(
        served["net_return"].sum(), abs=1e-12)
    assert metric(text, "finmlops_paired_outcomes_total") == 3


def test_compressed_bodies_are_read_and_bounded(start_server: Callable[..., Any],
                                                settings_for: Callable[..., Settings]) -> None:
    import gzip
    import zlib

    import orjson

    h = start_server(settings_for(**{"serve.max_body_bytes": 4096}))
    body = orjson.dumps(infer_body(zeros()))
    with client(h) as c:
        raw = zlib.compressobj(wbits=-15)
        raw_deflate = raw.compress(body) + raw.flush()  # what some clients send as "deflate"
        for encoding, data in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)),
                               ("deflate", raw_deflate)):
            r = c.post(EXP, content=data, headers={"content-encoding": encoding,
                                                   "content-type": "application/json"})
            assert r.status_code == 200, (encoding, r.text)
        bomb = gzip.compress(b" " * 3_000_000)  # 3 kB compressed, 3 MB inflated
        assert len(bomb) < 4096
        r = c.post(EXP, content=bomb, headers={"content-encoding": "gzip"})
        assert r.status_code == 413 and "decompressed" in r.json()["error"]
        r = c.post(EXP, content=gzip.compress(body)[:-8], headers={"content-encoding": "gzip"})
        assert r.status_code == 400 and "truncated" in r.json()["error"]
        r = c.post(EXP, content=body, headers={"content-encoding": "br"})
        assert r.status_code == 415 and "gzip, deflate" in r.json()["error"]
        r = c.post(EXP, content=b"not gzip", headers={"content-encoding": "gzip"})
        assert r.status_code == 400
