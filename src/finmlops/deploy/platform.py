"""Namespaces, default-deny NetworkPolicies with explicit allows, RBAC and the config maps.

Three namespaces (pipelines, inference, monitoring), each enforcing the ``restricted`` Pod
Security Standard and denying all traffic except what is listed here.
"""

from __future__ import annotations

from typing import Any

import yaml

from finmlops.config import Settings
from finmlops.deploy._k8s import (
    CONFIG_MAP,
    GATEWAY_NAMESPACE,
    HTTP_PORT,
    MINIO_PORT,
    MLFLOW_PORT,
    PROMETHEUS_POD,
    PROMETHEUS_PORT,
    SERVING_SA,
    WORKFLOW_SA,
    Manifest,
    cluster_config,
    meta,
    namespace,
    selector,
)

ROLES = ("pipelines", "inference", "monitoring")
_NS_LABEL = "kubernetes.io/metadata.name"
_WORKFLOW_POD = {"matchExpressions": [{"key": "workflows.argoproj.io/workflow",
                                       "operator": "Exists"}]}


def namespaces(settings: Settings) -> list[Manifest]:
    psa: dict[str, str] = {}
    for mode in ("enforce", "audit", "warn"):
        psa[f"pod-security.kubernetes.io/{mode}"] = "restricted"
        psa[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
    out = []
    for role in ROLES:
        m = meta(namespace(settings, role), None, role)
        m["labels"].update(psa)
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": m})
    return out


def _policy(name: str, ns: str, pods: Manifest, *, ingress: list[Manifest] | None = None,
            egress: list[Manifest] | None = None) -> Manifest:
    spec: dict[str, Any] = {"podSelector": pods, "policyTypes": []}
    if ingress is not None:
        spec["policyTypes"].append("Ingress")
        spec["ingress"] = ingress
    if egress is not None:
        spec["policyTypes"].append("Egress")
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta(name, ns, "network"), "spec": spec}


def _in_ns(ns: str, pods: Manifest | None = None) -> Manifest:
    peer: Manifest = {"namespaceSelector": {"matchLabels": {_NS_LABEL: ns}}}
    if pods is not None:
        peer["podSelector"] = pods
    return peer


def _tcp(*ports: int) -> list[Manifest]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def network_policies(settings: Settings) -> list[Manifest]:
    """Default-deny ingress and egress everywhere, then only the flows the system needs."""
    p, i, m = (namespace(settings, r) for r in ROLES)
    serving = {"matchLabels": selector("serving")}
    mlflow = {"matchLabels": selector("mlflow")}
    prometheus = {"matchLabels": dict(PROMETHEUS_POD)}
    dns = [{"to": [_in_ns("kube-system", {"matchLabels": {"k8s-app": "kube-dns"}})],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]
    # The API server is not a pod: Argo's executor and Prometheus discovery reach it by IP.
    apiserver = [{"ports": _tcp(443, 6443)}]
    same_ns: list[Manifest] = [{"from": [{"podSelector": {}}]}]
    same_ns_out: list[Manifest] = [{"to": [{"podSelector": {}}]}]
    out: list[Manifest] = []
    for ns in (p, i, m):
        out.append(_policy("default-deny", ns, {}, ingress=[], egress=[]))
        out.append(_policy("allow-dns", ns, {}, egress=dns))
    out += [
        _policy("allow-within-namespace", p, {}, ingress=same_ns, egress=same_ns_out),
        _policy("allow-inference-to-mlflow-minio", p, {},
                ingress=[{"from": [_in_ns(i, serving)], "ports": _tcp(MLFLOW_PORT, MINIO_PORT)}]),
        _policy("allow-workflows-to-apiserver-and-sources", p, _WORKFLOW_POD, egress=apiserver),
        _policy("allow-workflows-to-inference", p, _WORKFLOW_POD,
                egress=[{"to": [_in_ns(i, serving)], "ports": _tcp(HTTP_PORT)}]),
        _policy("allow-workflows-to-prometheus", p, _WORKFLOW_POD,
                egress=[{"to": [_in_ns(m, prometheus)], "ports": _tcp(PROMETHEUS_PORT)}]),
        _policy("allow-mlflow-to-postgres", p, mlflow, egress=[{"ports": _tcp(5432)}]),
        _policy("allow-gateway-to-serving", i, serving,
                ingress=[{"from": [_in_ns(GATEWAY_NAMESPACE)], "ports": _tcp(HTTP_PORT)}]),
        _policy("allow-monitoring-to-serving", i, serving,
                ingress=[{"from": [_in_ns(m)], "ports": _tcp(HTTP_PORT)}]),
        _policy("allow-pipelines-to-serving", i, serving,
                ingress=[{"from": [_in_ns(p, _WORKFLOW_POD)],
                          "ports": _tcp(HTTP_PORT)}]),
        _policy("allow-serving-to-mlflow-minio", i, serving,
                egress=[{"to": [_in_ns(p)], "ports": _tcp(MLFLOW_PORT, MINIO_PORT)}]),
        _policy("allow-within-namespace", m, {}, ingress=same_ns, egress=same_ns_out),
        _policy("allow-scrape-serving", m, {},
                egress=[{"to": [_in_ns(i, serving)], "ports": _tcp(HTTP_PORT)}]),
        _policy("allow-monitoring-to-apiserver", m, {}, egress=apiserver),
        _policy("allow-workflows-to-prometheus", m, prometheus,
                ingress=[{"from": [_in_ns(p, _WORKFLOW_POD)],
                          "ports": _tcp(PROMETHEUS_PORT)}]),
    ]
    return out


def rbac(settings: Settings) -> list[Manifest]:
    """Service accounts; the workflow one may only report step results (Argo's executor)."""
    p, i = namespace(settings, "pipelines"), namespace(settings, "inference")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": meta(WORKFLOW_SA, p, "pipelines")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": meta(WORKFLOW_SA, p, "pipelines"),
         "rules": [{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"],
                    "verbs": ["create", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": meta(WORKFLOW_SA, p, "pipelines"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": WORKFLOW_SA},
         "subjects": [{"kind": "ServiceAccount", "name": WORKFLOW_SA, "namespace": p}]},
        {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False,
         "metadata": meta(SERVING_SA, i, "serving")},
        {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False,
         "metadata": meta("mlflow", p, "mlflow")},
    ]


def config_maps(settings: Settings) -> list[Manifest]:
    """The same ``finmlops.yaml`` for the workflow steps and the serving pods."""
    text = yaml.safe_dump(cluster_config(settings), sort_keys=True, default_flow_style=False)
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": meta(CONFIG_MAP, namespace(settings, role), "config"),
             "data": {"finmlops.yaml": text}}
            for role in ("pipelines", "inference")]
