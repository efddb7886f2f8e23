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
    kinds = {o["kind"] for o in tree.manifests()}
    assert "PrometheusRule" not in kinds
    assert len(tree.notes) == 2
    assert "prometheusrule.yaml" not in yaml.safe_load(
        tree.files()["base/kustomization.yaml"])["resources"]


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
        "base/grafana-dashboards.yaml"]
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
