"""A real Prometheus scrapes a real service on loopback and evaluates our rules: the A/B sums
it holds equal what the experiment ledger gives (``Ledger.outcomes``: the served rows' hits
and net returns by the backtest's rule, and the paired ones), and its sample-ratio rule flags
a skewed split from the request counters alone. (Decisions read the ledger; Prometheus is for
dashboards and alerts.)"""

from __future__ import annotations

import math
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from monitoring_support import RULES, Service, traffic

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Prometheus:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = self.client.get("/api/v1/query", params={"query": expr})
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def by(self, expr: str, label: str) -> dict[str, float]:
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in self.query(expr)}

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.25)


@pytest.fixture
def prometheus(prometheus_bin: str, service: Service, tmp_path: Path) -> Iterator[Prometheus]:
    """Prometheus 2.x on a free loopback port scraping ``service`` every second, with our rules."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "finmlops", "metrics_path": "/metrics",
                            "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}]}],
    }
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [prometheus_bin, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
         "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                output = (tmp_path / "prometheus.log").read_text()
                raise AssertionError(f"prometheus exited: {output}")
            try:
                return prom.client.get("/-/ready").status_code == 200
            except httpx.TransportError:
                return False

        prom.wait_for("prometheus to be ready", ready, timeout=30)
        yield prom
    finally:
        prom.client.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def ledger_stats(service: Service) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per served arm: n, hits, sum and sum of squares of net returns, and predictions served;
    and the enhanced-vs-baseline paired sums — all through the ledger's own reads."""
    import pandas as pd

    from finmlops.abtest import paired_frame
    from finmlops.ledger import open_ledger

    name = service.settings.experiment.name
    ledger = open_ledger(service.ledger_url, create=False)
    try:
        outcomes = ledger.outcomes(name, service.settings.evaluation)
        predictions = pd.DataFrame(ledger.predictions(name))
    finally:
        ledger.close()
    served = outcomes[outcomes["served"]]
    per_arm = {str(arm): {"n": len(g), "hits": int(g["hit"].sum()),
                          "sum": float(g["net_return"].sum()),
                          "sq": float((g["net_return"] ** 2).sum()),
                          "served": int((predictions["arm"] == arm).sum())}
               for arm, g in served.groupby("arm")}
    j = paired_frame(outcomes, "enhanced", "baseline")
    diff = j["net_return"] - j["net_return_ref"]
    paired = {"n": len(j), "arm": int((j["hit"] & ~j["hit_ref"]).sum()),
              "reference": int((~j["hit"] & j["hit_ref"]).sum()),
              "sum": float(diff.sum()), "sq": float((diff**2).sum())}
    return per_arm, paired


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_prometheus_statistics_equal_the_ledger(service: Service,
                                                prometheus: Prometheus) -> None:
    prometheus.wait_for("the target to be up",
                        lambda: prometheus.by('up{job="finmlops"}', "job") == {"finmlops": 1.0})
    traffic(service.client, 40, seed=3)
    traffic(service.client, 40, seed=4)
    local, pairs = ledger_stats(service)
    assert set(local) == {"baseline", "enhanced"}, "both arms served (70/30 split, 80 requests)"
    assert sum(s["n"] for s in local.values()) == 80 and pairs["n"] == 80  # shadow scoring
    assert any(s["sum"] != 0 for s in local.values())
    want_n = {arm: s["n"] for arm, s in local.items()}
    prometheus.wait_for(
        "the feedback counters to be scraped",
        lambda: prometheus.by("sum by (arm) (finmlops_feedback_total)", "arm") == want_n)

    n = prometheus.by("sum by (arm) (finmlops_feedback_total)", "arm")
    hits = prometheus.by("sum by (arm) (finmlops_feedback_hits_total)", "arm")
    ret = prometheus.by("sum by (arm) (finmlops_feedback_return_sum)", "arm")
    sq = prometheus.by("sum by (arm) (finmlops_feedback_return_sq_sum)", "arm")
    served = prometheus.by("sum by (arm) (finmlops_predictions_total)", "arm")
    for arm, s in local.items():
        assert n[arm] == s["n"]
        assert hits[arm] == s["hits"]
        assert close(ret[arm], s["sum"]) and close(sq[arm], s["sq"])
        assert served[arm] == s["served"]
    pn = prometheus.by("sum by (arm) (finmlops_paired_outcomes_total)", "arm")
    wins = prometheus.by("sum by (winner) (finmlops_paired_discordant_total)", "winner")
    dsum = prometheus.by("sum by (arm) (finmlops_paired_return_diff_sum)", "arm")
    dsq = prometheus.by("sum by (arm) (finmlops_paired_return_diff_sq_sum)", "arm")
    assert pn == {"enhanced": pairs["n"]}
    assert wins == {k: float(pairs[k]) for k in ("arm", "reference") if pairs[k]}
    assert close(dsum["enhanced"], pairs["sum"]) and close(dsq["enhanced"], pairs["sq"])

    # the recording rules, evaluated by Prometheus itself, give the same per-arm statistics
    def recorded() -> bool:
        return prometheus.by("finmlops:arm_feedback:count", "arm") == want_n

    prometheus.wait_for("the recording rules", recorded)
    mean = prometheus.by("finmlops:arm_net_return:mean", "arm")
    hit_rate = prometheus.by("finmlops:arm_hit_rate:ratio", "arm")
    for arm, s in local.items():
        assert math.isclose(mean[arm], s["sum"] / s["n"], rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(hit_rate[arm], s["hits"] / s["n"], rel_tol=1e-12)
    champion = prometheus.query("finmlops:experiment_champion:info")
    assert [c["metric"]["arm"] for c in champion] == ["baseline"]
    z = prometheus.by("finmlops:arm_hit_rate:z_vs_champion", "arm")
    assert z["baseline"] == 0.0 and math.isfinite(z["enhanced"])
    weights = prometheus.by("finmlops:experiment_weight:ratio", "arm")
    assert weights == {"baseline": 0.7, "enhanced": 0.3}
    alerts = prometheus.client.get("/api/v1/rules", params={"type": "alert"}).json()
    groups = alerts["data"]["groups"]
    assert {g["name"] for g in groups} >= {"finmlops.service", "finmlops.experiment",
                                          "finmlops.data"}
    health = {r["name"]: r["health"] for g in groups for r in g["rules"]}
    assert set(health.values()) <= {"ok", "unknown"}, health


def test_prometheus_flags_a_sample_ratio_mismatch(service: Service,
                                                  prometheus: Prometheus) -> None:
    """All traffic pinned to the 30% arm: the SRM alert goes pending in a real Prometheus."""
    # Counter series appear at their first increment, and increase() cannot count what a
    # series held at its first scrape: warm up each arm's request counter first.
    traffic(service.client, 1, seed=5, arm="baseline")
    traffic(service.client, 1, seed=6, arm="enhanced")
    prometheus.wait_for(
        "both arms' request counters",
        lambda: len(prometheus.query('finmlops_requests_total{status="200"}')) == 2)
    time.sleep(1.5)
    traffic(service.client, 120, seed=7, arm="enhanced")

    def pending() -> bool:
        alerts = prometheus.client.get("/api/v1/alerts").json()["data"]["alerts"]
        srm = {a["labels"]["arm"]: a for a in alerts
               if a["labels"]["alertname"] == "FinmlopsSampleRatioMismatch"}
        return set(srm) == {"baseline", "enhanced"} and all(
            a["state"] == "pending" and a["labels"]["severity"] == "critical"
            for a in srm.values())

    try:
        prometheus.wait_for("the sample-ratio mismatch alert", pending)
    except AssertionError:
        debug = {e: prometheus.query(e) for e in (
            "finmlops:experiment_srm:z1h", "finmlops:arm_requests:increase1h",
            "finmlops:experiment_requests:increase1h", "finmlops:experiment_weight:ratio",
            "finmlops_requests_total", "ALERTS")}
        raise AssertionError(f"no SRM alert; {debug}") from None
    z = prometheus.by("finmlops:experiment_srm:z1h", "arm")
    assert z["enhanced"] > 4 > -4 > z["baseline"]
    # The alert reads request counters, pins included; a decision's sample-ratio check reads
    # the ledger's randomised assignments, where pinned traffic does not count.
    from finmlops.ledger import open_ledger

    ledger = open_ledger(service.ledger_url, create=False)
    try:
        assert ledger.assignment_counts(service.settings.experiment.name) == {}
        assert {r["assignment"] for r in ledger.predictions()} == {"pinned"}
    finally:
        ledger.close()
