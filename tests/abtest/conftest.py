"""Fixtures for the A/B tests: experiment ledgers written through the ledger's API (builders in
abtest_support.py), tiny ONNX models, the CLI, and a stub V2 service on loopback."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest
from abtest_support import Row, cli_in, ledger_maker, simulate_rows

from finmlops.config import Settings
from model_support import write_linear_model


@pytest.fixture
def sim_rows() -> Callable[..., list[Row]]:
    return simulate_rows


@pytest.fixture
def make_ledger(tmp_path: Path, settings: Callable[..., Settings]) -> Callable[..., str]:
    """``make_ledger(rows, name=..., config=...)`` -> the URL of a SQLite ledger in tmp_path
    holding ``rows``, written through the ledger's own API (see abtest_support); ``config``
    (default: the default settings) seeds its experiment version."""
    return ledger_maker(tmp_path, settings())


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


class StubV2(LoopbackServer):
    """A tiny V2 endpoint: routes by a hash of the routing key, answers with the arm and a
    ``prediction_id`` as finmlops does, records requests and feedback batches. Stands in for
    any V2 service (the real one is tested beside it). ``tokens`` maps ``"infer"`` and
    ``"feedback"`` to the bearer token each path requires."""

    def __init__(self, arms: dict[str, int], tokens: dict[str, str] | None = None,
                 fail_status: int | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.feedback: list[dict[str, Any]] = []
        self.auth: list[tuple[str, str | None]] = []
        """``(path, Authorization header)`` of every POST."""
        self.issued: dict[str, str] = {}
        """prediction_id -> routing key of every answer."""
        self.seldon_models: list[str | None] = []
        """The ``seldon-model`` header of every inference request."""
        stub = self
        total = sum(arms.values())
        cuts = np.cumsum([w / total for w in arms.values()])
        names = list(arms)
        needed = tokens or {}

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n))
                auth = self.headers.get("Authorization")
                stub.auth.append((self.path, auth))
                scope = "feedback" if self.path == "/v2/feedback" else "infer"
                if scope in needed and auth != f"Bearer {needed[scope]}":
                    self._send(401, {"error": "unauthorized"})
                    return
                if fail_status is not None:
                    self._send(fail_status, {"error": "boom"})
                    return
                if scope == "feedback":
                    stub.feedback.append(body)
                    self._send(200, {"accepted": len(body["outcomes"]), "duplicates": 0,
                                     "unknown": []})
                    return
                if not self.path.startswith("/v2/models/direction-ab/infer"):
                    self._send(404, {"error": "unknown model"})
                    return
                stub.requests.append(body)
                stub.seldon_models.append(self.headers.get("seldon-model"))
                key = body["parameters"]["routing_key"]
                digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
                point = int.from_bytes(digest, "big") / 2**64
                arm = names[int(np.searchsorted(cuts, point, side="right"))]
                pid = f"stub-{len(stub.requests)}"
                stub.issued[pid] = key
                self._send(200, {"model_name": "direction-ab", "id": body["id"],
                                 "parameters": {"arm": arm, "prediction_id": pid},
                                 "outputs": [{"name": "probability", "datatype": "FP32",
                                              "shape": [1], "data": [0.55]}]},
                           {"x-seldon-route": f":{arm}_1:", "x-prediction-id": pid})

        self._serve(Handler)


@pytest.fixture
def stub_v2() -> Iterator[type[StubV2]]:
    yield StubV2


def write_tiny_model(dest: Path, arm: str, window: int, names: Sequence[str],
                     weight: float, bias: float = 0.0, feature: int = 0) -> Path:
    """An exported model dir (CONTRACTS): p = sigmoid(weight * x[:, -1, feature] + bias)."""
    w = np.zeros((window, len(names)), dtype=np.float32)
    w[-1, feature] = weight
    return write_linear_model(dest, w, variant=arm, feature_names=names, bias=bias,
                              trained_until="2019-12-31", model_version="1")


@pytest.fixture(scope="session")
def tiny_model() -> Callable[..., Path]:
    return write_tiny_model


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[Any, Path]]:
    """``cli(*args, **config)`` -> (result, config path): ``finmlops abtest *args`` with a
    config file rooted in tmp_path (``section__key=value`` keyword arguments)."""
    return cli_in(tmp_path, monkeypatch)
