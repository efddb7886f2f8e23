"""Single-row V2 inference through the A/B experiment with a durable ledger, under wrk.

Run: ``.venv/bin/python -m benchmarks serving``. Every server runs in its own process and
``wrk`` (one thread, a Lua script POSTing the same body with a fresh routing key) in another,
on the same machine, so with 2 cores the load generator competes with the server. Baseline
measured in the same run (the floor): a bare Starlette + ONNX Runtime V2 endpoint (orjson,
same model, no routing, ledger, metrics or auth) on one uvicorn worker. finmlops answers each
request only after its prediction (and, with shadow scoring, every arm's score) is committed
to the ledger: SQLite in WAL mode (``synchronous=NORMAL``) or PostgreSQL (Debian's, on
loopback, ``synchronous_commit=on``). Targets at concurrency 16, one worker: >= 0.5x the
floor's req/s on SQLite and >= 0.4x on PostgreSQL, p99 at most 3x the floor's.

A second part kills a server with SIGKILL under load (Python clients keeping the prediction
id of every 200) and counts answered predictions missing from the ledger (must be 0) and
requests refused.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

WINDOW, N_FEATURES, HIDDEN = 20, 16, 32
QUICK = bool(os.environ.get("BENCH_QUICK"))
"""A short smoke run (2 s, one run, c16 only) — not for reported figures."""
DURATION_S = 2 if QUICK else 5
REPEATS = 1 if QUICK else 3
"""Runs per point; the median is reported (the 2-core machine is shared, single runs are noisy)."""
CONCURRENCY = (16,) if QUICK else (1, 16, 64)
ROOT = Path(__file__).resolve().parents[1]


def write_model(dest: Path, seed: int, variant: str) -> None:
    """A small MLP over the flattened window: [-1, W, F] -> sigmoid -> [-1]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from finmlops.models.export import model_card

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.1, (WINDOW * N_FEATURES, HIDDEN)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (HIDDEN, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["features"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "w1"], ["h"]),
         helper.make_node("Relu", ["h"], ["hr"]),
         helper.make_node("MatMul", ["hr", "w2"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["p2"]),
         helper.make_node("Reshape", ["p2", "shape"], ["probability"])],
        f"bench_{variant}",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                       ["batch", WINDOW, N_FEATURES])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch"])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
                     numpy_helper.from_array(np.array([-1], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    dest.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest / "model.onnx"))
    card = model_card(variant=variant, target=["BENCH"], window=WINDOW,
                      feature_names=[f"f{i}" for i in range(N_FEATURES)],
                      data_version="bench", weights_hash=f"seed-{seed}", trained_until=None,
                      horizon=1, reference=None)
    card.model_copy(update={"model_version": "1"}).write(dest)


def bare_app() -> Any:
    """The baseline: Starlette + ORT + orjson, the V2 infer route only (uvicorn factory)."""
    import onnxruntime as ort
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(os.environ["BENCH_MODEL"], sess_options=opts,
                                   providers=["CPUExecutionProvider"])

    async def infer(request: Request) -> Response:
        body = orjson.loads(await request.body())
        t = body["inputs"][0]
        x = np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
        p = session.run(["probability"], {"features": x})[0]
        return Response(orjson.dumps({
            "model_name": request.path_params["name"], "model_version": "1",
            "id": body.get("id", ""), "outputs": [{"name": "probability", "datatype": "FP32",
                                                   "shape": [len(p)], "data": p.tolist()}]}),
            media_type="application/json")

    return Starlette(routes=[Route("/v2/models/{name}/infer", infer, methods=["POST"])])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, path: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(url + path, content=BODY, timeout=2,
                          headers={"content-type": "application/json"}).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


def start_finmlops(models: Path, home: Path, workers: int, shadow: bool,
                   ledger_url: str | None = None, grpc_port: int | None = None
                   ) -> tuple[subprocess.Popen[str], str]:
    cfg = home / "finmlops.yaml"
    tree: dict[str, Any] = {"home": str(home), "experiment": {"shadow": shadow},
                            "serve": {"grpc_port": grpc_port}}
    if ledger_url is not None:
        tree["ledger"] = {"url": ledger_url}
    cfg.write_text(json.dumps(tree), "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINMLOPS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "finmlops.serving", "--config", str(cfg), "--port", "0",
         "--workers", str(workers), "--model-dir", str(models)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.rsplit(" on ", 1)[1].split()[0].strip()
    return proc, url


def start_bare(model: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, "BENCH_MODEL": str(model)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.bench_serving:bare_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log", "--loop", "uvloop", "--http", "httptools"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if m is None:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(url: str, path: str, script: Path, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{DURATION_S}s", "--latency", "-s", str(script),
         url + path], capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in sock.groups()) if sock else 0)
    return {"rps": round(rps), "p50_ms": _ms(pct.get("50", "")),
            "p99_ms": _ms(pct.get("99", "")), "requests": total, "errors": errors}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median rps/p50/p99 over runs (each taken separately), the p99 range, summed counts."""
    def med(key: str) -> float:
        return float(np.median([r[key] for r in runs]))

    return {"rps": round(med("rps")), "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
            "p99_range_ms": f"{min(r['p99_ms'] for r in runs):.2f}-"
                            f"{max(r['p99_ms'] for r in runs):.2f}",
            "requests": sum(r["requests"] for r in runs),
            "errors": sum(r["errors"] for r in runs)}


BODY = json.dumps({"inputs": [{"name": "features", "datatype": "FP32",
                               "shape": [1, WINDOW, N_FEATURES],
                               "data": np.round(np.random.default_rng(0).normal(
                                   size=WINDOW * N_FEATURES), 4).tolist()}]}).encode()


LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format(BODY, counter))
end
"""


def lua_script(path: Path) -> None:
    """POST the body with ``parameters.routing_key = "B<n>:2020-01-02"`` (a fresh key per
    request, as live traffic has: one position per entity)."""
    body = json.loads(BODY)
    body["parameters"] = {"routing_key": "B%d:2020-01-02"}  # the only % in the body
    text = json.dumps(body)
    path.write_text(f"BODY = [[{text}]]\n" + LUA, encoding="utf-8")


BINARY_LUA = """local f = io.open("{tail}", "rb")
local tail = f:read("*all")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
counter = 0
request = function()
  counter = counter + 1
  local head = string.format(HEAD, counter)
  wrk.headers["Inference-Header-Content-Length"] = tostring(#head)
  return wrk.format(nil, nil, nil, head .. tail)
end
"""


def binary_script(path: Path) -> None:
    """The binary tensor extension, as tritonclient sends it by default: a JSON header (with a
    fresh routing key each request) and the raw little-endian FP32 values after it."""
    x = np.asarray(json.loads(BODY)["inputs"][0]["data"], dtype="<f4")
    head = {"parameters": {"routing_key": "B%08d:2020-01-02", "binary_data_output": True},
            "inputs": [{"name": "features", "datatype": "FP32",
                        "shape": [1, WINDOW, N_FEATURES],
                        "parameters": {"binary_data_size": x.nbytes}}]}
    tail = path.with_suffix(".bin")
    tail.write_bytes(x.tobytes())
    path.write_text(f"HEAD = [[{json.dumps(head)}]]\n" + BINARY_LUA.format(tail=tail),
                    encoding="utf-8")


def grpc_load(target: str, model: str, concurrency: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks._grpc_load", "load", target, model,
         str(concurrency), str(DURATION_S)], capture_output=True, text=True, check=True,
        cwd=ROOT).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def protocol_rows(models: Path, root: Path) -> list[dict[str, Any]]:
    """JSON, binary and gRPC into the same finmlops server (SQLite ledger, shadow on), beside
    the floors: bare Starlette + ORT over JSON, bare grpc.aio + ORT over gRPC; c16."""
    rows: list[dict[str, Any]] = []
    json_lua, bin_lua = root / "proto-json.lua", root / "proto-bin.lua"
    lua_script(json_lua)
    binary_script(bin_lua)
    path = "/v2/models/direction-ab/infer"
    proc, url = start_bare(models / "baseline" / "model.onnx")
    try:
        wait_ready(url, "/v2/models/baseline/infer")
        runs = [run_wrk(url, "/v2/models/baseline/infer", json_lua, 16)
                for _ in range(REPEATS)]
        rows.append({"protocol": "JSON", "server": "bare starlette+ORT (floor)",
                     **median_of(runs)})
    finally:
        stop(proc)
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "benchmarks._grpc_load", "serve",
                             str(port), str(models / "baseline" / "model.onnx")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(2.0)
        runs = [grpc_load(f"127.0.0.1:{port}", "baseline", 16) for _ in range(REPEATS)]
        rows.append({"protocol": "gRPC", "server": "bare grpc.aio+ORT (floor)",
                     **median_of(runs)})
    finally:
        stop(bare)
    home = root / "home-protocols"
    home.mkdir()
    gport = free_port()
    proc, url = start_finmlops(models, home, 1, True, f"sqlite:///{home / 'ledger.db'}",
                               grpc_port=gport)
    try:
        wait_ready(url, path)
        for name, script in (("JSON", json_lua), ("binary", bin_lua)):
            runs = [run_wrk(url, path, script, 16) for _ in range(REPEATS)]
            rows.append({"protocol": name, "server": "finmlops, SQLite ledger + shadow",
                         **median_of(runs)})
        runs = [grpc_load(f"127.0.0.1:{gport}", "direction-ab", 16) for _ in range(REPEATS)]
        rows.append({"protocol": "gRPC", "server": "finmlops, SQLite ledger + shadow",
                     **median_of(runs)})
    finally:
        stop(proc)
    for r in rows:
        print(r, flush=True)
    return rows


def committed(url: str) -> int:
    from finmlops.ledger import open_ledger

    led = open_ledger(url, create=False)
    try:
        return led.counts()["predictions"]
    finally:
        led.close()


def kill_run(models: Path, home: Path, ledger_url: str, seconds: float = 3.0
             ) -> dict[str, Any]:
    """Python clients under load, SIGKILL of the server, then the ledger against the 200s."""
    import threading

    import httpx

    from finmlops.ledger import open_ledger

    proc, url = start_finmlops(models, home, 1, True, ledger_url)
    wait_ready(url, "/v2/models/direction-ab/infer")
    answered: list[str] = []
    refused = [0]
    stop_ = threading.Event()

    def client(w: int) -> None:
        i = 0
        with httpx.Client(base_url=url, timeout=10) as c:
            while not stop_.is_set():
                i += 1
                body = json.loads(BODY)
                body["parameters"] = {"routing_key": f"K{w}-{i}:2020-01-02"}
                try:
                    r = c.post("/v2/models/direction-ab/infer", json=body)
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    answered.append(r.json()["parameters"]["prediction_id"])
                else:
                    refused[0] += 1

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop_.set()
    for t in threads:
        t.join()
    if proc.stdout is not None:
        proc.stdout.close()
    led = open_ledger(ledger_url, create=False)
    try:
        ids = {r["prediction_id"] for r in led.predictions()}
    finally:
        led.close()
    return {"answered_200": len(answered), "committed": len(ids),
            "answered_not_committed": len(set(answered) - ids),
            "committed_not_answered": len(ids - set(answered)), "refused_503": refused[0]}


def postgres() -> Any:
    """Debian's PostgreSQL on loopback (the test suite's helper), or None when absent."""
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_support import postgres_server, skip_reason

    if skip_reason() is not None:
        print(f"PostgreSQL rows skipped: {skip_reason()}")
        return None
    return postgres_server()


Case = tuple[str, int, bool, str | None]
"""(server, workers, shadow, ledger: None | "sqlite" | "postgresql")."""


def main() -> None:
    import contextlib

    from benchmarks._common import write_results

    rows: list[dict[str, Any]] = []
    kills: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp, \
            contextlib.ExitStack() as stack:
        root = Path(tmp)
        models = root / "models"
        write_model(models / "baseline", 1, "baseline")
        write_model(models / "enhanced", 2, "enhanced")
        script = root / "post.lua"
        lua_script(script)
        pg_cm = postgres()
        pg = stack.enter_context(pg_cm) if pg_cm is not None else None
        cases: list[Case] = [
            ("bare starlette+ORT (floor)", 1, False, None),
            ("finmlops, SQLite ledger", 1, False, "sqlite"),
            ("finmlops, SQLite ledger + shadow", 1, True, "sqlite"),
            ("finmlops, SQLite ledger + shadow", 2, True, "sqlite"),
        ]
        if pg is not None:
            cases += [("finmlops, PostgreSQL ledger", 1, False, "postgresql"),
                      ("finmlops, PostgreSQL ledger + shadow", 1, True, "postgresql")]
        for i, (name, workers, shadow, ledger) in enumerate(cases):
            home = root / f"home{i}"
            home.mkdir()
            url_db = (pg.create_database() if ledger == "postgresql" and pg is not None
                      else f"sqlite:///{home / 'ledger.db'}")
            if ledger is None:
                proc, url = start_bare(models / "baseline" / "model.onnx")
                path = "/v2/models/baseline/infer"
            else:
                proc, url = start_finmlops(models, home, workers, shadow, url_db)
                path = "/v2/models/direction-ab/infer"
            try:
                wait_ready(url, path)
                for c in CONCURRENCY:
                    runs = [run_wrk(url, path, script, c) for _ in range(REPEATS)]
                    rows.append({"server": name, "workers": workers, "concurrency": c,
                                 **median_of(runs)})
                    print(rows[-1], flush=True)
            finally:
                stop(proc)
            if ledger is not None:
                answered = sum(r["requests"] - r["errors"] for r in rows[-len(CONCURRENCY):])
                # wrk does not count requests in flight when a run ends: the ledger may hold
                # up to `concurrency` more predictions per run than wrk saw answered, never fewer
                rows[-1]["committed/answered"] = f"{committed(url_db)}/{answered + 1}"
        for ledger in ("sqlite", "postgresql"):
            if ledger == "postgresql" and pg is None:
                continue
            home = root / f"kill-{ledger}"
            home.mkdir()
            url_db = (pg.create_database() if ledger == "postgresql" and pg is not None
                      else f"sqlite:///{home / 'ledger.db'}")
            kills.append({"ledger": ledger, **kill_run(models, home, url_db)})
            print(kills[-1], flush=True)
        protocols = protocol_rows(models, root)
    floor = next(r for r in rows if r["server"].startswith("bare") and r["concurrency"] == 16)
    ratios = {}
    for r in rows:
        if r["concurrency"] == 16 and not r["server"].startswith("bare"):
            ratios[f"{r['server']} x{r['workers']}"] = {
                "rps_vs_floor": round(r["rps"] / floor["rps"], 2),
                "p99_vs_floor": round(r["p99_ms"] / floor["p99_ms"], 2)}
    write_results("serving", rows, {
        "command": ".venv/bin/python -m benchmarks serving",
        "model": f"MLP [-1,{WINDOW},{N_FEATURES}] -> {HIDDEN} -> 1 (ONNX, single row)",
        "load": f"wrk -t1, {DURATION_S}s per run, median of {REPEATS} runs, same 2-core "
                "machine as the server (shared with other jobs); a fresh routing key per "
                "request",
        "floor_c16": {"rps": floor["rps"], "p99_ms": floor["p99_ms"]},
        "vs_floor_c16": ratios,
        "targets": "c16, 1 worker: >= 0.5x the floor's req/s on SQLite, >= 0.4x on "
                   "PostgreSQL, p99 <= 3x the floor's",
        "kill_minus_nine": kills,
        "protocols_c16": protocols,
        "external_anchors": {"mlserver_1.7.1_default": "~820 req/s, p99 ~31 ms"},
    })
    print("c16 against the floor:", ratios)
    for k in kills:
        print("kill -9:", k)
    for p in protocols:
        print(f"{p['protocol']:>6} {p['server']}: {p['rps']} req/s, p99 {p['p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
