"""gRPC load for the serving benchmark, and its floor: a bare ``grpc.aio`` + ONNX Runtime V2
``ModelInfer`` server (same model, no routing, ledger, metrics or auth).

``python -m benchmarks._grpc_load load HOST:PORT MODEL CONCURRENCY SECONDS`` prints one JSON
line ``{rps, p50_ms, p99_ms, requests, errors}``: CONCURRENCY coroutines on one channel, each
sending single-row ``ModelInfer`` calls (raw input contents, as tritonclient sends them) back to
back for SECONDS. ``python -m benchmarks._grpc_load serve PORT MODEL_ONNX`` runs the floor.
wrk cannot speak gRPC; this client is Python, so it is itself a bottleneck — both rows of the
table share it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np

METHOD = "/inference.GRPCInferenceService/ModelInfer"


def _request(model: str, window: int, features: int, i: int) -> bytes:
    from finmlops.serving._grpc import inference_pb2 as pb

    x = np.random.default_rng(0).normal(size=(1, window, features)).astype("<f4")
    req = pb.ModelInferRequest(model_name=model, raw_input_contents=[x.tobytes()])
    req.inputs.add(name="features", datatype="FP32", shape=[1, window, features])
    req.parameters["routing_key"].string_param = f"G{i}:2020-01-02"
    return bytes(req.SerializeToString())


async def load(target: str, model: str, concurrency: int, seconds: float,
               window: int = 20, features: int = 16) -> dict[str, float]:
    import grpc

    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD)
        deadline = time.perf_counter() + seconds
        counter = iter(range(10**9))

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                body = _request(model, window, features, next(counter))
                t0 = time.perf_counter()
                try:
                    await call(body)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"rps": round(len(latencies) / elapsed), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "requests": len(latencies),
            "errors": errors}


async def serve(port: int, onnx_path: str) -> None:
    import grpc
    import onnxruntime as ort

    from finmlops.serving._grpc import inference_pb2 as pb

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, sess_options=opts,
                                   providers=["CPUExecutionProvider"])

    async def infer(request: bytes, context: object) -> bytes:
        req = pb.ModelInferRequest.FromString(request)
        shape = list(req.inputs[0].shape)
        x = np.frombuffer(req.raw_input_contents[0], dtype="<f4").reshape(shape)
        p = session.run(["probability"], {"features": x})[0].astype("<f4")
        resp = pb.ModelInferResponse(model_name=req.model_name, model_version="1",
                                     raw_output_contents=[p.tobytes()])
        resp.outputs.add(name="probability", datatype="FP32", shape=[len(p)])
        return bytes(resp.SerializeToString())

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(infer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelInfer": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main(argv: list[str]) -> None:
    if argv[0] == "load":
        target, model, concurrency, seconds = argv[1], argv[2], int(argv[3]), float(argv[4])
        print(json.dumps(asyncio.run(load(target, model, concurrency, seconds))), flush=True)
    else:
        asyncio.run(serve(int(argv[1]), argv[2]))


if __name__ == "__main__":
    main(sys.argv[1:])
