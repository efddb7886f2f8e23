"""The inference service: a raw ASGI app speaking Open Inference Protocol V2 REST.

Raw ASGI rather than a framework keeps the hot path (``POST .../infer``) to a dict lookup,
one JSON decode, one ONNX Runtime call, one JSON encode and one queue put; logging, shadow
scoring and drift run in the log's writer thread after the response is sent. Every error is
a :class:`~finmlops.errors.FinmlopsError` mapped once, in :meth:`ServingApp._http`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from finmlops.config import Settings
from finmlops.errors import (
    BadRequestError,
    ConfigError,
    FinmlopsError,
    ModelNotFoundError,
    NotReadyError,
    UnauthorizedError,
)
from finmlops.monitoring.metrics import Metrics
from finmlops.serving._http import (
    EXPOSE,
    JSON_TYPE,
    OPEN_ROUTES,
    Disconnected,
    MethodNotAllowed,
    Receive,
    Scope,
    Send,
    match,
    preflight,
    read_body,
    read_json,
    send_response,
)
from finmlops.serving._telemetry import Telemetry
from finmlops.serving.log import PredictionLog, Served, parse_feedback
from finmlops.serving.openapi import build_openapi
from finmlops.serving.outcomes import Policy
from finmlops.serving.protocol import (
    MAX_ID,
    check_request_id,
    check_routing_key,
    infer_response,
    parse_infer,
)
from finmlops.serving.router import Router, candidates_from_json, parse_route
from finmlops.serving.runtime import LoadedModel, load_models

log = logging.getLogger("finmlops.serving")

INLINE_ROWS = 64
"""Batches up to this many rows run on the event loop; larger ones in a thread (timeout-able)."""
SERVER_NAME = "finmlops"


def api_token(settings: Settings) -> bytes | None:
    """The configured bearer token as bytes; ``None`` when none is configured. A configured
    but empty (or blank) token is a :class:`ConfigError`: it must never mean "no auth"."""
    token = settings.serve.api_token
    if token is None:
        return None
    value = token.get_secret_value().strip()
    if not value:
        raise ConfigError("serve.api_token is set but empty: set a token or remove the key")
    return value.encode()


class ServingApp:
    """The ASGI callable; build it with :func:`finmlops.serving.create_app`."""

    def __init__(self, settings: Settings, loader: Callable[[], Mapping[str, Path]],
                 metrics: Metrics,
                 settings_loader: Callable[[], Settings] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self._loader = loader
        self._settings_loader = settings_loader
        self.models: dict[str, LoadedModel] = {}
        self.ready = False
        self.load_error: str | None = None
        self.router = Router.from_settings(settings.experiment)
        self.policy = Policy.from_settings(settings.evaluation)
        self.log: PredictionLog | None = None
        self._token = api_token(settings)
        origins = settings.serve.cors_origins
        self._cors_any = "*" in origins
        self._cors = frozenset(o.encode() for o in origins)
        self._max_body = settings.serve.max_body_bytes
        self._timeout = settings.serve.request_timeout_s
        # Request ids: a random per-process prefix + a counter (os.urandom per request, as
        # uuid4 does, costs tens of microseconds on some VMs).
        self._id_prefix = f"{uuid.uuid4().hex[:16]}-"
        self._ids = itertools.count(1)
        self._rng = random.Random(settings.train.seed)  # noqa: S311 - traffic split, not secrets
        self.telemetry = Telemetry(metrics, settings.monitoring)
        self._openapi = b""
        self._refresh_openapi()
        self._loaded = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the log and load the models in a thread (readiness stays false until done)."""
        if self.log is None:
            s = self.settings.serve
            self.log = PredictionLog(
                self.settings.prediction_log, self.policy, s.log_batch_size,
                s.log_flush_interval_s, scorer=self._score,
                on_written=self.metrics.log_written.inc, observe=self.telemetry.observe)
            self.log.start()
        threading.Thread(target=self._load, name="finmlops-load", daemon=True).start()

    def _load(self) -> None:
        try:
            models = load_models(self._loader())
            router = self.router
            missing = [a for a in router.arms if a not in models]
            if missing:
                raise ModelNotFoundError(
                    f"experiment {router.experiment!r}: no model for arm(s) {', '.join(missing)}")
            if router.mirror and router.mirror not in models:
                raise ModelNotFoundError(f"no model for the mirror {router.mirror!r}")
            self.models = models
            self.telemetry.models_loaded(models, router.experiment)
            self._set_router(router)
            self._refresh_openapi()
            self.ready = True
            self.metrics.ready.set(1)
        except FinmlopsError as exc:
            self.load_error = exc.message
            log.error("models not loaded: %s", exc.message)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("models not loaded")
        finally:
            self._loaded.set()

    def wait_loaded(self, timeout: float = 60.0) -> bool:
        """Wait for the load attempt; True when ready."""
        self._loaded.wait(timeout)
        return self.ready

    def stop(self) -> None:
        """Stop taking traffic and flush the prediction log."""
        self.ready = False
        self.metrics.ready.set(0)
        if self.log is not None:
            self.log.close()

    def _score(self, arm: str, x: np.ndarray) -> tuple[str, np.ndarray]:
        model = self.models[arm]
        return model.version, model.predict(x)

    def _set_router(self, router: Router) -> None:
        """Swap the router (one reference assignment: requests see the old or the new)."""
        old = self.router
        self.router = router
        self.telemetry.weights(old, router)
        log.info("experiment %s weights %s", router.experiment,
                 dict(zip(router.arms, router.weights, strict=True)))

    def set_weights(self, candidates: list[tuple[str, int]]) -> Router:
        unknown = [n for n, _ in candidates if n not in self.models]
        if unknown:
            raise BadRequestError(f"no loaded model for arm(s): {', '.join(unknown)}")
        router = self.router.with_weights(candidates)
        self._set_router(router)
        return router

    def reload(self) -> Router:
        """Re-read the settings and apply their experiment section (models stay loaded)."""
        if self._settings_loader is None:
            from finmlops.config import load_settings

            settings = load_settings()
        else:
            settings = self._settings_loader()
        router = Router.from_settings(settings.experiment)
        missing = [a for a in (*router.arms, *([router.mirror] if router.mirror else []))
                   if a not in self.models]
        if missing:
            raise ConfigError(f"reload: no loaded model for arm(s) {', '.join(missing)}")
        self._set_router(router)
        return router

    def _refresh_openapi(self) -> None:
        models = list(self.models.values())
        first = models[0] if models else None
        self._openapi = orjson.dumps(build_openapi(
            [m.name for m in models], self.router.experiment, [m.version for m in models],
            first.window if first else None, first.n_features if first else None,
            auth=self._token is not None,
            input_name=first.input_name if first else "features"))

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.start()
                    self._install_sighup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _install_sighup(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        def run() -> None:
            try:
                self.reload()
            except FinmlopsError as exc:
                log.error("reload failed: %s", exc.message)
            except Exception:
                log.exception("reload failed")

        threading.Thread(target=run, name="finmlops-reload", daemon=True).start()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        headers = dict(scope["headers"])
        method: str = scope["method"]
        extra: list[tuple[bytes, bytes]] = []
        origin = headers.get(b"origin")
        if origin is not None and (self._cors_any or origin in self._cors):
            extra += [(b"access-control-allow-origin", origin), (b"vary", b"Origin"),
                      (b"access-control-expose-headers", EXPOSE)]
        status = 200
        route = ""
        try:
            route, params, allow = match(scope["path"])
            if method == "OPTIONS" and b"access-control-request-method" in headers:
                allowed = origin is not None and (self._cors_any or origin in self._cors)
                await preflight(send, headers, origin, allowed, allow)
                return
            if method not in allow.split(", "):
                raise MethodNotAllowed(allow)
            if self._token is not None and route not in OPEN_ROUTES:
                auth = headers.get(b"authorization", b"")
                # The scheme is case-insensitive (RFC 9110 11.1); the token is compared whole.
                if auth[:7].lower() != b"bearer " or not hmac.compare_digest(
                        auth[7:].strip(b" "), self._token):
                    raise UnauthorizedError("missing or wrong bearer token")
            async with asyncio.timeout(self._timeout):
                if route == "infer":
                    body, out_headers = await self._infer(params, headers, receive, t0)
                    extra += out_headers
                else:
                    status, body, content_type = await self._other(route, method, params,
                                                                   headers, receive)
                    if content_type is not None:
                        await send_response(send, status, body, [content_type, *extra])
                        return
        except Disconnected:
            return
        except FinmlopsError as exc:
            status = exc.http_status
            body = orjson.dumps({"error": exc.message})
            if isinstance(exc, MethodNotAllowed):
                extra.append((b"allow", exc.allow.encode()))
            if route == "infer":
                self.telemetry.count_error(status)
        except TimeoutError:
            status = 504
            body = b'{"error":"request timed out"}'
            if route == "infer":
                self.telemetry.count_error(status)
        except Exception:
            log.exception("unhandled error on %s %s", method, scope["path"])
            status = 500
            body = b'{"error":"internal error"}'
        rid = headers.get(b"x-request-id")
        if rid is not None and route != "infer" and len(rid) <= MAX_ID:
            extra.append((b"x-request-id", rid))
        await send_response(send, status, body, [JSON_TYPE, *extra])

    async def _infer(self, params: Mapping[str, str], headers: Mapping[bytes, bytes],
                     receive: Receive, t0: float) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        if not self.ready:
            raise NotReadyError("models are not loaded yet")
        router = self.router
        name = params["name"]
        seldon = headers.get(b"seldon-model")
        if seldon is not None:
            name = seldon.decode("latin-1").strip()
            name = name.removesuffix(".experiment")
        experiment: str | None = None
        model: LoadedModel | None = None
        if name == router.experiment:
            if "version" in params:
                raise ModelNotFoundError(f"experiment {name!r} has no versions")
            experiment = name
            some = self.models[router.arms[0]]
        else:
            model = self.models.get(name)
            if model is None:
                raise ModelNotFoundError(f"unknown model {name!r}")
            if params.get("version", model.version) != model.version:
                raise ModelNotFoundError(f"model {name!r} has no version {params['version']!r}")
            some = model
        body = await read_json(receive, headers, self._max_body)
        req = parse_infer(body, some.input_name, some.window, some.n_features)
        rid = req.request_id
        if rid is None:
            raw = headers.get(b"x-request-id")
            rid = (check_request_id(raw.decode("latin-1")) if raw
                   else f"{self._id_prefix}{next(self._ids):x}")
        key = req.routing_key
        if key is None:
            raw_key = headers.get(b"x-routing-key")
            key = check_routing_key(raw_key.decode("latin-1")) if raw_key else None
        also: tuple[str, ...] = ()
        exp_label = ""
        if experiment is not None:
            exp_label = experiment
            route = headers.get(b"x-seldon-route")
            pinned = parse_route(route.decode("latin-1"), router.arms) if route else None
            arm = router.choose(key, self._rng.random(), pinned)
            model = self.models[arm]
            if router.shadow:
                also = tuple(a for a in router.arms if a != arm)
            if router.mirror and router.mirror != arm and router.mirror not in also \
                    and router.mirrors(key, self._rng.random()):
                also = (*also, router.mirror)
        else:
            model = some
            arm = model.name
        x = req.x
        n = x.shape[0]
        if n <= INLINE_ROWS:
            probs = model.predict(x)
        else:
            probs = await asyncio.get_running_loop().run_in_executor(None, model.predict, x)
        ids = [rid] if n == 1 else [rid, *(f"{rid}/{i}" for i in range(1, n))]
        now = time.time()
        if self.log is not None:
            self.log.put(Served(now, ids, experiment, arm, model.version, key, x, probs, also))
        values = probs.tolist()
        threshold = self.policy.threshold
        up = sum(1 for v in values if v > threshold)
        version = model.version
        if up:
            self.telemetry.child(("pred", exp_label, arm, version, "1")).inc(up)
        if n - up:
            self.telemetry.child(("pred", exp_label, arm, version, "0")).inc(n - up)
        self.telemetry.last_prediction[exp_label] = now
        out = orjson.dumps(infer_response(
            arm, version, rid, model.output_name, values,
            {"arm": arm, "experiment": experiment}))
        self.telemetry.child(("req", arm, version, exp_label, arm, "200")).inc()
        self.telemetry.child(("lat", exp_label, arm)).observe(time.perf_counter() - t0)
        route_header = f":{arm}_{version}:".encode("latin-1", "replace")
        return out, [(b"x-request-id", rid.encode("latin-1", "replace")),
                     (b"x-seldon-route", route_header)]

    # -- everything else -------------------------------------------------------------------

    async def _other(self, route: str, method: str, params: Mapping[str, str],
                     headers: Mapping[bytes, bytes],
                     receive: Receive) -> tuple[int, bytes, tuple[bytes, bytes] | None]:
        """``(status, body, content-type header or None for JSON)``."""
        loop = asyncio.get_running_loop()
        if route == "live":
            return 200, b'{"live":true}', None
        if route == "ready":
            if not self.ready:
                raise NotReadyError(self.load_error or "models are not loaded yet")
            return 200, b'{"ready":true}', None
        if route == "server":
            from finmlops import __version__

            return 200, orjson.dumps({"name": SERVER_NAME, "version": __version__,
                                      "extensions": []}), None
        if route == "metrics":
            text = await loop.run_in_executor(None, self.render_metrics)
            from prometheus_client import CONTENT_TYPE_LATEST

            return 200, text, (b"content-type", CONTENT_TYPE_LATEST.encode())
        if route == "openapi":
            return 200, self._openapi, None
        if not self.ready:
            raise NotReadyError(self.load_error or "models are not loaded yet")
        if route in ("model", "model_ready"):
            return 200, orjson.dumps(self._metadata(params, route == "model_ready")), None
        if route == "feedback":
            items = parse_feedback(await read_json(receive, headers, self._max_body))
            if self.log is None:
                raise NotReadyError("the prediction log is not open")
            result = await loop.run_in_executor(None, self.log.apply_feedback, items)
            self.telemetry.count_outcomes(result.outcomes, self.router.default)
            return 200, orjson.dumps(result.to_json()), None
        if route == "experiment":
            if method == "PUT":
                body = await read_json(receive, headers, self._max_body)
                router = self.set_weights(candidates_from_json(body))
                return 200, orjson.dumps(router.describe()), None
            return 200, orjson.dumps(self.router.describe()), None
        if route == "reload":
            await read_body(receive, headers, self._max_body)
            router = await loop.run_in_executor(None, self.reload)
            return 200, orjson.dumps(router.describe()), None
        raise ModelNotFoundError(f"no route {route}")  # pragma: no cover

    def _metadata(self, params: Mapping[str, str], ready_only: bool) -> dict[str, Any]:
        name = params["name"]
        router = self.router
        if name == router.experiment:
            if "version" in params:
                raise ModelNotFoundError(f"experiment {name!r} has no versions")
            if ready_only:
                return {"name": name, "ready": True}
            first = self.models[router.arms[0]].metadata()
            return {**first, "name": name, "versions": [], "platform": "finmlops-experiment",
                    "parameters": router.describe()}
        model = self.models.get(name)
        if model is None:
            raise ModelNotFoundError(f"unknown model {name!r}")
        if params.get("version", model.version) != model.version:
            raise ModelNotFoundError(f"model {name!r} has no version {params['version']!r}")
        return {"name": name, "ready": True} if ready_only else model.metadata()

    def render_metrics(self) -> bytes:
        """The Prometheus text, with scrape-time gauges refreshed."""
        return self.telemetry.render(self.log.pending() if self.log is not None else 0)
