"""Grafana dashboards: importable JSON, a datasource variable, and PromQL that parses and
queries only series the service exports or the rules record."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring_support import (
    DASHBOARDS,
    contract_names,
    dashboard_targets,
    metric_names,
    recorded_names,
)

DS_REF = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def boards() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text(encoding="utf-8"))) for p in DASHBOARDS]


def concrete(expr: str) -> str:
    """The expression with Grafana's variables replaced, as Prometheus would receive it."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(\w+)\}?", "x", expr)


def test_there_are_the_three_dashboards() -> None:
    uids = {b["uid"] for _, b in boards()}
    assert uids == {"finmlops-experiment", "finmlops-service", "finmlops-data"}


@pytest.mark.parametrize(("name", "board"), boards(), ids=[p.name for p in DASHBOARDS])
def test_dashboard_structure(name: str, board: dict[str, Any]) -> None:
    assert 36 <= board["schemaVersion"] <= 41
    assert board["title"].startswith("finmlops / ")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert any(i["name"] == "DS_PROMETHEUS" for i in board["__inputs"])
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["description"], panel["title"]
        assert panel["datasource"] == DS_REF
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == DS_REF
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == DS_REF


def test_experiment_dashboard_is_templated_by_experiment() -> None:
    board = dict(boards())["finmlops-experiment.json"]
    assert "experiment" in {v["name"] for v in board["templating"]["list"]}
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert all('experiment="$experiment"' in e for e in exprs)
    titles = {p["title"] for p in board["panels"]}
    assert {"Served share vs target weight", "Latency quantiles per arm",
            "Hit rate per arm (95% interval)",
            "Cumulative net return per arm (95% interval)"} <= titles


def test_every_expression_parses(promtool: str, tmp_path: Path) -> None:
    """promtool parses PromQL when it checks rules: one recording rule per panel query."""
    targets = dashboard_targets()
    rules = [{"record": f"dashboard:query_{i}", "expr": concrete(expr)}
             for i, (_, _, expr) in enumerate(targets) if not expr.startswith("label_values")]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    res = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(rules)} rules found" in res.stdout


def test_dashboards_query_only_exported_or_recorded_series() -> None:
    known = contract_names() | recorded_names() | {"up"}
    for board, title, expr in dashboard_targets():
        names = metric_names(expr)
        assert names, f"{board}: {title}: no series in {expr}"
        assert names <= known, f"{board}: {title}: unknown {names - known}"


def test_service_dashboard_shows_the_ledger() -> None:
    """Commits, commit latency, refusals by reason, queue, health and experiment version."""
    board = dict(boards())["finmlops-service.json"]
    exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in board["panels"]
             if p["type"] != "row"}
    names = set().union(*(metric_names(e) for es in exprs.values() for e in es))
    assert {"finmlops_ledger_committed_total", "finmlops_ledger_commit_duration_seconds_bucket",
            "finmlops_ledger_refused_total", "finmlops_ledger_queue", "finmlops_ledger_healthy",
            "finmlops_experiment_version", "finmlops_shadow_failures_total"} <= names
    (refusals,) = exprs["Refusals by reason"]
    assert "by (operation, reason)" in refusals
