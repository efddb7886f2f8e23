"""Fixtures for the A/B tests: hand-made prediction logs (CONTRACTS schema), a fake
Prometheus and a stub V2 service on loopback."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

SCHEMA = """
CREATE TABLE predictions(request_id TEXT PRIMARY KEY, ts REAL, experiment TEXT, arm TEXT,
    model_version TEXT, routing_key TEXT, inputs_digest TEXT, probability REAL,
    predicted_class INTEGER, position REAL);
CREATE TABLE scores(request_id TEXT, arm TEXT, model_version TEXT, probability REAL,
    predicted_class INTEGER, position REAL, served INTEGER, PRIMARY KEY (request_id, arm));
CREATE TABLE feedback(request_id TEXT PRIMARY KEY, ts REAL, direction INTEGER,
    realized_return REAL);
CREATE TABLE outcomes(request_id TEXT, arm TEXT, served INTEGER, hit INTEGER,
    net_return REAL, ts REAL, PRIMARY KEY (request_id, arm));
"""

Row = dict[str, Any]
"""One request: ``day`` (date), ``ticker``, ``served`` arm and ``outcomes`` {arm: (hit, ret)}
(only the served arm unless shadow-scored); ``feedback`` False leaves it without outcome."""


def write_log(path: Path, rows: Sequence[Row], experiment: str = "direction-ab",
              routing: bool = True) -> Path:
    """A prediction log as the service writes it (docs/CONTRACTS.md schema)."""
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    for i, r in enumerate(rows):
        day: dt.date = r["day"]
        ts = dt.datetime(day.year, day.month, day.day, 21, tzinfo=dt.UTC).timestamp() + i * 1e-3
        rid = f"r{i}"
        key = f"{r.get('ticker', 'IBB')}:{day.isoformat()}" if routing else None
        con.execute("INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (rid, ts, r.get("experiment", experiment), r["served"], "1", key, "d",
                     0.6, 1, 1.0))
        for arm, (hit, ret) in r["outcomes"].items():
            served = int(arm == r["served"])
            con.execute("INSERT INTO scores VALUES (?,?,?,?,?,?,?)",
                        (rid, arm, "1", 0.6, 1, 1.0, served))
            if r.get("feedback", True):
                con.execute("INSERT INTO outcomes VALUES (?,?,?,?,?,?)",
                            (rid, arm, served, int(hit), float(ret), ts + 86400))
        if r.get("feedback", True):
            con.execute("INSERT INTO feedback VALUES (?,?,?,?)", (rid, ts + 86400, 1, 0.01))
    con.commit()
    con.close()
    return path


def simulate_rows(days: int = 300, seed: int = 0, shadow: bool = True, effect: float = 0.0,
                  share: float = 0.3, start: dt.date = dt.date(2019, 1, 2)
                  ) -> list[Row]:
    """One IBB request per business day: enhanced (challenger) gets ``share`` of traffic and a
    planted mean return ``effect`` over baseline; with ``shadow`` both arms have outcomes."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0004, 0.015, days)
    dates = []
    d = start
    while len(dates) < days:
        if d.weekday() < 5:
            dates.append(d)
        d += dt.timedelta(days=1)
    rows: list[Row] = []
    for k in range(days):
        base_pos = rng.random() < 0.6
        enh_pos = rng.random() < 0.6
        r_base = market[k] * base_pos - 6e-4 * base_pos
        r_enh = market[k] * enh_pos - 6e-4 * enh_pos + effect
        hit_base = bool(rng.random() < 0.52)
        hit_enh = bool(rng.random() < 0.52)
        served = "enhanced" if rng.random() < share else "baseline"
        outcomes = {"baseline": (hit_base, r_base), "enhanced": (hit_enh, r_enh)}
        if not shadow:
            outcomes = {served: outcomes[served]}
        rows.append({"day": dates[k], "served": served, "outcomes": outcomes})
    return rows


@pytest.fixture
def sim_rows() -> Callable[..., list[Row]]:
    return simulate_rows


@pytest.fixture
def make_log(tmp_path: Path) -> Callable[..., Path]:
    def make(rows: Sequence[Row], name: str = "predictions.db", **kw: Any) -> Path:
        return write_log(tmp_path / name, rows, **kw)

    return make


class JsonHandler(BaseHTTPRequestHandler):
    """Answers with JSON; quiet."""

    def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


class LoopbackServer:
    """A threaded HTTP server on a free loopback port, for the duration of a ``with``."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class FakePrometheus(LoopbackServer):
    """Answers ``/api/v1/query`` from recorded Prometheus-API-shaped vectors, keyed by the
    metric name found in the query; records every query it was asked."""

    def __init__(self, answers: dict[str, list[dict[str, Any]]]) -> None:
        self.answers = answers
        self.queries: list[str] = []
        self.auth: list[str | None] = []
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query).get("query", [""])[0]
                fake.queries.append(query)
                fake.auth.append(self.headers.get("Authorization"))
                if url.path != "/api/v1/query":
                    self._send(404, {"status": "error", "error": "not found"})
                    return
                for metric, result in fake.answers.items():
                    if f"({metric}{{" in query:
                        self._send(200, {"status": "success", "data": {
                            "resultType": "vector", "result": result}})
                        return
                self._send(200, {"status": "success",
                                 "data": {"resultType": "vector", "result": []}})

        self._serve(Handler)


def vector(label_sets: Sequence[tuple[dict[str, str], float]]) -> list[dict[str, Any]]:
    now = time.time()
    return [{"metric": labels, "value": [now, repr(float(v))]} for labels, v in label_sets]


@pytest.fixture
def prom_vector() -> Callable[..., list[dict[str, Any]]]:
    return vector


@pytest.fixture
def fake_prometheus() -> Callable[[dict[str, list[dict[str, Any]]]], FakePrometheus]:
    return FakePrometheus


class StubV2(LoopbackServer):
    """A tiny V2 endpoint: routes by a hash of the routing key, answers with the arm, records
    requests and feedback batches. Stands in for any V2 service (the real one is tested in
    test_abtest_stage.py when present)."""

    def __init__(self, arms: dict[str, int], token: str | None = None,
                 fail_status: int | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.feedback: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        stub = self
        total = sum(arms.values())
        cuts = np.cumsum([w / total for w in arms.values()])
        names = list(arms)

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n))
                stub.auth.append(self.headers.get("Authorization"))
                if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                    self._send(401, {"error": "unauthorized"})
                    return
                if fail_status is not None:
                    self._send(fail_status, {"error": "boom"})
                    return
                if self.path == "/v2/feedback":
                    stub.feedback.append(body)
                    self._send(200, {"matched": len(body["outcomes"])})
                    return
                if not self.path.startswith("/v2/models/direction-ab/infer"):
                    self._send(404, {"error": "unknown model"})
                    return
                stub.requests.append(body)
                key = body["parameters"]["routing_key"]
                digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
                point = int.from_bytes(digest, "big") / 2**64
                arm = names[int(np.searchsorted(cuts, point, side="right"))]
                self._send(200, {"model_name": "direction-ab", "id": body["id"],
                                 "parameters": {"arm": arm},
                                 "outputs": [{"name": "probability", "datatype": "FP32",
                                              "shape": [1], "data": [0.55]}]},
                           {"x-seldon-route": f":{arm}_1:"})

        self._serve(Handler)


@pytest.fixture
def stub_v2() -> Iterator[type[StubV2]]:
    yield StubV2


def write_tiny_model(dest: Path, arm: str, window: int, names: Sequence[str],
                     weight: float, bias: float = 0.0, feature: int = 0) -> Path:
    """An exported model dir (CONTRACTS): p = sigmoid(weight * x[:, -1, feature] + bias)."""
    import onnx
    from onnx import TensorProto, helper

    w = np.zeros((window, len(names)), dtype=np.float32)
    w[-1, feature] = weight
    graph = helper.make_graph(
        [helper.make_node("Mul", ["features", "w"], ["scaled"]),
         helper.make_node("ReduceSum", ["scaled", "axes"], ["z0"], keepdims=0),
         helper.make_node("Add", ["z0", "b"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["probability"])],
        f"tiny_{arm}",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                       ["batch", window, len(names)])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch"])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, list(w.shape), w.ravel()),
                     helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2]),
                     helper.make_tensor("b", TensorProto.FLOAT, [], [bias])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    dest.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest / "model.onnx"))
    meta = {"format": 1, "variant": arm, "target": ["IBB"], "input_name": "features",
            "output_name": "probability", "window": window, "feature_names": list(names),
            "data_version": "test", "weights_hash": f"hash-{arm}",
            "trained_until": "2019-12-31", "horizon": 1, "model_version": "1"}
    (dest / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    return dest


@pytest.fixture
def tiny_model() -> Callable[..., Path]:
    return write_tiny_model


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[Any, Path]]:
    """``cli(*args, **config)`` -> (result, config path): ``finmlops abtest *args`` with a
    config file rooted in tmp_path (``section__key=value`` keyword arguments)."""
    import yaml
    from typer.testing import CliRunner

    from finmlops.cli import app

    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("FINMLOPS_")]:
        monkeypatch.delenv(key)

    def invoke(*args: str, **config: Any) -> tuple[Any, Path]:
        cfg = tmp_path / "finmlops.yaml"
        tree: dict[str, Any] = {"home": str(tmp_path / "home")}
        for dotted, value in config.items():
            node = tree
            *parents, leaf = dotted.split("__")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        cfg.write_text(yaml.safe_dump(tree), "utf-8")
        result = CliRunner().invoke(app, ["--config", str(cfg), "abtest", *args])
        return result, cfg

    return invoke
