"""The service as its own process: SIGHUP reloads the experiment, SIGTERM under load drains
in-flight requests and flushes every served prediction to the log; and the CLI command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import typer
import yaml
from serving_support import infer_body, wait_ready, zeros
from typer.testing import CliRunner

from finmlops.serving.log import PredictionLog

pytestmark = pytest.mark.integration
EXP = "/v2/models/direction-ab/infer"


def write_config(path: Path, home: Path, weights: tuple[int, int]) -> None:
    path.write_text(yaml.safe_dump({
        "home": str(home),
        "serve": {"log_flush_interval_s": 5.0, "log_batch_size": 100_000},
        "experiment": {"candidates": [{"name": "baseline", "weight": weights[0]},
                                      {"name": "enhanced", "weight": weights[1]}]},
    }), encoding="utf-8")


def test_sighup_reloads_and_sigterm_drains_under_load(tmp_path: Path,
                                                      model_root: Path) -> None:
    cfg = tmp_path / "finmlops.yaml"
    write_config(cfg, tmp_path, (70, 30))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINMLOPS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "finmlops.serving", "--config", str(cfg), "--port", "0",
         "--model-dir", str(model_root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " on http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.poll() else "")
        url = line.rsplit(" on ", 1)[1].strip()
        wait_ready(url)

        write_config(cfg, tmp_path, (0, 100))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/admin/experiment").json()["candidates"][0]["weight"] != 0:
            assert time.monotonic() < deadline, "SIGHUP did not reload the experiment"
            time.sleep(0.05)

        ok_ids: list[str] = []
        failed: list[str] = []
        refused = 0
        lock = threading.Lock()
        stop = threading.Event()

        def load(worker: int) -> None:
            nonlocal refused
            i = 0
            with httpx.Client(base_url=url, timeout=10) as c:
                while not stop.is_set():
                    rid = f"w{worker}-{i}"
                    i += 1
                    try:
                        r = c.post(EXP, json=infer_body(zeros(), id=rid))
                    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                        with lock:
                            refused += 1
                        if proc.poll() is not None:
                            return
                        time.sleep(0.01)
                        continue
                    with lock:
                        if r.status_code == 200 and r.json()["id"] == rid:
                            ok_ids.append(rid)
                        else:
                            failed.append(f"{r.status_code} {r.text}")

        threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stop.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()

    print(f"served {len(ok_ids)}, refused after SIGTERM {refused}")
    assert failed == []
    assert len(ok_ids) > 50
    logged = PredictionLog(tmp_path / "predictions.db").predictions("direction-ab")
    logged_ids = {r["request_id"] for r in logged}
    # every 200 was flushed on shutdown, and nothing was served without reaching its client
    assert set(ok_ids) <= logged_ids
    assert logged_ids - set(ok_ids) == set()
    assert {r["arm"] for r in logged if r["request_id"] in set(ok_ids)} == {"enhanced"}


def test_cli_serve_is_registered_and_documented() -> None:
    from finmlops.cli import serve

    app = typer.Typer()
    serve.register(app)

    @app.command("noop")
    def noop() -> None:
        """Keeps typer in multi-command mode."""

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in ("--host", "--port", "--workers", "--model-dir", "--ref"):
        assert flag in result.output


def test_cli_ref_parsing_rejects_garbage() -> None:
    from finmlops.cli.serve import _refs
    from finmlops.errors import ConfigError

    assert _refs(["enhanced=challenger"]) == {"enhanced": "challenger"}
    with pytest.raises(ConfigError):
        _refs(["enhanced"])
