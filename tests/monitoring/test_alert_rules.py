"""The Prometheus rules: promtool accepts them, every alert is unit-tested firing and silent,
and they only query series the metric contract defines."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml
from monitoring_support import (
    RULE_TESTS,
    RULES,
    contract_names,
    load_rules,
    metric_names,
    recorded_names,
    rule_exprs,
)


def alerts() -> list[dict[str, Any]]:
    return [r for g in load_rules()["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules(promtool: str) -> None:
    res = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_rule_unit_tests(promtool: str) -> None:
    res = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_is_complete(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Finmlops")
    assert rule.get("for"), "every alert waits a `for:` window"
    assert rule["labels"]["severity"] in {"critical", "warning"}
    for key in ("summary", "description", "runbook"):
        assert len(rule["annotations"].get(key, "")) > 20, f"annotation {key}"


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    fired: set[str] = set()
    silent: set[str] = set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else silent).add(case["alertname"])
            for exp in case.get("exp_alerts") or []:
                assert set(exp["exp_annotations"]) == {"summary", "description", "runbook"}
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested silent"


def test_rules_query_only_contract_series() -> None:
    exported = contract_names() | {"up"}
    recorded = recorded_names()
    used = set().union(*(metric_names(e) for e in rule_exprs()))
    assert used, "no series found in the rules"
    unknown = {n for n in used if n not in exported and n not in recorded}
    assert unknown == set()
    # recording rules are all used by an alert, a dashboard or another rule
    assert {"finmlops:experiment_srm:z1h", "finmlops:arm_hit_rate:z_vs_champion"} <= used


def test_metric_name_extraction() -> None:
    expr = ('sum by (arm) (rate(finmlops_requests_total{job=~"finmlops_x.*"}[5m])) '
            '/ finmlops:arm_feedback:count and up == 0')
    assert metric_names(expr) == {"finmlops_requests_total", "finmlops:arm_feedback:count", "up"}


def test_the_ledger_has_its_alerts() -> None:
    """Refusals, an unhealthy ledger, a growing queue and lost shadow scores each page."""
    by_name = {a["alert"]: a for a in alerts()}
    expected = {"FinmlopsLedgerRefusals": "finmlops_ledger_refused_total",
                "FinmlopsLedgerUnhealthy": "finmlops_ledger_healthy",
                "FinmlopsLedgerQueueGrowing": "finmlops_ledger_queue",
                "FinmlopsShadowScoresLost": "finmlops_shadow_failures_total",
                "FinmlopsExperimentVersionSkew": "finmlops_experiment_version"}
    for alert, series in expected.items():
        assert series in metric_names(by_name[alert]["expr"]), alert
    assert by_name["FinmlopsLedgerRefusals"]["labels"]["severity"] == "critical"
