"""Prometheus Operator and Grafana objects: ServiceMonitors, PrometheusRules, dashboards.

The service's rules and dashboards are written by the monitoring package's owners in
``deploy/assets/monitoring/alerts.yml`` and ``deploy/assets/grafana/*.json``; this module only
wraps them. Missing files are skipped with a note rather than failing the render. The
workflows' own alert (``workflow-alerts.yml``) reads the failure counter every workflow's exit
handler emits, which Argo's controller exports: a ServiceMonitor scrapes the controller and
keeps only this environment's finmlops series.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from finmlops.config import Settings
from finmlops.deploy._k8s import ARGO_NAMESPACE, SERVING, Manifest, meta, namespace, selector
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


ARGO_METRICS_SERVICE = "workflow-controller-metrics"
ARGO_CONTROLLER_LABELS = {"app": "workflow-controller"}
WORKFLOW_SERIES = "argo_workflows_finmlops_.*"


def argo_metrics_service() -> Manifest:
    """The controller's metrics Service, which Argo's install does not create (applied once
    per cluster, in Argo's namespace)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": ARGO_METRICS_SERVICE, "namespace": ARGO_NAMESPACE,
                         "labels": dict(ARGO_CONTROLLER_LABELS)},
            "spec": {"selector": dict(ARGO_CONTROLLER_LABELS),
                     "ports": [{"name": "metrics", "port": 9090, "targetPort": 9090,
                                "protocol": "TCP"}]}}


def workflow_monitor(settings: Settings) -> Manifest:
    """Scrape the Argo controller, keeping only the finmlops series of this environment's
    workflows (the controller serves every namespace)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": meta("argo-workflows", namespace(settings, "monitoring"), "monitoring"),
        "spec": {
            "namespaceSelector": {"matchNames": [ARGO_NAMESPACE]},
            "selector": {"matchLabels": dict(ARGO_CONTROLLER_LABELS)},
            "endpoints": [{"port": "metrics", "interval": "60s", "metricRelabelings": [
                {"sourceLabels": ["__name__"], "regex": WORKFLOW_SERIES, "action": "keep"},
                {"sourceLabels": ["workflow_namespace"],
                 "regex": namespace(settings, "pipelines"), "action": "keep"}]}],
        },
    }


def workflow_rule(settings: Settings) -> Manifest:
    """The workflows' alert rules (this package's ``monitoring/workflow-alerts.yml``)."""
    path = ASSETS / "monitoring" / "workflow-alerts.yml"
    loaded = _rules(path)
    if loaded is None:
        raise ConfigError(f"{path} is missing")
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": meta("finmlops-workflows", namespace(settings, "monitoring"),
                             "monitoring"),
            "spec": {"groups": loaded["groups"]}}


def _rules(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        loaded: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not valid YAML") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("groups"), list):
        raise ConfigError(f"{path}: expected a Prometheus rules file with 'groups'")
    return loaded


def prometheus_rule(settings: Settings, assets: Path = ASSETS) -> Manifest | None:
    """The alert and recording rules of ``monitoring/alerts.yml``; ``None`` if absent."""
    path = assets / "monitoring" / "alerts.yml"
    loaded = _rules(path)
    if loaded is None:
        return None
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
