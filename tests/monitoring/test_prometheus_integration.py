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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from monitoring_support import RULES, Service, running_service, traffic

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


@contextmanager
def running_prometheus(binary: str, service: Service, where: Path) -> Iterator[Prometheus]:
    """Prometheus 2.x on a free loopback port scraping ``service`` every second, with our
    rules, its configuration, log and storage in ``where``."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "finmlops", "metrics_path": "/metrics",
                            "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}]}],
    }
    cfg = where / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = (where / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg}", f"--storage.tsdb.path={where / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
         "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                output = (where / "prometheus.log").read_text()
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


@pytest.fixture
def prometheus(prometheus_bin: str, service: Service, tmp_path: Path) -> Iterator[Prometheus]:
    """Prometheus scraping ``service`` every second, with our rules."""
    with running_prometheus(prometheus_bin, service, tmp_path) as prom:
        yield prom


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


@dataclass(frozen=True)
class Scraped:
    """What a real Prometheus held once it had scraped the feedback of 80 requests to a
    real service and evaluated our rules, beside what the service's ledger gives."""

    local: dict[str, dict[str, float]]
    """Per served arm, from the ledger (:func:`ledger_stats`)."""
    pairs: dict[str, float]
    """The paired sums, from the ledger."""
    n: dict[str, float]
    hits: dict[str, float]
    ret: dict[str, float]
    sq: dict[str, float]
    served: dict[str, float]
    paired_n: dict[str, float]
    wins: dict[str, float]
    dsum: dict[str, float]
    dsq: dict[str, float]
    mean: dict[str, float]
    hit_rate: dict[str, float]
    champion: list[dict[str, Any]]
    z: dict[str, float]
    weights: dict[str, float]
    alert_groups: list[dict[str, Any]]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory, prometheus_bin: str,
            models: dict[str, Path]) -> Scraped:
    where = tmp_path_factory.mktemp("scraped")
    with running_service(where, models) as service, \
            running_prometheus(prometheus_bin, service, where) as prometheus:
        prometheus.wait_for(
            "the target to be up",
            lambda: prometheus.by('up{job="finmlops"}', "job") == {"finmlops": 1.0})
        traffic(service.client, 40, seed=3)
        traffic(service.client, 40, seed=4)
        local, pairs = ledger_stats(service)
        want_n = {arm: s["n"] for arm, s in local.items()}

        def by_arm(metric: str) -> dict[str, float]:
            return prometheus.by(f"sum by (arm) ({metric})", "arm")

        prometheus.wait_for("the feedback counters to be scraped",
                            lambda: by_arm("finmlops_feedback_total") == want_n)
        counters = (by_arm("finmlops_feedback_total"), by_arm("finmlops_feedback_hits_total"),
                    by_arm("finmlops_feedback_return_sum"),
                    by_arm("finmlops_feedback_return_sq_sum"),
                    by_arm("finmlops_predictions_total"),
                    by_arm("finmlops_paired_outcomes_total"),
                    prometheus.by("sum by (winner) (finmlops_paired_discordant_total)",
                                  "winner"),
                    by_arm("finmlops_paired_return_diff_sum"),
                    by_arm("finmlops_paired_return_diff_sq_sum"))
        prometheus.wait_for(
            "the recording rules",
            lambda: prometheus.by("finmlops:arm_feedback:count", "arm") == want_n)
        alerts = prometheus.client.get("/api/v1/rules", params={"type": "alert"}).json()
        return Scraped(
            local, pairs, *counters,
            mean=prometheus.by("finmlops:arm_net_return:mean", "arm"),
            hit_rate=prometheus.by("finmlops:arm_hit_rate:ratio", "arm"),
            champion=prometheus.query("finmlops:experiment_champion:info"),
            z=prometheus.by("finmlops:arm_hit_rate:z_vs_champion", "arm"),
            weights=prometheus.by("finmlops:experiment_weight:ratio", "arm"),
            alert_groups=alerts["data"]["groups"])


def test_both_arms_served_part_of_the_traffic(scraped: Scraped) -> None:
    assert set(scraped.local) == {"baseline", "enhanced"}, (
        "both arms served (70/30 split, 80 requests)")


def test_every_request_is_served_once_and_paired_by_shadow_scoring(scraped: Scraped) -> None:
    assert sum(s["n"] for s in scraped.local.values()) == 80 and scraped.pairs["n"] == 80


def test_the_served_rows_earn_net_returns(scraped: Scraped) -> None:
    """Else the return sums below would compare zeros."""
    assert any(s["sum"] != 0 for s in scraped.local.values())


@pytest.mark.parametrize("arm", ["baseline", "enhanced"])
def test_the_feedback_count_per_arm_equals_the_ledgers(scraped: Scraped, arm: str) -> None:
    assert scraped.n[arm] == scraped.local[arm]["n"]


@pytest.mark.parametrize("arm", ["baseline", "enhanced"])
def test_the_hits_per_arm_equal_the_ledgers(scraped: Scraped, arm: str) -> None:
    assert scraped.hits[arm] == scraped.local[arm]["hits"]


@pytest.mark.parametrize("arm", ["baseline", "enhanced"])
def test_the_net_return_sums_per_arm_equal_the_ledgers(scraped: Scraped, arm: str) -> None:
    local = scraped.local[arm]
    assert close(scraped.ret[arm], local["sum"]) and close(scraped.sq[arm], local["sq"])


@pytest.mark.parametrize("arm", ["baseline", "enhanced"])
def test_the_predictions_served_per_arm_equal_the_ledgers(scraped: Scraped, arm: str) -> None:
    assert scraped.served[arm] == scraped.local[arm]["served"]


def test_paired_outcomes_are_counted_for_the_challenger_only(scraped: Scraped) -> None:
    assert scraped.paired_n == {"enhanced": scraped.pairs["n"]}


def test_the_paired_discordant_wins_equal_the_ledgers(scraped: Scraped) -> None:
    pairs = scraped.pairs
    assert scraped.wins == {k: float(pairs[k]) for k in ("arm", "reference") if pairs[k]}


def test_the_paired_return_difference_sums_equal_the_ledgers(scraped: Scraped) -> None:
    assert close(scraped.dsum["enhanced"], scraped.pairs["sum"])
    assert close(scraped.dsq["enhanced"], scraped.pairs["sq"])


@pytest.mark.parametrize("arm", ["baseline", "enhanced"])
def test_the_recorded_mean_net_return_per_arm_equals_the_ledgers(scraped: Scraped,
                                                                 arm: str) -> None:
    local = scraped.local[arm]
    assert math.isclose(scraped.mean[arm], local["sum"] / local["n"], rel_tol=1e-9,
                        abs_tol=1e-12)


@pytest.mark.parametrize("arm", ["baseline", "enhanced"])
def test_the_recorded_hit_rate_per_arm_equals_the_ledgers(scraped: Scraped, arm: str) -> None:
    local = scraped.local[arm]
    assert math.isclose(scraped.hit_rate[arm], local["hits"] / local["n"], rel_tol=1e-12)


def test_the_recorded_champion_is_the_baseline(scraped: Scraped) -> None:
    assert [c["metric"]["arm"] for c in scraped.champion] == ["baseline"]


def test_the_hit_rate_z_is_zero_for_the_champion_and_finite_for_the_challenger(
        scraped: Scraped) -> None:
    assert scraped.z["baseline"] == 0.0 and math.isfinite(scraped.z["enhanced"])


def test_the_recorded_weights_are_the_experiments(scraped: Scraped) -> None:
    assert scraped.weights == {"baseline": 0.7, "enhanced": 0.3}


def test_every_alert_group_is_loaded(scraped: Scraped) -> None:
    assert {g["name"] for g in scraped.alert_groups} >= {
        "finmlops.service", "finmlops.experiment", "finmlops.data"}


def test_every_alert_rule_evaluates(scraped: Scraped) -> None:
    health = {r["name"]: r["health"] for g in scraped.alert_groups for r in g["rules"]}
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
