"""When the SQLite ledger is locked or its disk is full: every answered request is in the
ledger, every refused one is a 503 ``{"error"}`` and counted, and the service recovers
without a restart. And several worker processes sharing one SQLite ledger."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from replica_support import EXP, metric_sum, start_replica
from serving_support import infer_body, zeros

from finmlops.config import Settings
from finmlops.ledger import open_ledger

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Load:
    """Client threads against one URL; every 200's prediction id, every other answer."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.answered: list[str] = []
        self.refused: list[tuple[int, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        target = len(self.answered) + n
        deadline = time.monotonic() + timeout
        while len(self.answered) < target:
            assert time.monotonic() < deadline, f"only {len(self.answered)} answered"
            time.sleep(0.05)

    def wait_refused(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.refused) < n:
            assert time.monotonic() < deadline, "nothing was refused"
            time.sleep(0.05)

    def _run(self, worker: int) -> None:
        i = 0
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self._stop.is_set():
                i += 1
                key = {"routing_key": f"L{worker}:{i}"}
                r = c.post(EXP, json=infer_body(zeros(), parameters=key))
                with self._lock:
                    if r.status_code == 200:
                        self.answered.append(r.json()["parameters"]["prediction_id"])
                    else:
                        self.refused.append((r.status_code, r.json()))


def check(load: Load, settings: Settings, metrics: str) -> None:
    led = open_ledger(settings.ledger_url, create=False)
    try:
        committed = {r["prediction_id"] for r in led.predictions()}
    finally:
        led.close()
    assert not set(load.answered) - committed  # every 200 is in the ledger
    assert load.refused and all(s == 503 and "error" in b for s, b in load.refused)
    refused = metric_sum(metrics, "finmlops_ledger_refused_total")
    assert refused >= len(load.refused)  # and every refusal was counted


def test_a_locked_sqlite_ledger_refuses_visibly_and_recovers(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings]) -> None:
    s = settings_for(**{"ledger.write_timeout_s": 0.3, "ledger.probe_interval_s": 0.2})
    h = start_server(s)
    path = s.ledger_url.removeprefix("sqlite:///")
    with Load(h.url) as load:
        load.wait_for(100)
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            load.wait_refused(20)
            assert httpx.get(f"{h.url}/v2/health/ready").status_code == 503
            time.sleep(3)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        load.wait_for(100)
    assert httpx.get(f"{h.url}/v2/health/ready").status_code == 200
    check(load, s, httpx.get(f"{h.url}/metrics").text)
    reasons = {b["error"] for _, b in load.refused}
    assert all("nothing was recorded" in r for r in reasons)


@contextlib.contextmanager
def small_disk(root: Path, size: str = "32m") -> Iterator[Path]:
    """A tmpfs to fill. Not too small: in WAL mode the ledger's log grows by up to ~4 MB
    (SQLite's 1,000-page autocheckpoint) before it is reset, and more while a reader holds a
    snapshot, so a 4 MB disk could fill again on its own after the filler is gone."""
    mount = root / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_refuses_visibly_and_recovers_when_space_returns(
        start_server: Callable[..., Any], settings_for: Callable[..., Settings],
        tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    with small_disk(tmp_path) as disk:
        s = settings_for(**{"ledger.url": f"sqlite:///{disk / 'ledger.db'}",
                            "ledger.probe_interval_s": 0.2})
        h = start_server(s)
        filler = disk / "filler"
        with Load(h.url) as load:
            load.wait_for(50)
            # Every free byte. Unbuffered, and the close inside the suppression: a buffered
            # file would retry its unwritten tail on close and raise ENOSPC there.
            with contextlib.suppress(OSError), filler.open("wb", buffering=0) as f:
                while True:
                    f.write(b"\0" * 65536)
            load.wait_refused(20)
            time.sleep(1)
            filler.unlink()
            load.wait_for(100)
        assert httpx.get(f"{h.url}/v2/health/ready").status_code == 200
        check(load, s, httpx.get(f"{h.url}/metrics").text)
        h.stop()


def children(pid: int) -> list[int]:
    """The live uvicorn worker processes of a supervisor (not multiprocessing's resource
    tracker)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
            if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in cmdline:
                out.append(int(stat.parent.name))
    return out


def test_several_workers_share_the_ledger_the_weights_and_the_counters(
        tmp_path: Path, model_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    replica = start_replica("w", tmp_path, model_root, url, {"ledger.poll_interval_s": 0.3},
                            workers=2)
    def answer(r: httpx.Response) -> Any:
        assert r.status_code == 200, f"{r.status_code}: {r.text}"  # the reason, if it fails
        return r.json()

    def both_ready(timeout: float = 30.0) -> None:
        """20 answers in a row on new connections: both workers serve."""
        deadline, streak = time.monotonic() + timeout, 0
        while streak < 20:
            assert time.monotonic() < deadline, "a worker never became ready"
            r = httpx.get(f"{replica.url}/v2/health/ready")
            streak = streak + 1 if r.status_code == 200 else 0

    try:
        both_ready()  # the supervisor's first worker answers before the second has loaded
        # a prediction and at once its feedback on a new connection, whichever worker answers
        unknown = 0
        for i in range(100):
            with httpx.Client(base_url=replica.url) as c:
                pid = answer(c.post(EXP, json=infer_body(zeros(), parameters={
                    "routing_key": f"W:{i}"})))["parameters"]["prediction_id"]
            with httpx.Client(base_url=replica.url) as c:
                got = c.post("/v2/feedback", json={"prediction_id": pid,
                                                   "realized_return": 0.01}).json()
            unknown += len(got["unknown"])
        assert unknown == 0
        # counters never go backwards from one scrape to the next
        seen = [metric_sum(replica.metrics(), "finmlops_predictions_total") for _ in range(12)]
        assert seen == sorted(seen) and seen[-1] == 100
        # a weight change made through one worker reaches both, and survives a worker restart
        weights = {"candidates": [{"name": "baseline", "weight": 0},
                                  {"name": "enhanced", "weight": 1}]}
        assert httpx.put(f"{replica.url}/admin/experiment", json=weights).status_code == 200
        time.sleep(1.0)

        def arms(n: int) -> set[str]:
            out = set()
            for _ in range(n):
                with httpx.Client(base_url=replica.url) as c:  # new connections: both workers
                    out.add(answer(c.post(EXP, json=infer_body(zeros())))["model_name"])
            return out

        assert arms(40) == {"enhanced"}
        workers = children(replica.proc.pid)
        assert len(workers) >= 2, workers
        before = metric_sum(replica.metrics(), "finmlops_predictions_total")
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while workers[0] in children(replica.proc.pid) or len(children(replica.proc.pid)) < 2:
            assert time.monotonic() < deadline, "the worker was not restarted"
            time.sleep(0.2)
        both_ready()  # the new worker has loaded its models and read the version in force
        assert arms(40) == {"enhanced"}
        after = metric_sum(replica.metrics(), "finmlops_predictions_total")
        assert after >= before + 40  # the dead worker's counts are still there
    finally:
        replica.stop()
    led = open_ledger(url, create=False)
    try:
        assert led.counts()["predictions"] >= 180
    finally:
        led.close()
    shutil.rmtree(tmp_path / "w" / "run", ignore_errors=True)
