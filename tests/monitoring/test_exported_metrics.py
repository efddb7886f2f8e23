"""Every series the rules and dashboards query is exported by a real running service after
inference and feedback traffic (the contract in finmlops.monitoring.metrics, end to end).

That queried names belong to the contract at all is checked by test_alert_rules.py and
test_grafana_dashboards.py; here, every queried contract series must be on a live /metrics,
and so must the ledger's own series."""

from __future__ import annotations

import time

import pytest
from monitoring_support import (
    Service,
    contract_names,
    dashboard_targets,
    metric_names,
    recorded_names,
    rule_exprs,
    traffic,
)


def scrape(service: Service) -> tuple[set[str], str]:
    from prometheus_client.parser import text_string_to_metric_families

    r = service.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(r.text))
    return {s.name for f in families for s in f.samples}, r.text


def used_names() -> set[str]:
    exprs = rule_exprs() + [e for _, _, e in dashboard_targets()]
    return set().union(*(metric_names(e) for e in exprs)) - recorded_names() - {"up"}


@pytest.mark.integration
def test_running_service_exports_every_queried_series(service: Service) -> None:
    traffic(service.client, 30, seed=1)
    bad = service.client.post("/v2/models/direction-ab/infer", json={"inputs": []})
    assert bad.status_code == 400
    deadline = time.monotonic() + 10
    while True:  # drift gauges appear once the writer has observed rows; the ledger's
        names, text = scrape(service)  # summary gauges once its outcomes were re-read
        if {"finmlops_drift_psi", "finmlops_ledger_arm_outcomes"} <= names or \
                time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = (used_names() & contract_names()) - names
    assert missing == set(), f"queried but not exported: {sorted(missing)}"
    for base in ("finmlops_request_duration_seconds", "finmlops_ledger_commit_duration_seconds"):
        assert {f"{base}_bucket", f"{base}_sum", f"{base}_count"} <= names
    assert {"finmlops_ledger_committed_total", "finmlops_ledger_healthy", "finmlops_ledger_queue",
            "finmlops_experiment_version", "finmlops_feedback_requests_total",
            "finmlops_paired_outcomes_total", "finmlops_feedback_total"} <= names
    assert 'status="400"' in text
    assert 'finmlops_model_info{' in text and 'alias="champion"' in text
    assert 'finmlops_feedback_requests_total{status="200"} 1.0' in text
    assert "finmlops_ledger_committed_total 30.0" in text  # every answered request
