"""The service end to end on a real uvicorn server: every route, error, the experiment, the log."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from scipy.stats import chisquare
from serving_support import expected_probability, infer_body, zeros

from finmlops.config import Settings

pytestmark = pytest.mark.integration
EXP = "/v2/models/direction-ab/infer"


def client(handle: Any, **kw: Any) -> httpx.Client:
    """TCP_NODELAY: httpx writes headers and body separately, and Nagle + delayed ACK
    would add 40 ms to every request."""
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    return httpx.Client(base_url=handle.url, timeout=10.0,
                        transport=httpx.HTTPTransport(socket_options=nodelay), **kw)


def test_every_v2_route(start_server: Callable[..., Any], settings_for: Callable[..., Settings]
                        ) -> None:
    h = start_server(settings_for())
    with client(h) as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/health/ready").json() == {"ready": True}
        assert c.get("/v2").json()["name"] == "finmlops"
        meta = c.get("/v2/models/baseline").json()
        assert meta["versions"] == ["3"]
        assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4, 3]}]
        assert meta["outputs"][0]["name"] == "probability"
        assert c.get("/v2/models/baseline/versions/3").json() == meta
        assert c.get("/v2/models/baseline/ready").json() == {"name": "baseline", "ready": True}
        assert c.get("/v2/models/baseline/versions/3/ready").status_code == 200
        exp = c.get("/v2/models/direction-ab").json()
        assert exp["platform"] == "finmlops-experiment"
        assert exp["parameters"]["candidates"][0] == {"name": "baseline", "weight": 70}
        assert c.get("/v2/models/direction-ab/ready").json()["ready"] is True
        x = np.random.default_rng(1).normal(size=(3, 4, 3)).astype(np.float32)
        r = c.post("/v2/models/enhanced/versions/7/infer", json=infer_body(x, id="abc"))
        assert r.status_code == 200
        out = r.json()
        assert (out["model_name"], out["model_version"], out["id"]) == ("enhanced", "7", "abc")
        assert out["parameters"] == {"arm": "enhanced", "experiment": None}
        np.testing.assert_allclose(out["outputs"][0]["data"],
                                   expected_probability("enhanced", x), rtol=1e-5)
        assert r.headers["x-request-id"] == "abc"
        assert r.headers["x-seldon-route"] == ":enhanced_7:"
        r = c.post(EXP, json=infer_body(zeros()), headers={"x-request-id": "from-header"})
        assert r.json()["id"] == "from-header" and r.json()["parameters"]["arm"] in (
            "baseline", "enhanced")
        generated = c.post(EXP, json=infer_body(zeros())).json()["id"]
        assert len(generated) >= 16
        doc = c.get("/openapi.json").json()
        assert doc["openapi"].startswith("3.1") and "/v2/models/{name}/infer" in doc["paths"]
        for _ in range(5):
            c.post("/v2/models/baseline/infer", json=infer_body(x))
        h.app.log.flush()
        text = c.get("/metrics").text
        assert 'finmlops_requests_total{arm="enhanced",experiment="",model="enhanced"' in text
        assert "finmlops_ready 1.0" in text
        assert 'finmlops_model_info{' in text and 'finmlops_experiment_weight_ratio{' in text
        assert 'finmlops_data_last_bar_timestamp_seconds{dataset="test"} 1.5462144e+09' in text
        # only baseline's model.json carries a drift reference
        assert 'finmlops_drift_psi{feature="ret_1",model="baseline"}' in text
        assert 'finmlops_drift_psi{feature="prediction"' not in text
        assert 'model="enhanced"' not in "".join(
            line for line in text.splitlines() if line.startswith("finmlops_drift"))


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
        assert 'status="400"' in c.get("/metrics").text


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
        assert r.status_code == 503 and "error" in r.json()
        assert c.post(EXP, json=infer_body(zeros())).status_code == 503
        assert c.get("/v2/models/baseline").status_code == 503
        assert "finmlops_ready 0.0" in c.get("/metrics").text
        gate.set()
        assert h.app.wait_loaded(10)
        assert c.get("/v2/health/ready").status_code == 200
        assert c.post(EXP, json=infer_body(zeros())).status_code == 200


def test_bearer_token_auth(start_server: Callable[..., Any],
                           settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for(**{"serve.api_token": "s3cret"}))
    with client(h) as c:
        assert c.post(EXP, json=infer_body(zeros())).status_code == 401
        r = c.post(EXP, json=infer_body(zeros()), headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json() == {"error": "missing or wrong bearer token"}
        assert c.put("/admin/experiment", json={"candidates": []}).status_code == 401
        ok = c.post(EXP, json=infer_body(zeros()), headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        for open_route in ("/v2/health/live", "/v2/health/ready", "/metrics"):
            assert c.get(open_route).status_code == 200
        assert "s3cret" not in c.get("/metrics").text
        assert c.get("/openapi.json").json()["components"]["securitySchemes"]["bearer"]


def test_cors_preflight_and_allowlist(start_server: Callable[..., Any],
                                      settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for(**{"serve.cors_origins": ["https://ok.example"]}))
    with client(h) as c:
        pre = {"origin": "https://ok.example", "access-control-request-method": "POST",
               "access-control-request-headers": "content-type, authorization"}
        r = c.options(EXP, headers=pre)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://ok.example"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "authorization" in r.headers["access-control-allow-headers"]
        r = c.options(EXP, headers={**pre, "origin": "https://evil.example"})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        r = c.post(EXP, json=infer_body(zeros()), headers={"origin": "https://ok.example"})
        assert r.headers["access-control-allow-origin"] == "https://ok.example"
        assert "x-seldon-route" in r.headers["access-control-expose-headers"]
        r = c.post(EXP, json=infer_body(zeros()), headers={"origin": "https://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_sticky_pinned_and_seldon_header_routing(start_server: Callable[..., Any],
                                                 settings_for: Callable[..., Settings]) -> None:
    from finmlops.serving.router import Router

    h = start_server(settings_for())
    router = Router.build("direction-ab", [("baseline", 70), ("enhanced", 30)])
    with client(h) as c:
        for key in ("alice", "bob", "carol", "dave", "erin", "frank"):
            arms = {c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": key}))
                    .json()["model_name"] for _ in range(5)}
            by_header = {c.post(EXP, json=infer_body(zeros()), headers={"x-routing-key": key})
                         .json()["model_name"] for _ in range(3)}
            assert arms == by_header == {router.choose(key, 0.0)}
        pinned = {c.post(EXP, json=infer_body(zeros()),
                         headers={"x-seldon-route": ":enhanced_7:"}).json()["model_name"]
                  for _ in range(15)}
        assert pinned == {"enhanced"}
        first = c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": "zed"}))
        replay = {c.post(EXP, json=infer_body(zeros()),
                         headers={"x-seldon-route": first.headers["x-seldon-route"]})
                  .json()["model_name"] for _ in range(10)}
        assert replay == {first.json()["model_name"]}
        r = c.post("/v2/models/whatever/infer", json=infer_body(zeros()),
                   headers={"seldon-model": "direction-ab.experiment"})
        assert r.status_code == 200 and r.json()["parameters"]["experiment"] == "direction-ab"
        r = c.post("/v2/models/whatever/infer", json=infer_body(zeros()),
                   headers={"seldon-model": "challenger"})
        assert r.json()["model_name"] == "challenger"


def test_end_to_end_split_matches_the_router_and_passes_srm(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    from finmlops.serving.router import Router

    h = start_server(settings_for())
    router = Router.build("direction-ab", [("baseline", 70), ("enhanced", 30)])
    n = 1500
    counts = {"baseline": 0, "enhanced": 0}
    with client(h) as c:
        for i in range(n):
            key = f"user-{i}"
            arm = c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": key})
                         ).json()["parameters"]["arm"]
            assert arm == router.choose(key, 0.0)
            counts[arm] += 1
    assert abs(counts["baseline"] / n - 0.70) < 0.03
    assert chisquare(list(counts.values()), [0.7 * n, 0.3 * n]).pvalue > 0.001
    h.app.log.flush()
    rows = h.app.log.predictions("direction-ab")
    assert len(rows) == n
    assert sum(r["arm"] == "baseline" for r in rows) == counts["baseline"]


def test_mirror_is_scored_and_logged_but_never_returned(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    s = settings_for(**{"experiment.mirror": {"name": "challenger", "percent": 100}})
    h = start_server(s)
    with client(h) as c:
        ids = []
        for i in range(30):
            out = c.post(EXP, json=infer_body(zeros(), id=f"m{i}")).json()
            assert out["model_name"] != "challenger"
            ids.append(out["id"])
    h.app.log.flush()
    for rid in ids:
        rows = {r["arm"]: r for r in h.app.log.scores(rid)}
        assert rows["challenger"]["served"] == 0
        assert rows["challenger"]["probability"] == pytest.approx(
            float(expected_probability("challenger", zeros())[0]), rel=1e-5)
        assert sum(r["served"] for r in rows.values()) == 1
    assert all(r["arm"] != "challenger" for r in h.app.log.predictions())


def test_shadow_mode_logs_every_arm_per_request(start_server: Callable[..., Any],
                                               settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for(**{"experiment.shadow": True}))
    x = np.random.default_rng(3).normal(size=(1, 4, 3)).astype(np.float32)
    with client(h) as c:
        served = {c.post(EXP, json=infer_body(x, id=f"s{i}")).json()["model_name"]: i
                  for i in range(40)}
        assert set(served) == {"baseline", "enhanced"}
        fb = c.post("/v2/feedback", json={"outcomes": [
            {"request_id": f"s{i}", "realized_return": 0.01} for i in range(40)]}).json()
        assert fb == {"accepted": 40, "duplicates": 0, "unknown": []}
        text = c.get("/metrics").text
    for i in range(40):
        rows = {r["arm"]: r for r in h.app.log.scores(f"s{i}")}
        assert set(rows) == {"baseline", "enhanced"}
        assert sum(r["served"] for r in rows.values()) == 1
        for arm, r in rows.items():
            assert r["probability"] == pytest.approx(
                float(expected_probability(arm, x)[0]), rel=1e-5)
    assert ('finmlops_paired_outcomes_total{arm="enhanced",experiment="direction-ab",'
            'reference="baseline"} 40.0') in text


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{"))


def test_feedback_is_idempotent_in_table_and_counters(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for(**{"serve.log_flush_interval_s": 30.0,
                                     "serve.log_batch_size": 10_000,
                                     "experiment.shadow": False}))
    with client(h) as c:
        ids = [c.post(EXP, json=infer_body(zeros(), id=f"f{i}")).json()["id"] for i in range(20)]
        batch = c.post(EXP, json=infer_body(zeros(3), id="batch")).json()
        assert batch["outputs"][0]["shape"] == [3]
        # nothing is flushed yet (30 s interval): feedback must still find the requests
        assert h.app.log.counts()["predictions"] == 0
        one = c.post("/v2/feedback", json={"request_id": "f0", "realized_return": 0.02})
        assert one.json() == {"accepted": 1, "duplicates": 0, "unknown": []}
        body = {"outcomes": [{"request_id": r, "realized_return": -0.01} for r in ids]
                + [{"request_id": "batch/2", "realized_return": 0.0, "direction": 1},
                   {"request_id": "ghost", "realized_return": 0.01}]}
        first = c.post("/v2/feedback", json=body).json()
        assert first == {"accepted": 20, "duplicates": 1, "unknown": ["ghost"]}
        second = c.post("/v2/feedback", json=body).json()
        assert second == {"accepted": 0, "duplicates": 21, "unknown": ["ghost"]}
        text = c.get("/metrics").text
    counts = h.app.log.counts()
    assert counts["feedback"] == 21 and counts["outcomes"] == 21
    assert counts["predictions"] == 23
    assert metric(text, "finmlops_feedback_total") == 21
    served = [o for o in h.app.log.arm_outcomes("direction-ab") if o["served"]]
    assert len(served) == 21
    assert metric(text, "finmlops_feedback_hits_total") == sum(o["hit"] for o in served)
    assert metric(text, "finmlops_feedback_return_sum") == pytest.approx(
        sum(o["net_return"] for o in served), abs=1e-12)
    assert metric(text, "finmlops_feedback_return_sq_sum") == pytest.approx(
        sum(o["net_return"] ** 2 for o in served), abs=1e-12)


def test_weights_change_at_run_time_under_concurrent_traffic(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings],
        models: dict[str, Any]) -> None:
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
            time.sleep(0.02)
        stop.set()
        for t in threads:
            t.join()
        assert admin.put("/admin/experiment", json={"candidates": [
            {"name": "nope", "weight": 1}]}).status_code == 400
        assert admin.put("/admin/experiment", json={"candidates": [
            {"name": "baseline", "weight": -1}]}).status_code == 400
        assert admin.put("/admin/experiment", json={"candidates": [
            {"name": "baseline", "weight": 0}]}).status_code == 400
        r = admin.put("/admin/experiment", json={"candidates": [
            {"name": "baseline", "weight": 0}, {"name": "enhanced", "weight": 1}]})
        assert r.json()["candidates"][1] == {"name": "enhanced", "weight": 1}
        assert {admin.post(EXP, json=infer_body(zeros())).json()["model_name"]
                for _ in range(20)} == {"enhanced"}
        assert 'finmlops_experiment_weight_ratio{arm="enhanced",experiment="direction-ab"} 1.0' \
            in admin.get("/metrics").text
        r = admin.put("/admin/experiment", json={"candidates": [{"name": "baseline", "weight": 1}]})
        assert r.status_code == 200
        assert admin.post("/admin/reload").json()["candidates"] == [
            {"name": "baseline", "weight": 0}, {"name": "enhanced", "weight": 5}]
    assert served > 50 and failures == []


def test_feedback_by_routing_key_reaches_every_prediction_once(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    """A cron job knows only "TICKER:DATE": the outcome joins every request id and every
    scored arm logged under that key, once, in the tables and in the counters."""
    h = start_server(settings_for(**{"serve.log_flush_interval_s": 30.0,
                                     "serve.log_batch_size": 10_000,
                                     "experiment.shadow": True}))
    key, other, batch_key = "IBB:2026-04-30", "IBB:2026-05-01", "SPY:2026-04-30"

    def infer(c: httpx.Client, rid: str, routing_key: str, n: int = 1) -> None:
        r = c.post(EXP, json=infer_body(zeros(n), id=rid,
                                        parameters={"routing_key": routing_key}))
        assert r.status_code == 200, r.text

    with client(h) as c:
        for i in range(3):  # the same key from three clients / reruns
            infer(c, f"k{i}", key)
        infer(c, "b", batch_key, n=2)  # one request, two rows: ids b and b/1
        infer(c, "o", other)
        infer(c, "no-key", "")  # an empty key is no key of ours
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
        # by id first, then by key: the key's feedback finds it already answered
        by_id = c.post("/v2/feedback", json={"request_id": "o", "realized_return": 0.02})
        assert by_id.json()["accepted"] == 1
        mixed = c.post("/v2/feedback", json={"outcomes": [
            {"routing_key": other, "realized_return": -0.5},
            {"request_id": "k1", "realized_return": 0.3}]})
        assert mixed.json() == {"accepted": 0, "duplicates": 2, "unknown": []}
        for bad in ({"request_id": "k0", "routing_key": key, "realized_return": 0.01},
                    {"realized_return": 0.01},
                    {"outcomes": [{"routing_key": key, "request_id": "k0",
                                   "realized_return": 0.01}]},
                    {"outcomes": [{"routing_key": "", "realized_return": 0.01}]},
                    {"routing_key": 7, "realized_return": 0.01}):
            r = c.post("/v2/feedback", json=bad)
            assert r.status_code == 400 and isinstance(r.json()["error"], str), bad
        text = c.get("/metrics").text
    plog = h.app.log
    counts = plog.counts()
    assert counts["predictions"] == 7 and counts["feedback"] == 6
    assert counts["outcomes"] == 12  # shadow: both arms of every answered request
    fb = {r["request_id"]: r for r in plog._query("SELECT * FROM feedback")}
    assert set(fb) == {"k0", "k1", "k2", "b", "b/1", "o"}
    assert all(fb[f"k{i}"]["realized_return"] == 0.0123 and fb[f"k{i}"]["direction"] == 1
               for i in range(3))
    assert fb["b"]["direction"] == fb["b/1"]["direction"] == 1  # as sent, not derived
    assert fb["o"]["realized_return"] == 0.02  # the first answer stands
    served = [o for o in plog.arm_outcomes("direction-ab") if o["served"]]
    assert len(served) == 6
    assert metric(text, "finmlops_feedback_total") == 6
    assert metric(text, "finmlops_feedback_hits_total") == sum(o["hit"] for o in served)
    assert metric(text, "finmlops_feedback_return_sum") == pytest.approx(
        sum(o["net_return"] for o in served), abs=1e-12)
    assert metric(text, "finmlops_paired_outcomes_total") == 6
