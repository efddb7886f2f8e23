"""Three serving processes behind nginx (round robin), one PostgreSQL ledger: the experiment's
evidence is complete and correct whichever replica answers, when one is killed, and when the
ledger fails."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from replica_support import (
    EXP,
    Balancer,
    Replica,
    metric_sum,
    nginx_skip_reason,
    start_balancer,
    start_replica,
)
from serving_support import FEATURES, WINDOW, infer_body, make_settings, write_model, zeros

from finmlops.abtest import ReplayInput, analyse_evidence, read_evidence, replay
from finmlops.abtest.client import ServiceClient
from finmlops.config import Settings
from finmlops.ledger import open_ledger

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(postgres: Any, tmp_path_factory: pytest.TempPathFactory, model_root: Path
            ) -> Iterator[dict[str, Any]]:
    reason = nginx_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    url = postgres.create_database()
    root = tmp_path_factory.mktemp("replicas")
    replicas = [start_replica(f"r{i}", root, model_root, url,
                              {"ledger.poll_interval_s": 0.5}) for i in range(3)]
    balancer = start_balancer(root / "nginx", replicas)
    try:
        yield {"url": url, "replicas": replicas, "balancer": balancer, "root": root,
               "postgres": postgres}
    finally:
        balancer.stop()
        for r in replicas:
            r.stop()


def replay_input(days: int, seed: int = 0) -> ReplayInput:
    """Real IBB next-day returns on real trading days, random feature windows."""
    from finmlops.data.sources import BundledSource

    bars = BundledSource().fetch(["IBB"], dt.date(2019, 1, 2), None).head(days + 1)
    closes = bars["adj_close"].to_numpy()
    fwd = closes[1:] / closes[:-1] - 1.0
    dates = [d.date() for d in bars["date"].iloc[:days]]
    rng = np.random.default_rng(seed)
    windows = rng.normal(0.0, 1.0, size=(days, WINDOW, len(FEATURES))).astype(np.float32)
    return ReplayInput(windows, dates, ["IBB"] * days, fwd[:days])


def summary_of(ledger_url: str, settings: Settings) -> dict[str, Any]:
    led = open_ledger(ledger_url, create=False)
    try:
        return analyse_evidence(read_evidence(led, settings), settings).to_json()
    finally:
        led.close()


def test_a_replay_through_the_balancer_equals_a_single_process_run(
        cluster: dict[str, Any], start_server: Callable[..., Any], tmp_path: Path) -> None:
    data = replay_input(150)
    balancer: Balancer = cluster["balancer"]
    result = replay(ServiceClient(balancer.url), data, experiment="direction-ab",
                    id_prefix="lb")
    assert result.requests == result.feedback == 150
    settings = make_settings(tmp_path)
    # every replica answered some of the traffic
    served_by = {r.name: metric_sum(r.metrics(), "finmlops_ledger_committed_total")
                 for r in cluster["replicas"]}
    assert all(n > 0 for n in served_by.values()), served_by
    led = open_ledger(cluster["url"], create=False)
    try:
        rows = led.predictions("direction-ab")
        assert len(rows) == 150 and len({r["server"] for r in rows}) == 3
        feedback = led.feedback()
        assert len(feedback) == 150  # every prediction has exactly one outcome
        assert {f["prediction_id"] for f in feedback} == {r["prediction_id"] for r in rows}
    finally:
        led.close()
    # the same traffic through one process on SQLite gives the same A/B summary
    single = start_server(settings)
    replay(ServiceClient(single.url), data, experiment="direction-ab", id_prefix="single")
    single.stop()
    assert summary_of(cluster["url"], settings) == summary_of(settings.ledger_url, settings)


def test_a_weight_change_on_one_replica_reaches_all_of_them(cluster: dict[str, Any]) -> None:
    replicas: list[Replica] = cluster["replicas"]
    before = httpx.get(f"{replicas[0].url}/admin/experiment").json()["version"]
    weights = {"candidates": [{"name": "baseline", "weight": 10},
                              {"name": "enhanced", "weight": 90}]}
    r = httpx.put(f"{replicas[1].url}/admin/experiment", json=weights)
    assert r.status_code == 200 and r.json()["version"] == before + 1
    started = time.monotonic()
    while True:
        versions = [httpx.get(f"{x.url}/admin/experiment").json()["version"] for x in replicas]
        if versions == [before + 1] * 3:
            break
        assert time.monotonic() - started < 5.0, versions
        time.sleep(0.05)
    print(f"converged in {time.monotonic() - started:.2f} s")
    with httpx.Client(base_url=cluster["balancer"].url) as c:
        pids = [c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": f"V:{i}"}))
                .json()["parameters"]["prediction_id"] for i in range(30)]
    led = open_ledger(cluster["url"], create=False)
    try:
        rows = {r["prediction_id"]: r for r in led.predictions("direction-ab")}
        assert {rows[p]["config_version"] for p in pids} == {before + 1}
        assert {rows[p]["propensity"] for p in pids if rows[p]["arm"] == "enhanced"} == {0.9}
    finally:
        led.close()
    httpx.put(f"{replicas[2].url}/admin/experiment", json={"candidates": [
        {"name": "baseline", "weight": 70}, {"name": "enhanced", "weight": 30}]})


def test_one_outcome_posted_to_every_replica_at_once_counts_once(
        cluster: dict[str, Any]) -> None:
    replicas: list[Replica] = cluster["replicas"]
    keys = [f"ONCE{i:03d}:2021-03-01" for i in range(120)]
    with httpx.Client(base_url=cluster["balancer"].url) as c:
        for k in keys:
            assert c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": k})
                          ).status_code == 200
    before = sum(metric_sum(r.metrics(), "finmlops_feedback_total") for r in replicas)
    body = {"outcomes": [{"routing_key": k, "realized_return": 0.01} for k in keys]}
    answers: list[dict[str, Any]] = []
    start = threading.Barrier(len(replicas))

    def post(replica: Replica) -> None:
        start.wait()
        answers.append(httpx.post(f"{replica.url}/v2/feedback", json=body, timeout=30).json())

    threads = [threading.Thread(target=post, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(a["accepted"] for a in answers) == 120
    assert sum(a["duplicates"] for a in answers) == 240
    after = sum(metric_sum(r.metrics(), "finmlops_feedback_total") for r in replicas)
    assert after - before == 120


def test_a_feedback_that_times_out_and_is_retried_elsewhere_counts_once(
        cluster: dict[str, Any]) -> None:
    """The first replica's transaction waits on a lock past the client's timeout; the client
    retries on another replica, which waits for it and then sees the outcome recorded."""
    import psycopg

    replicas: list[Replica] = cluster["replicas"]
    key = "TIMEOUT:2021-03-02"
    with httpx.Client(base_url=cluster["balancer"].url) as c:
        c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": key}))
    before = sum(metric_sum(r.metrics(), "finmlops_feedback_total") for r in replicas)
    body = {"routing_key": key, "realized_return": 0.02}
    with psycopg.connect(cluster["url"]) as blocker:
        # hold the feedback table's rows for this key: the replica's insert waits
        blocker.execute("LOCK TABLE feedback IN SHARE MODE")
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{replicas[0].url}/v2/feedback", json=body, timeout=0.5)
        retry: dict[str, Any] = {}

        def again() -> None:
            retry.update(httpx.post(f"{replicas[1].url}/v2/feedback", json=body,
                                    timeout=30).json())

        t = threading.Thread(target=again)
        t.start()
        time.sleep(0.3)
        blocker.rollback()  # release: the first transaction commits, the retry sees it
        t.join()
    assert retry == {"accepted": 0, "duplicates": 1, "unknown": []} or retry["accepted"] == 1
    deadline = time.monotonic() + 5
    while True:
        after = sum(metric_sum(r.metrics(), "finmlops_feedback_total") for r in replicas)
        if after - before == 1:
            break
        assert time.monotonic() < deadline, after - before
        time.sleep(0.05)
    led = open_ledger(cluster["url"], create=False)
    try:
        assert len([f for f in led.feedback() if f["prediction_id"] in {
            p["prediction_id"] for p in led.predictions() if p["routing_key"] == key}]) == 1
    finally:
        led.close()


class Traffic:
    """Clients through the balancer keeping every prediction id answered 200."""

    def __init__(self, url: str, threads: int = 6, prefix: str = "T") -> None:
        self.url, self.prefix = url, prefix
        self.answered: list[str] = []
        self.refused: list[tuple[int, str]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        target = len(self.answered) + n
        while len(self.answered) < target:
            assert time.monotonic() < deadline, f"only {len(self.answered)} answered"
            time.sleep(0.05)

    def _run(self, worker: int) -> None:
        i = 0
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self._stop.is_set():
                i += 1
                key = f"{self.prefix}{worker}:{dt.date(2020, 1, 1) + dt.timedelta(days=i)}"
                try:
                    r = c.post(EXP, json=infer_body(zeros(), parameters={"routing_key": key}))
                except httpx.TransportError:
                    with self._lock:
                        self.errors += 1
                    time.sleep(0.01)
                    continue
                with self._lock:
                    if r.status_code == 200:
                        self.answered.append(r.json()["parameters"]["prediction_id"])
                    else:
                        self.refused.append((r.status_code, r.text))


def committed(url: str) -> set[str]:
    led = open_ledger(url, create=False)
    try:
        return {r["prediction_id"] for r in led.predictions()}
    finally:
        led.close()


def test_kill_minus_nine_of_one_replica_under_load_loses_no_answer(
        cluster: dict[str, Any], model_root: Path) -> None:
    replicas: list[Replica] = cluster["replicas"]
    victim = replicas[0]
    with Traffic(cluster["balancer"].url, prefix="K") as traffic:
        traffic.wait_for(300)
        victim.kill()
        traffic.wait_for(150)
    missing = set(traffic.answered) - committed(cluster["url"])
    print(f"answered {len(traffic.answered)}, errors {traffic.errors}, "
          f"non-200 {len(traffic.refused)}, lost {len(missing)}")
    assert not missing
    assert all(status in (502, 503) for status, _ in traffic.refused)
    victim.stop()  # closes its pipes
    # back on its port, so the balancer sends it traffic again
    replicas[0] = start_replica("r0", cluster["root"], model_root, cluster["url"],
                                {"ledger.poll_interval_s": 0.5}, port=victim.port)


def test_postgres_stopped_for_30_s_refuses_visibly_and_recovers_without_a_restart(
        cluster: dict[str, Any]) -> None:
    replicas: list[Replica] = cluster["replicas"]
    pg = cluster["postgres"]
    refused_before = sum(metric_sum(r.metrics(), "finmlops_ledger_refused_total")
                         for r in replicas)
    with Traffic(cluster["balancer"].url, prefix="PG") as traffic:
        traffic.wait_for(100)
        pg.stop("fast")
        stopped = time.monotonic()
        try:
            # each replica goes unready after ledger.fail_after failed commits
            while [httpx.get(f"{r.url}/v2/health/ready").status_code for r in replicas] \
                    != [503] * 3:
                assert time.monotonic() - stopped < 25, "a replica stayed ready"
                time.sleep(0.2)
            time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
        finally:
            pg.start()
        traffic.wait_for(200, timeout=90)
    refusals = [(s, t) for s, t in traffic.refused]
    assert refusals and all(s == 503 and '"error"' in t for s, t in refusals)
    missing = set(traffic.answered) - committed(cluster["url"])
    assert not missing
    refused_after = sum(metric_sum(r.metrics(), "finmlops_ledger_refused_total")
                        for r in replicas)
    # every 503 the clients saw was counted by the replica that refused it
    assert refused_after - refused_before >= len(refusals)
    # the balancer found a ready replica; every one is ready again within a few probe
    # intervals (the pool reconnects with backoff after an outage)
    deadline = time.monotonic() + 20
    while [httpx.get(f"{r.url}/v2/health/ready").status_code for r in replicas] != [200] * 3:
        assert time.monotonic() < deadline, "a replica did not recover after the database did"
        time.sleep(0.2)
    print(f"answered {len(traffic.answered)}, refused {len(refusals)}")


def test_an_aa_experiment_through_three_replicas_never_promotes(
        postgres: Any, tmp_path: Path) -> None:
    """One model under two names: neither the split nor the paired test may decide."""
    reason = nginx_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    models = tmp_path / "aa"
    write_model(models / "baseline", "baseline", "1")
    write_model(models / "enhanced", "baseline", "1")  # the same model, another name
    url = postgres.create_database()
    config = {"abtest.min_samples": 20}
    replicas = [start_replica(f"aa{i}", tmp_path, models, url, config) for i in range(3)]
    balancer = start_balancer(tmp_path / "nginx", replicas)
    try:
        data = replay_input(400, seed=5)
        replay(ServiceClient(balancer.url), data, experiment="direction-ab", id_prefix="aa")
    finally:
        balancer.stop()
        for r in replicas:
            r.stop()
    settings = make_settings(tmp_path, **config)
    summary = summary_of(url, settings)
    for test in ("split", "paired"):
        actions = set(summary["timeline"][test]["action"])
        assert actions <= {"continue", "invalid"}, (test, actions)
    assert summary["paired_decision"]["numbers"]["paired"]["n"] == 400
