"""Helpers for the serving tests: tiny ONNX models (distinguishable per arm), settings, bodies.

A module of its own (not conftest) so test modules can import it by a unique name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from finmlops.config import Settings, load_settings
from model_support import mean_weights, write_linear_model

WINDOW = 4
FEATURES = ["ret_1", "vol_5", "spy_ret_1"]
ARMS = {"baseline": (1.0, 0.0), "enhanced": (1.0, 2.0), "challenger": (-1.0, -1.0)}
"""arm -> (weight, bias): p = sigmoid(weight * mean(x) + bias), so x = 0 tells arms apart."""


def expected_probability(arm: str, x: np.ndarray) -> np.ndarray:
    w, b = ARMS[arm]
    z = w * x.reshape(len(x), -1).mean(axis=1) + b
    return 1.0 / (1.0 + np.exp(-z))


def write_model(dest: Path, arm: str, version: str = "1", reference: bool = False) -> Path:
    """An exported model dir of ``arm`` (:data:`ARMS`), input [-1, WINDOW, F]; ``reference``
    puts a drift reference in its card."""
    from finmlops.monitoring.drift import build_reference

    w, b = ARMS[arm]
    drift = None
    if reference:
        rng = np.random.default_rng(0)
        drift = build_reference(rng.normal(size=(500, len(FEATURES))), FEATURES)
    return write_linear_model(dest, mean_weights(w, WINDOW, len(FEATURES)), variant=arm,
                              feature_names=FEATURES, bias=b, model_version=version,
                              reference=drift)


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


def asgi_calls(app: Any) -> Iterator[Callable[..., Any]]:
    """For a module-scoped fixture: ``call(method, path, **httpx kwargs)``, one request
    through the ASGI app (no socket), on one event loop for the module as a server has."""
    import httpx

    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://asgi")

    def send(method: str, path: str, **kwargs: Any) -> httpx.Response:
        return loop.run_until_complete(client.request(method, path, **kwargs))

    yield send
    loop.run_until_complete(client.aclose())
    loop.close()


def started_app(home: Path, models: dict[str, Path], **overrides: Any) -> Iterator[Any]:
    """For a module-scoped fixture: ``create_app`` on settings under ``home`` (dotted
    ``overrides``), started and stopped once, as its lifespan does."""
    from finmlops.serving import create_app

    rest = create_app(make_settings(home, **overrides), models)
    rest.start()
    assert rest.wait_loaded(30), "the models did not load"
    yield rest
    rest.stop()
