"""PrometheusRule and Grafana dashboards wrap the monitoring assets, or are skipped cleanly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from finmlops.deploy import render_kubernetes
from finmlops.deploy.observability import ASSETS, dashboards, prometheus_rule
from finmlops.errors import ConfigError


def test_missing_assets_are_skipped_with_notes(tmp_path: Path, make_settings: Any) -> None:
    tree = render_kubernetes(make_settings(), assets=tmp_path)
    rules = [o["metadata"]["name"] for o in tree.manifests() if o["kind"] == "PrometheusRule"]
    # The service's rules are skipped; the workflows' own alert is this package's.
    assert set(rules) == {"finmlops-workflows"}
    assert len(tree.notes) == 2
    resources = yaml.safe_load(
        tree.files()["environments/prod/kustomization.yaml"])["resources"]
    assert "prometheusrule.yaml" in resources and "grafana-dashboards.yaml" not in resources


def test_dashboards_become_one_labelled_configmap(tmp_path: Path, make_settings: Any,
                                                  is_core: Any) -> None:
    (tmp_path / "grafana").mkdir()
    board = {"title": "finmlops A/B", "schemaVersion": 39, "panels": []}
    (tmp_path / "grafana" / "ab.json").write_text(json.dumps(board, indent=2) + "\n")
    (tmp_path / "grafana" / "service.json").write_text(json.dumps({"title": "svc"}))
    cm = dashboards(make_settings(), tmp_path)
    assert cm is not None
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "finmlops-monitoring"
    assert sorted(cm["data"]) == ["ab.json", "service.json"]
    assert json.loads(cm["data"]["ab.json"]) == board
    # The YAML keeps the JSON byte for byte (a literal block), so the round trip is exact.
    text = render_kubernetes(make_settings(), assets=tmp_path).files()[
        "environments/prod/grafana-dashboards.yaml"]
    (loaded,) = [d for d in yaml.safe_load_all(text) if d]
    assert loaded["data"]["ab.json"] == (tmp_path / "grafana" / "ab.json").read_text()


def test_broken_assets_are_config_errors(tmp_path: Path, make_settings: Any) -> None:
    (tmp_path / "grafana").mkdir()
    (tmp_path / "grafana" / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match=r"bad\.json"):
        dashboards(make_settings(), tmp_path)
    (tmp_path / "monitoring").mkdir()
    (tmp_path / "monitoring" / "alerts.yml").write_text("just: a mapping\n")
    with pytest.raises(ConfigError, match="groups"):
        prometheus_rule(make_settings(), tmp_path)


@pytest.mark.skipif(not (ASSETS / "monitoring" / "alerts.yml").is_file(),
                    reason="the monitoring engineer's alerts.yml is not there yet")
def test_the_real_alert_rules_render_and_validate(crd_validate: Any,
                                                  make_settings: Any) -> None:
    rule = prometheus_rule(make_settings())
    assert rule is not None
    source = yaml.safe_load((ASSETS / "monitoring" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    assert crd_validate(rule) == []


def test_the_workflow_alert_fires_on_failures_and_is_rendered_per_environment(
        rendered_tree: Any) -> None:
    """promtool checks workflow-alerts.yml and runs its unit tests; the rule reads the
    counter every exit handler emits (``argo_workflows_`` + FAILURE_METRIC)."""
    import shutil
    import subprocess

    from finmlops.deploy.workflows import FAILURE_METRIC

    promtool = shutil.which("promtool")
    if promtool is None:
        import pytest

        pytest.skip("promtool is not installed (Debian package prometheus)")
    folder = ASSETS / "monitoring"
    for args in (["check", "rules", "workflow-alerts.yml"],
                 ["test", "rules", "workflow-alerts_test.yml"]):
        proc = subprocess.run([promtool, *args], cwd=folder, capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
             for o in rendered_tree.manifests() if o["kind"] == "PrometheusRule"}
    for ns in ("finmlops-monitoring", "finmlops-dev-monitoring"):
        (rule,) = rules[(ns, "finmlops-workflows")]["spec"]["groups"][0]["rules"]
        assert f"argo_workflows_{FAILURE_METRIC}(_total)?" in rule["expr"]
    monitors = [o for o in rendered_tree.manifests() if o["kind"] == "ServiceMonitor"
                and o["metadata"]["name"] == "argo-workflows"]
    kept = {o["metadata"]["namespace"]: o["spec"]["endpoints"][0]["metricRelabelings"][1]
            ["regex"] for o in monitors}
    # Each environment's Prometheus keeps only its own workflows' series.
    assert kept == {"finmlops-monitoring": "finmlops-pipelines",
                    "finmlops-dev-monitoring": "finmlops-dev-pipelines"}
