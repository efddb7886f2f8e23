"""Prometheus Operator and Grafana objects: ServiceMonitor, PrometheusRule, dashboards.

The rules and dashboards themselves are written by the monitoring package's owners in
``deploy/assets/monitoring/alerts.yml`` and ``deploy/assets/grafana/*.json``; this module only
wraps them. Missing files are skipped with a note rather than failing the render.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from finmlops.config import Settings
from finmlops.deploy._k8s import SERVING, Manifest, meta, namespace, selector
from finmlops.errors import ConfigError

ASSETS = Path(__file__).resolve().parent / "assets"
DASHBOARD_LABEL = "grafana_dashboard"


def service_monitor(settings: Settings) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": meta(SERVING, namespace(settings, "monitoring"), "monitoring"),
        "spec": {
            "namespaceSelector": {"matchNames": [namespace(settings, "inference")]},
            "selector": {"matchLabels": selector("serving")},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s",
                           "scrapeTimeout": "10s"}],
        },
    }


def prometheus_rule(settings: Settings, assets: Path = ASSETS) -> Manifest | None:
    """The alert and recording rules of ``monitoring/alerts.yml``; ``None`` if absent."""
    path = assets / "monitoring" / "alerts.yml"
    if not path.is_file():
        return None
    try:
        loaded: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not valid YAML") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("groups"), list):
        raise ConfigError(f"{path}: expected a Prometheus rules file with 'groups'")
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": meta("finmlops", namespace(settings, "monitoring"), "monitoring"),
            "spec": {"groups": loaded["groups"]}}


def dashboards(settings: Settings, assets: Path = ASSETS) -> Manifest | None:
    """One ConfigMap holding every dashboard JSON, picked up by Grafana's sidecar through the
    ``grafana_dashboard: "1"`` label; ``None`` when there are no dashboards."""
    files = sorted((assets / "grafana").glob("*.json"))
    if not files:
        return None
    data: dict[str, str] = {}
    for f in files:
        text = f.read_text(encoding="utf-8")
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{f}: not valid JSON (line {exc.lineno})") from None
        data[f.name] = text
    m = meta("finmlops-dashboards", namespace(settings, "monitoring"), "monitoring",
             annotations={"grafana_folder": "finmlops"})
    m["labels"][DASHBOARD_LABEL] = "1"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": data}
