"""Raw ASGI plumbing for the service: route matching, body reading with a size limit, sending."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from finmlops.errors import (
    BadRequestError,
    FinmlopsError,
    ModelNotFoundError,
    PayloadTooLargeError,
)

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
Headers = Mapping[bytes, bytes]

JSON_TYPE = (b"content-type", b"application/json")
EXPOSE = b"x-request-id, x-prediction-id, x-seldon-route"


@dataclass(frozen=True)
class Route:
    """A route: its name, allowed methods and the token scope it needs (None: open)."""

    name: str
    methods: str
    scope: str | None


STATIC = {
    "/v2/health/live": Route("live", "GET", None),
    "/v2/health/ready": Route("ready", "GET", None),
    "/v2": Route("server", "GET", "inference"),
    "/v2/feedback": Route("feedback", "POST", "feedback"),
    "/admin/experiment": Route("experiment", "GET, PUT", "admin"),
    "/admin/reload": Route("reload", "POST", "admin"),
    "/admin/status": Route("status", "GET", "admin"),
    "/v2/repository/index": Route("repository", "POST", "inference"),
    "/metrics": Route("metrics", "GET", None),
    "/openapi.json": Route("openapi", "GET", None),
}
_MODEL = Route("model", "GET", "inference")
_MODEL_READY = Route("model_ready", "GET", "inference")
_INFER = Route("infer", "POST", "inference")


class Disconnected(Exception):
    """The client went away while the body was being read."""


class UnsupportedMediaType(FinmlopsError):
    http_status = 415


class MethodNotAllowed(FinmlopsError):
    http_status = 405

    def __init__(self, allow: str) -> None:
        super().__init__("method not allowed")
        self.allow = allow


def match(path: str) -> tuple[Route, dict[str, str]]:
    """``(route, params)`` for a path; 404 for an unknown one."""
    if path.startswith("/v2/models/"):
        parts = path[len("/v2/models/"):].split("/")
        name = parts[0]
        if name:
            rest = parts[1:]
            params = {"name": name}
            if len(rest) >= 2 and rest[0] == "versions" and rest[1]:
                params["version"] = rest[1]
                rest = rest[2:]
            if not rest:
                return _MODEL, params
            if rest == ["ready"]:
                return _MODEL_READY, params
            if rest == ["infer"]:
                return _INFER, params
    route = STATIC.get(path)
    if route is not None:
        return route, {}
    raise ModelNotFoundError(f"no route {path}")


async def send_response(send: Send, status: int, body: bytes,
                        headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def preflight(send: Send, headers: Headers, origin: bytes | None, allowed: bool,
                    allow: str) -> None:
    """Answer a CORS preflight: 200 with the allow headers, or 400 for a foreign origin."""
    wanted = headers.get(b"access-control-request-method", b"").decode("latin-1")
    if origin is None or not allowed:
        await send_response(send, 400, b'{"error":"CORS origin not allowed"}', [JSON_TYPE])
        return
    if wanted not in allow.split(", "):
        await send_response(send, 400, b'{"error":"CORS method not allowed"}', [JSON_TYPE])
        return
    await send_response(send, 200, b"", [
        (b"access-control-allow-origin", origin), (b"vary", b"Origin"),
        (b"access-control-allow-methods", allow.encode()),
        (b"access-control-allow-headers",
         headers.get(b"access-control-request-headers",
                     b"authorization, content-type, x-request-id, x-routing-key")),
        (b"access-control-max-age", b"600"), (b"content-type", b"text/plain")])


async def read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """The request body, decompressed when ``Content-Encoding`` is gzip or deflate; 413 when
    the declared, the counted or the decompressed size is over ``limit``."""
    raw = await _read_raw(receive, headers, limit)
    encoding = headers.get(b"content-encoding", b"identity").strip().lower()
    if encoding in (b"", b"identity"):
        return raw
    if encoding not in (b"gzip", b"deflate"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding.decode('latin-1')!r}: only "
                                   "gzip, deflate and identity are accepted")
    return _inflate(raw, encoding, limit)


def _inflate(raw: bytes, encoding: bytes, limit: int) -> bytes:
    """Decompress at most ``limit`` bytes (a small body cannot expand past the limit)."""
    import zlib

    # gzip: a gzip header; deflate: zlib's header (RFC 9110), or a raw stream as some send.
    wbits = 16 + zlib.MAX_WBITS if encoding == b"gzip" else zlib.MAX_WBITS
    for bits in (wbits, -zlib.MAX_WBITS) if encoding == b"deflate" else (wbits,):
        inflater = zlib.decompressobj(bits)
        try:
            out = inflater.decompress(raw, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit:
            raise PayloadTooLargeError(f"body over {limit} bytes once decompressed")
        if not inflater.eof:
            raise BadRequestError(f"the {encoding.decode()} body is truncated")
        return out
    raise BadRequestError(f"the body is not valid {encoding.decode()}")


async def _read_raw(receive: Receive, headers: Headers, limit: int) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequestError("invalid Content-Length") from None
        if size > limit:
            raise PayloadTooLargeError(f"body over {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLargeError(f"body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_json(receive: Receive, headers: Headers, limit: int) -> Any:
    raw = await read_body(receive, headers, limit)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestError("the body is not valid JSON") from None
