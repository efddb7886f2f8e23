"""The REST shell: Open Inference Protocol V2 over raw ASGI, in front of the data plane.

Raw ASGI rather than a framework keeps the hot path (``POST .../infer``) to a dict lookup, one
JSON decode, one ONNX Runtime call, one wait for the group commit and one JSON encode. This
module owns only HTTP: the route table (:mod:`finmlops.serving._http`), token scopes
(:mod:`finmlops.serving.auth`), CORS, body limits, timeouts and the one place every
:class:`~finmlops.errors.FinmlopsError` becomes a response (``{"error": ...}``). Everything
else is :class:`~finmlops.serving.dataplane.DataPlane`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from finmlops.config import Settings
from finmlops.errors import (
    BadRequestError,
    ConflictError,
    FinmlopsError,
    ModelNotFoundError,
    NotReadyError,
)
from finmlops.serving._http import (
    EXPOSE,
    JSON_TYPE,
    Disconnected,
    MethodNotAllowed,
    Receive,
    Route,
    Scope,
    Send,
    match,
    preflight,
    read_body,
    read_json,
    send_response,
)
from finmlops.serving.auth import Auth, AuthError, ScopeError
from finmlops.serving.dataplane import DataPlane
from finmlops.serving.openapi import build_openapi
from finmlops.serving.protocol import (
    EXTENSIONS,
    MAX_ID,
    binary_response,
    check_request_id,
    check_routing_key,
    infer_response,
    parse_feedback,
    parse_infer,
    split_binary,
)
from finmlops.serving.router import candidates_from_json

log = logging.getLogger("finmlops.serving")

SERVER_NAME = "finmlops"
_NOT_READY = b'{"error":"not ready"}'


WORKER_START_TIMEOUT_S = 120.0
"""How long a worker of several waits for its models and ledger before it takes connections
anyway (then answering 503 until ready, as a lone process does)."""

class RestApp:
    """The ASGI callable; build it with :func:`finmlops.serving.create_app`."""

    def __init__(self, settings: Settings, plane: DataPlane) -> None:
        self.settings = settings
        self.plane = plane
        self.auth = Auth(settings.serve.tokens)
        origins = settings.serve.cors_origins
        self._cors_any = "*" in origins
        self._cors = frozenset(o.encode() for o in origins)
        self._max_body = settings.serve.max_body_bytes
        self._timeout = settings.serve.request_timeout_s
        self._openapi = b""
        self._openapi_for: tuple[str, ...] | None = None
        self.grpc: Any = None
        """The gRPC service once started (``serve.grpc_port``); ``grpc.port`` is its port."""
        self.serve_when_loaded = False
        """One of several workers on a shared socket (``serve --workers N``): the lifespan
        startup waits for the models and the ledger, so this worker takes no connection it
        could only refuse while the others serve (a restarted worker included). A lone
        process starts at once and answers its probes while it loads."""

    # Used by tests and the in-process server helper.
    @property
    def metrics(self) -> Any:
        return self.plane.metrics

    @property
    def ready(self) -> bool:
        return self.plane.ready

    def wait_loaded(self, timeout: float = 60.0) -> bool:
        return self.plane.wait_started(timeout)

    def start(self) -> None:
        self.plane.start()

    def stop(self) -> None:
        self.plane.stop()

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
                    if self.serve_when_loaded:
                        await asyncio.get_running_loop().run_in_executor(
                            None, self.wait_loaded, WORKER_START_TIMEOUT_S)
                    self._install_sighup()
                    await self._start_grpc()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.grpc is not None:
                    await self.grpc.stop(self._timeout)
                await asyncio.get_running_loop().run_in_executor(None, self.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start_grpc(self) -> None:
        port = self.settings.serve.grpc_port
        if port is None:
            return
        from finmlops.serving.grpc_service import GrpcService

        self.grpc = GrpcService(self.plane, self.auth, self._max_body, self._timeout)
        await self.grpc.start(self.settings.serve.host, port)

    def _install_sighup(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        def run() -> None:
            try:
                self.plane.reload("SIGHUP")
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
        route: Route | None = None
        try:
            route, params = match(scope["path"])
            if method == "OPTIONS" and b"access-control-request-method" in headers:
                allowed = origin is not None and (self._cors_any or origin in self._cors)
                await preflight(send, headers, origin, allowed, route.methods)
                return
            if method not in route.methods.split(", "):
                raise MethodNotAllowed(route.methods)
            caller = "anonymous"
            if route.scope is not None:
                caller = self.auth.check(route.scope,  # type: ignore[arg-type]
                                         headers.get(b"authorization"))
            async with asyncio.timeout(self._timeout):
                if route.name == "infer":
                    body, out_headers = await self._infer(params, headers, receive, t0)
                    if out_headers[0][0] == b"content-type":  # binary tensor data
                        await send_response(send, 200, body, [*out_headers, *extra])
                        return
                    extra += out_headers
                else:
                    status, body, content_type = await self._other(
                        route.name, method, params, headers, receive, caller)
                    if content_type is not None:
                        await send_response(send, status, body, [content_type, *extra])
                        return
        except Disconnected:
            return
        except Exception as exc:  # every error answers JSON; FinmlopsError carries its status
            status, body, headers_out = self._error(exc, method, scope["path"])
            extra += headers_out
            self._count_error(route, status)
        rid = headers.get(b"x-request-id")
        if rid is not None and (route is None or route.name != "infer") and len(rid) <= MAX_ID:
            extra.append((b"x-request-id", rid))
        await send_response(send, status, body, [JSON_TYPE, *extra])

    @staticmethod
    def _error(exc: Exception, method: str,
               path: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """``(status, JSON body, extra headers)`` of a failed request."""
        if isinstance(exc, FinmlopsError):
            payload: dict[str, Any] = {"error": exc.message}
            headers: list[tuple[bytes, bytes]] = []
            if isinstance(exc, AuthError | ScopeError):
                headers.append((b"www-authenticate", exc.challenge.encode()))
            elif isinstance(exc, MethodNotAllowed):
                headers.append((b"allow", exc.allow.encode()))
            elif isinstance(exc, ConflictError):
                payload["conflicts"] = exc.details
            return exc.http_status, orjson.dumps(payload), headers
        if isinstance(exc, TimeoutError):
            return 504, b'{"error":"request timed out"}', []
        log.error("unhandled error on %s %s", method, path, exc_info=exc)
        return 500, b'{"error":"internal error"}', []

    def _count_error(self, route: Route | None, status: int) -> None:
        if route is None:
            return
        if route.name == "infer":
            self.plane.telemetry.count_error(status)
        elif route.name == "feedback":
            self.plane.metrics.feedback_requests.labels(str(status)).inc()

    async def _infer(self, params: Mapping[str, str], headers: Mapping[bytes, bytes],
                     receive: Receive, t0: float) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        plane = self.plane
        seldon = headers.get(b"seldon-model")
        target = plane.resolve(params["name"], params.get("version"),
                               seldon.decode("latin-1") if seldon is not None else None)
        model = target.model
        content = await read_body(receive, headers, self._max_body)
        body, binary = split_binary(content, headers.get(b"inference-header-content-length"))
        req = parse_infer(body, model.input_name, model.window, model.n_features,
                          model.output_name, binary)
        client_id = req.request_id
        if client_id is None:
            raw = headers.get(b"x-request-id")
            client_id = check_request_id(raw.decode("latin-1")) if raw else None
        key = req.routing_key
        if key is None:
            raw_key = headers.get(b"x-routing-key")
            key = check_routing_key(raw_key.decode("latin-1")) if raw_key else None
        pinned = headers.get(b"x-seldon-route")
        result = await plane.infer(target, req, routing_key=key,
                                   pinned=pinned.decode("latin-1") if pinned else None,
                                   client_id=client_id)
        out_headers: list[tuple[bytes, bytes]] = []
        if req.binary_output:
            out, head = binary_response(
                result.model_name, result.model_version, result.request_id,
                result.output_name, np.asarray(result.probabilities, np.float32),
                result.parameters(), result.rows())
            out_headers += [(b"content-type", b"application/octet-stream"),
                            (b"inference-header-content-length", str(head).encode())]
        else:
            out = orjson.dumps(infer_response(
                result.model_name, result.model_version, result.request_id,
                result.output_name, result.probabilities, result.parameters(), result.rows()))
        plane.telemetry.child(("lat", target.experiment or "", result.arm_label)).observe(
            time.perf_counter() - t0)
        out_headers += [(b"x-request-id", result.request_id.encode("latin-1", "replace")),
                        (b"x-prediction-id", result.prediction_id.encode())]
        if result.row_arms is None:
            route_header = f":{result.model_name}_{result.model_version}:"
            out_headers.append((b"x-seldon-route", route_header.encode("latin-1", "replace")))
        return out, out_headers

    # -- everything else -------------------------------------------------------------------

    async def _other(self, route: str, method: str, params: Mapping[str, str],
                     headers: Mapping[bytes, bytes], receive: Receive,
                     caller: str) -> tuple[int, bytes, tuple[bytes, bytes] | None]:
        """``(status, body, content-type header or None for JSON)``."""
        loop = asyncio.get_running_loop()
        plane = self.plane
        if route == "live":
            return 200, b'{"live":true}', None
        if route == "ready":
            # Open to anyone: say nothing about why (that is /admin/status, admin scope).
            return (200, b'{"ready":true}', None) if plane.ready else (503, _NOT_READY, None)
        if route == "server":
            from finmlops import __version__

            return 200, orjson.dumps({"name": SERVER_NAME, "version": __version__,
                                      "extensions": EXTENSIONS}), None
        if route == "metrics":
            text = await loop.run_in_executor(None, self.render_metrics)
            from prometheus_client import CONTENT_TYPE_LATEST

            return 200, text, (b"content-type", CONTENT_TYPE_LATEST.encode())
        if route == "openapi":
            return 200, self.openapi(), None
        if route == "status":
            return 200, orjson.dumps(plane.status()), None
        if not plane.ready:
            raise NotReadyError("not ready")
        if route == "repository":
            raw = await read_body(receive, headers, self._max_body)
            body, _ = split_binary(raw or b"{}", None)
            if not isinstance(body, dict) or set(body) - {"ready", "repository_name"} or \
                    not isinstance(body.get("ready", False), bool) or \
                    not isinstance(body.get("repository_name", ""), str):
                raise BadRequestError('expected {"ready"?: bool, "repository_name"?: str}')
            return 200, orjson.dumps(plane.repository_index(body.get("ready", False))), None
        if route in ("model", "model_ready"):
            target = plane.resolve(params["name"], params.get("version"), None,
                                   inference=False)
            return 200, orjson.dumps(plane.metadata(target, route == "model_ready")), None
        if route == "feedback":
            items = parse_feedback(await read_json(receive, headers, self._max_body))
            result = await loop.run_in_executor(None, plane.apply_feedback, items, caller)
            plane.metrics.feedback_requests.labels("200").inc()
            return 200, orjson.dumps(result.to_json()), None
        if route == "experiment":
            if method == "PUT":
                body = await read_json(receive, headers, self._max_body)
                candidates = candidates_from_json(body)
                router = await loop.run_in_executor(None, plane.set_weights, candidates, caller)
                return 200, orjson.dumps(router.describe()), None
            return 200, orjson.dumps(plane.experiment.router.describe()), None
        if route == "reload":
            await read_body(receive, headers, self._max_body)
            router = await loop.run_in_executor(None, plane.reload, caller)
            return 200, orjson.dumps(router.describe()), None
        raise ModelNotFoundError(f"no route {route}")  # pragma: no cover

    def openapi(self) -> bytes:
        """The OpenAPI document for what is loaded now (rebuilt when the models change)."""
        plane = self.plane
        key = tuple(sorted(plane.models))
        if self._openapi_for != key:
            models = list(plane.models.values())
            first = models[0] if models else None
            self._openapi = orjson.dumps(build_openapi(
                [m.name for m in models], plane.experiment.name, [m.version for m in models],
                first.window if first else None, first.n_features if first else None,
                auth=self.auth.enabled, input_name=first.input_name if first else "features"))
            self._openapi_for = key
        return self._openapi

    def render_metrics(self) -> bytes:
        """The Prometheus text, with scrape-time gauges refreshed."""
        return self.plane.telemetry.render(self.plane.writer.pending)
