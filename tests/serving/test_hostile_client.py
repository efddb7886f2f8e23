"""The service as a hostile client sees it, on a real uvicorn server: token scopes and auth
edge cases, ids it must not be able to take over, headers and bodies that used to crash or
poison, and metric series it must not be able to create."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_support import infer_body, wait_ready, zeros

from finmlops.config import Settings
from finmlops.errors import ConfigError

pytestmark = pytest.mark.integration
EXP = "/v2/models/direction-ab/infer"


def series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}


TOKENS = {"serve.tokens.inference": "inf-s3cret", "serve.tokens.feedback": "fb-s3cret",
          "serve.tokens.admin": "adm-s3cret"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_bearer_scheme_is_case_insensitive_and_nothing_else_passes(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for(**TOKENS))
    body = infer_body(zeros())
    with httpx.Client(base_url=h.url, timeout=10.0) as c:
        for ok in ("Bearer inf-s3cret", "bearer inf-s3cret", "BEARER inf-s3cret",
                   "Bearer  inf-s3cret"):
            assert c.post(EXP, json=body, headers={"authorization": ok}).status_code == 200, ok
        for bad in ("", "Bearer", "Bearer x", "Bearerinf-s3cret", "Basic inf-s3cret",
                    "inf-s3cret", "Bearer inf-s3cre", "Bearer inf-s3cretX",
                    "Bearer INF-S3CRET", "Token inf-s3cret"):
            r = c.post(EXP, json=body, headers={"authorization": bad})
            assert r.status_code == 401, bad
            assert r.headers["www-authenticate"].startswith('Bearer realm="finmlops"'), bad
        assert c.post(f"{EXP}?token=inf-s3cret", json=body).status_code == 401
        assert c.post(f"{EXP}?access_token=inf-s3cret", json=body).status_code == 401
        # A preflight is answered without auth but never runs the route behind it.
        pre = {"origin": "https://evil.example", "access-control-request-method": "PUT"}
        r = c.request("OPTIONS", "/admin/experiment", headers=pre)
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        before = h.app.plane.experiment.router
        c.request("OPTIONS", "/admin/experiment", headers=pre,
                  json={"candidates": [{"name": "baseline", "weight": 1}]})
        assert h.app.plane.experiment.router == before


def test_each_scope_takes_its_own_token_only(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    """The inference token can neither post outcomes nor change the experiment."""
    h = start_server(settings_for(**TOKENS))
    inf, fb, adm = (bearer(TOKENS[f"serve.tokens.{s}"]) for s in ("inference", "feedback",
                                                                   "admin"))
    with httpx.Client(base_url=h.url, timeout=10.0) as c:
        key = {"parameters": {"routing_key": "IBB:2020-01-02"}}
        assert c.post(EXP, json=infer_body(zeros(), **key), headers=inf).status_code == 200
        outcome = {"routing_key": "IBB:2020-01-02", "realized_return": 0.01}
        weights = {"candidates": [{"name": "baseline", "weight": 1},
                                  {"name": "enhanced", "weight": 1}]}
        calls = {
            "infer": lambda hdr: c.post(EXP, json=infer_body(zeros()), headers=hdr),
            "metadata": lambda hdr: c.get("/v2/models/baseline", headers=hdr),
            "feedback": lambda hdr: c.post("/v2/feedback", json=outcome, headers=hdr),
            "weights": lambda hdr: c.put("/admin/experiment", json=weights, headers=hdr),
            "status": lambda hdr: c.get("/admin/status", headers=hdr),
        }
        allowed = {"infer": inf, "metadata": inf, "feedback": fb, "weights": adm, "status": adm}
        for name, call in calls.items():
            for token in (inf, fb, adm):
                r = call(token)
                if token is allowed[name]:
                    assert r.status_code == 200, (name, r.text)
                else:
                    assert r.status_code == 403, (name, token, r.text)
                    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
            r = call({})
            assert r.status_code == 401 and "error" in r.json(), name
        for open_route in ("/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json"):
            assert c.get(open_route).status_code == 200
        text = c.get("/metrics").text
        assert "s3cret" not in text
    rows = h.app.plane.ledger.feedback()
    assert len(rows) == 1 and rows[0]["caller"].startswith("feedback-token:")
    assert "s3cret" not in rows[0]["caller"]
    versions = h.app.plane.ledger.experiment_versions("direction-ab")
    assert versions[-1].actor.startswith("admin-token:")


def test_a_scope_without_a_token_refuses_everyone(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for(**{"serve.tokens.inference": "only-this"}))
    with httpx.Client(base_url=h.url, timeout=10.0) as c:
        assert c.post(EXP, json=infer_body(zeros()),
                      headers=bearer("only-this")).status_code == 200
        r = c.post("/v2/feedback", json={"routing_key": "x", "realized_return": 0.0},
                   headers=bearer("only-this"))
        assert r.status_code == 403 and "no token is configured for feedback" in r.json()["error"]
        assert c.get("/admin/experiment").status_code == 401


@pytest.mark.parametrize("token", ["", "   ", "\n"])
def test_an_empty_token_is_a_config_error_not_an_open_service(
        token: str, settings_for: Callable[..., Settings], models: dict[str, Path]) -> None:
    from finmlops.serving import create_app

    with pytest.raises(ConfigError, match=r"serve\.tokens\.feedback is set but empty"):
        create_app(settings_for(**{"serve.tokens.feedback": token}), models)


def test_a_token_read_from_a_file_with_its_newline_still_works(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for(**{"serve.tokens.inference": "s3cret\n"}))
    with httpx.Client(base_url=h.url, timeout=10.0) as c:
        r = c.post(EXP, json=infer_body(zeros()), headers=bearer("s3cret"))
        assert r.status_code == 200


def test_process_refuses_an_empty_token_with_one_line(tmp_path: Path, model_root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINMLOPS_")}
    env.update(FINMLOPS_ADMIN_TOKEN="", FINMLOPS_HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "finmlops.serving", "--port", "0", "--model-dir",
         str(model_root)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "error: serve.tokens.admin is set but empty: set a token or remove the key"]


def test_a_client_id_is_kept_beside_the_prediction_never_used_as_its_key(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    """Two clients sending the same id, or an id shaped like the service's own, get their own
    predictions; feedback by prediction id reaches exactly the prediction it names."""
    h = start_server(settings_for())
    with httpx.Client(base_url=h.url, timeout=10.0) as c:
        seen = c.post(EXP, json=infer_body(zeros())).json()["parameters"]["prediction_id"]
        prefix, counter = seen.rsplit("-", 1)
        upcoming = f"{prefix}-{int(counter, 16) + 1:x}"
        attacker = c.post(EXP, json=infer_body(zeros(), id=upcoming)).json()
        victim = c.post(EXP, json=infer_body(zeros(), id=upcoming)).json()
        assert attacker["id"] == victim["id"] == upcoming
        a_pid, v_pid = (x["parameters"]["prediction_id"] for x in (attacker, victim))
        assert len({seen, a_pid, v_pid}) == 3 and upcoming in (a_pid, v_pid)
        r = c.post("/v2/feedback", json={"prediction_id": v_pid, "realized_return": 0.01})
        assert r.json() == {"accepted": 1, "duplicates": 0, "unknown": []}
    rows = {r["prediction_id"]: r for r in h.app.plane.ledger.predictions()}
    assert set(rows) == {seen, a_pid, v_pid}
    assert rows[a_pid]["client_id"] == rows[v_pid]["client_id"] == upcoming
    assert [f["prediction_id"] for f in h.app.plane.ledger.feedback()] == [v_pid]


def test_headers_a_client_controls_are_validated(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for())
    body = infer_body(zeros())
    with httpx.Client(base_url=h.url, timeout=10.0) as c:
        for rid in ("caf\xe9".encode("latin-1"), b"a\tb", b"x" * 257):
            r = c.post(EXP, json=body, headers=[(b"x-request-id", rid)])
            assert r.status_code == 400 and "id must be" in r.json()["error"], rid
        r = c.post(EXP, json=body, headers={"x-routing-key": "k" * 257})
        assert r.status_code == 400 and "routing_key" in r.json()["error"]
        long_key = {"parameters": {"routing_key": "k" * 100_000}}
        assert c.post(EXP, json=infer_body(zeros(), **long_key)).status_code == 400
        r = c.post(EXP, json=body, headers={"x-request-id": "r-1", "x-routing-key": "IBB:1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "r-1"


def test_deep_json_and_absurd_feedback_are_400s_not_500s_or_poison(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    h = start_server(settings_for())
    deep = "[" * 1015 + "1" + "]" * 1015
    head = b'{"inputs":[{"name":"features","datatype":"FP32","shape":[1,4,3],"data":'
    raw = head + deep.encode() + b"}]}"
    with httpx.Client(base_url=h.url, timeout=10.0) as c:
        r = c.post(EXP, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        pid = c.post(EXP, json=infer_body(zeros())).json()["parameters"]["prediction_id"]
        r = c.post("/v2/feedback", json={"prediction_id": pid, "realized_return": 1e200})
        assert r.status_code == 400 and "realized_return" in r.json()["error"]
        ok = c.post("/v2/feedback", json={"prediction_id": pid, "realized_return": 0.01})
        assert ok.json()["accepted"] == 1
        text = c.get("/metrics").text
    sums = re.findall(r"^finmlops_feedback_return_sq_sum\{.*\} (\S+)$", text, re.M)
    assert sums and all(float(v) < 1 for v in sums)


def test_a_client_cannot_create_metric_series(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    """Labels come from the loaded models and a fixed set of statuses, never from a path,
    header or body a client sends."""
    h = start_server(settings_for())
    with httpx.Client(base_url=h.url, timeout=10.0) as c:
        for arm in ("baseline_3", "enhanced_7"):  # every series legitimate traffic makes
            c.post(EXP, json=infer_body(zeros()), headers={"x-seldon-route": f":{arm}:"})
        c.post(EXP, json={"inputs": []})
        c.post("/v2/models/nope-0/infer", json=infer_body(zeros()))
        c.delete(EXP)
        c.post("/v2/feedback", json={"prediction_id": "ghost", "realized_return": 0.0})
        before = series(c.get("/metrics").text)
        for i in range(30):
            c.post(f"/v2/models/nope-{i}/infer", json=infer_body(zeros()))
            c.post(EXP, json=infer_body(zeros()), headers={"seldon-model": f"m{i}"})
            c.post(EXP, json=infer_body(zeros()), headers={"x-seldon-route": f":m{i}_1:"})
            c.post(EXP, json={"inputs": [i]})
            c.request(("DELETE", "PATCH", "PUT")[i % 3], EXP)
            c.get(f"/v2/models/nope-{i}")
            c.post("/v2/feedback", json={"prediction_id": f"ghost-{i}", "realized_return": 0.0})
        after = series(c.get("/metrics").text)
    grown = {s for s in after - before if not s.startswith(("finmlops_drift", "python_gc"))}
    assert not grown, sorted(grown)[:5]


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
    ("example.com", False)])
def test_only_loopback_hosts_may_serve_without_a_token_silently(host: str,
                                                                 loopback: bool) -> None:
    """``serve`` warns when it binds anything but loopback without ``serve.tokens``."""
    from finmlops.serving.server import _loopback

    assert _loopback(host) is loopback


def test_oversized_request_ids_are_not_echoed(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    """httptools accepts megabyte headers; the service echoes a request id only up to the
    length it would accept as an id."""
    h = start_server(settings_for())
    with httpx.Client(base_url=h.url, timeout=10.0) as c:
        assert c.get("/v2", headers={"x-request-id": "abc"}).headers["x-request-id"] == "abc"
        r = c.get("/v2/health/live", headers={"x-request-id": "a" * 1_000_000})
        assert r.status_code == 200 and "x-request-id" not in r.headers


def test_the_token_never_reaches_the_logs(tmp_path: Path, model_root: Path) -> None:
    import signal

    token = "tok-" + "9f3a" * 8
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINMLOPS_")}
    env.update(FINMLOPS_INFERENCE_TOKEN=token, FINMLOPS_ADMIN_TOKEN=token + "-admin",
               FINMLOPS_HOME=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "finmlops.serving", "--port", "0", "--model-dir",
         str(model_root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().rsplit(" on ", 1)[1].strip()
        wait_ready(url)
        auth = {"authorization": f"Bearer {token}"}
        admin = {"authorization": f"Bearer {token}-admin"}
        for headers in ({}, {"authorization": f"Bearer {token}x"}, auth):
            httpx.post(f"{url}{EXP}", json=infer_body(zeros()), headers=headers)
        httpx.post(f"{url}{EXP}", json={"inputs": [[[[[0]]]]]}, headers=auth)
        httpx.post(f"{url}/admin/reload", headers=admin)  # re-reads the settings
        httpx.put(f"{url}/admin/experiment", json={"candidates": [{"name": "x", "weight": 1}]},
                  headers=admin)
        httpx.get(f"{url}/admin/status", headers=admin)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert token not in out + err
