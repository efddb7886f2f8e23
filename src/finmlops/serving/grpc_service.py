"""The Open Inference Protocol V2 over gRPC (KServe's ``inference.GRPCInferenceService``), on
its own port, in front of the same data plane as REST: the same router, token scopes (a
bearer token in the ``authorization`` metadata), limits and ledger.

A request is translated into the shape the REST path validates (one input tensor, raw
little-endian values: ``raw_input_contents`` or the typed ``contents``), so both transports
share one set of rules; the answer carries its probabilities in ``raw_output_contents`` (as
Triton answers) and the prediction's ``arm``, ``prediction_id``, ``assignment`` and experiment
version as parameters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from finmlops.errors import BadRequestError, FinmlopsError
from finmlops.serving.auth import Auth, Scope
from finmlops.serving.dataplane import DataPlane
from finmlops.serving.protocol import EXTENSIONS, parse_infer

log = logging.getLogger("finmlops.serving")

SERVICE = "inference.GRPCInferenceService"
_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          404: "NOT_FOUND", 409: "ALREADY_EXISTS", 413: "RESOURCE_EXHAUSTED",
          415: "INVALID_ARGUMENT", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
"""HTTP status of a :class:`FinmlopsError` -> the gRPC status a client sees."""
_CONTENTS = {"FP32": ("fp32_contents", "<f4"), "FP64": ("fp64_contents", "<f8")}


def _param(value: Any) -> Any:
    from finmlops.serving._grpc import inference_pb2 as pb

    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        return pb.InferParameter(int64_param=value)
    if isinstance(value, float):
        return pb.InferParameter(double_param=value)
    return pb.InferParameter(string_param=str(value))


def _plain(params: Any) -> dict[str, Any]:
    """A protobuf parameter map as plain values."""
    out: dict[str, Any] = {}
    for key, p in params.items():
        which = p.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(p, which)
    return out


class GrpcService:
    """The servicer and its ``grpc.aio`` server."""

    def __init__(self, plane: DataPlane, auth: Auth, max_message: int, timeout_s: float
                 ) -> None:
        self.plane = plane
        self.auth = auth
        self.max_message = max_message
        self.timeout_s = timeout_s
        self.port: int | None = None
        self._server: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        import grpc

        from finmlops.serving._grpc import inference_pb2 as pb

        rpcs: dict[str, tuple[Callable[..., Awaitable[Any]], Any, Any]] = {
            "ServerLive": (self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest,
                               pb.ServerMetadataResponse),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest,
                              pb.ModelMetadataResponse),
            "ModelInfer": (self.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
            "RepositoryIndex": (self.repository_index, pb.RepositoryIndexRequest,
                                pb.RepositoryIndexResponse),
        }
        handlers = {name: grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=req.FromString,
            response_serializer=resp.SerializeToString)
            for name, (fn, req, resp) in rpcs.items()}
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", self.max_message),
            ("grpc.max_send_message_length", self.max_message),
            ("grpc.so_reuseport", 1)])  # several workers share one port, as for REST
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE,
                                                                              handlers),))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        bound = server.add_insecure_port(address)
        if bound == 0:
            raise FinmlopsError(f"cannot bind the gRPC port {address}")
        await server.start()
        self._server, self.port = server, bound
        log.info("gRPC (Open Inference Protocol V2) on %s:%d", host, bound)
        return int(bound)

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None

    # -- the calls -------------------------------------------------------------------------

    async def _guard(self, context: Any, scope: Scope | None,
                     call: Callable[[str], Awaitable[Any]], counted: bool = False) -> Any:
        """Auth, the request timeout, and every error as its gRPC status (never a trace)."""
        import grpc

        status = 200
        try:
            caller = "anonymous"
            if scope is not None:
                meta = dict(context.invocation_metadata() or ())
                header = meta.get("authorization")
                caller = self.auth.check(scope, header.encode() if header else None)
            async with asyncio.timeout(self.timeout_s):
                return await call(caller)
        except FinmlopsError as exc:
            status = exc.http_status
            message = exc.message
        except TimeoutError:
            status, message = 504, "request timed out"
        except Exception:
            log.exception("unhandled error in a gRPC call")
            status, message = 500, "internal error"
        if counted:
            self.plane.telemetry.count_error(status)
        await context.abort(getattr(grpc.StatusCode, _CODES.get(status, "INTERNAL")), message)

    async def server_live(self, request: Any, context: Any) -> Any:
        from finmlops.serving._grpc import inference_pb2 as pb

        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: Any) -> Any:
        from finmlops.serving._grpc import inference_pb2 as pb

        return pb.ServerReadyResponse(ready=self.plane.ready)

    async def model_ready(self, request: Any, context: Any) -> Any:
        from finmlops.serving._grpc import inference_pb2 as pb

        async def call(caller: str) -> Any:
            target = self.plane.resolve(request.name, request.version or None, None,
                                        inference=False)
            ready = self.plane.metadata(target, True)["ready"]
            return pb.ModelReadyResponse(ready=bool(ready) and self.plane.ready)

        return await self._guard(context, "inference", call)

    async def server_metadata(self, request: Any, context: Any) -> Any:
        from finmlops import __version__
        from finmlops.serving._grpc import inference_pb2 as pb

        async def call(caller: str) -> Any:
            return pb.ServerMetadataResponse(name="finmlops", version=__version__,
                                             extensions=EXTENSIONS)

        return await self._guard(context, "inference", call)

    async def model_metadata(self, request: Any, context: Any) -> Any:
        from finmlops.serving._grpc import inference_pb2 as pb

        async def call(caller: str) -> Any:
            self._ready()
            target = self.plane.resolve(request.name, request.version or None, None,
                                        inference=False)
            meta = self.plane.metadata(target, False)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=meta["name"], versions=meta["versions"], platform=meta["platform"],
                inputs=[tensor(**t) for t in meta["inputs"]],
                outputs=[tensor(**t) for t in meta["outputs"]])

        return await self._guard(context, "inference", call)

    async def repository_index(self, request: Any, context: Any) -> Any:
        from finmlops.serving._grpc import inference_pb2 as pb

        async def call(caller: str) -> Any:
            index = pb.RepositoryIndexResponse.ModelIndex
            return pb.RepositoryIndexResponse(models=[
                index(**m) for m in self.plane.repository_index(request.ready)])

        return await self._guard(context, "inference", call)

    async def model_infer(self, request: Any, context: Any) -> Any:
        from finmlops.serving._grpc import inference_pb2 as pb

        t0 = time.perf_counter()

        async def call(caller: str) -> Any:
            plane = self.plane
            self._ready()
            meta = dict(context.invocation_metadata() or ())
            target = plane.resolve(request.model_name, request.model_version or None,
                                   meta.get("seldon-model"))
            model = target.model
            body, binary = self._as_v2(request)
            req = parse_infer(body, model.input_name, model.window, model.n_features,
                              model.output_name, binary)
            result = await plane.infer(target, req, routing_key=req.routing_key,
                                       pinned=meta.get("x-seldon-route"),
                                       client_id=req.request_id)
            tensor = pb.ModelInferResponse.InferOutputTensor
            outputs = [tensor(name=result.output_name, datatype="FP32",
                              shape=[len(result.probabilities)])]
            raw = [np.asarray(result.probabilities, dtype="<f4").tobytes()]
            for name, values in (result.rows() or {}).items():
                outputs.append(tensor(name=name, datatype="BYTES", shape=[len(values)]))
                raw.append(b"".join(len(b).to_bytes(4, "little") + b
                                    for b in (v.encode() for v in values)))
            out = pb.ModelInferResponse(
                model_name=result.model_name, model_version=result.model_version,
                id=result.request_id,
                parameters={k: _param(v) for k, v in result.parameters().items()
                            if v is not None},
                outputs=outputs, raw_output_contents=raw)
            plane.telemetry.child(("lat", target.experiment or "", result.arm_label)
                                  ).observe(time.perf_counter() - t0)
            return out

        return await self._guard(context, "inference", call, counted=True)

    def _ready(self) -> None:
        if not self.plane.ready:
            from finmlops.errors import NotReadyError

            raise NotReadyError("not ready")

    @staticmethod
    def _as_v2(request: Any) -> tuple[dict[str, Any], bytes]:
        """The gRPC request in the REST body's shape, every input's values as raw bytes
        (FP32/FP64 little-endian, BYTES length-prefixed) in input order."""
        raw = list(request.raw_input_contents)
        if raw and len(raw) != len(request.inputs):
            raise BadRequestError("raw_input_contents must hold one entry per input")
        inputs: list[dict[str, Any]] = []
        parts: list[bytes] = []
        for i, tensor in enumerate(request.inputs):
            if raw:
                data = bytes(raw[i])
            elif tensor.datatype == "BYTES":
                data = b"".join(len(v).to_bytes(4, "little") + v
                                for v in tensor.contents.bytes_contents)
            else:
                field, dtype = _CONTENTS.get(tensor.datatype, ("fp32_contents", "<f4"))
                data = np.asarray(getattr(tensor.contents, field), dtype=dtype).tobytes()
            parts.append(data)
            inputs.append({"name": tensor.name, "datatype": tensor.datatype,
                           "shape": [int(d) for d in tensor.shape],
                           "parameters": {"binary_data_size": len(data)}})
        params = _plain(request.parameters)
        body: dict[str, Any] = {
            "inputs": inputs,
            "outputs": [{"name": o.name} for o in request.outputs],
        }
        if request.id:
            body["id"] = request.id
        if "routing_key" in params:
            body["parameters"] = {"routing_key": params["routing_key"]}
        return body, b"".join(parts)
