"""Namespaces, default-deny NetworkPolicies with explicit allows, RBAC and the config maps.

Four namespaces (pipelines, inference, monitoring, ledger), each enforcing the ``restricted``
Pod Security Standard and denying all traffic except what is listed here.
"""

from __future__ import annotations

from typing import Any

import yaml

from finmlops.config import Settings
from finmlops.deploy._k8s import (
    ARGO_NAMESPACE,
    CONFIG_MAP,
    GATEWAY_NAMESPACE,
    HTTP_PORT,
    INFERENCE_CLIENT,
    LEDGER_CLIENT,
    MINIO_PORT,
    MLFLOW_PORT,
    POSTGRES_PORT,
    SERVING_SA,
    WORKFLOW_SA,
    Manifest,
    cluster_config,
    meta,
    namespace,
    selector,
)
from finmlops.deploy.ledger import (
    CNPG_NAMESPACE,
    CNPG_OPERATOR_POD,
    CNPG_STATUS_PORT,
    instance_pods,
)

ROLES = ("pipelines", "inference", "monitoring", "ledger")
_NS_LABEL = "kubernetes.io/metadata.name"
_WORKFLOW_POD = {"matchExpressions": [{"key": "workflows.argoproj.io/workflow",
                                       "operator": "Exists"}]}
_LEDGER_CLIENT_POD = {**_WORKFLOW_POD, "matchLabels": dict(LEDGER_CLIENT)}
"""The workflow steps that read or write the ledger (see ``workflows.LEDGER_STEPS``)."""
_INFERENCE_CLIENT_POD = {**_WORKFLOW_POD, "matchLabels": dict(INFERENCE_CLIENT)}
"""The workflow steps that call the service (see ``workflows.INFERENCE_STEPS``)."""
ARGO_CONTROLLER = {"app": "workflow-controller"}
"""The labels of Argo Workflows' controller pods (its metrics on 9090)."""
ARGO_METRICS_PORT = 9090


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
    """Default-deny ingress and egress everywhere, then only the flows the system needs.

    The ledger's PostgreSQL takes connections on 5432 from the serving pods and the workflow
    steps that hold its DSN only. Besides them, CloudNativePG needs its operator to reach
    every instance (status on 8000, PostgreSQL on 5432), the instances to reach each other
    (streaming replication, a new standby's join) and the API server (the instance manager
    reports to it).
    """
    p, i, m, lg = (namespace(settings, r) for r in ROLES)
    serving = {"matchLabels": selector("serving")}
    mlflow = {"matchLabels": selector("mlflow")}
    ledger = instance_pods()
    operator = _in_ns(CNPG_NAMESPACE, {"matchLabels": dict(CNPG_OPERATOR_POD)})
    dns = [{"to": [_in_ns("kube-system", {"matchLabels": {"k8s-app": "kube-dns"}})],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]
    # The API server is not a pod: Argo's executor, Prometheus discovery and CloudNativePG's
    # instance manager reach it by IP.
    apiserver = [{"ports": _tcp(443, 6443)}]
    same_ns: list[Manifest] = [{"from": [{"podSelector": {}}]}]
    same_ns_out: list[Manifest] = [{"to": [{"podSelector": {}}]}]
    to_ledger = [{"to": [_in_ns(lg, ledger)], "ports": _tcp(POSTGRES_PORT)}]
    out: list[Manifest] = []
    for ns in (p, i, m, lg):
        out.append(_policy("default-deny", ns, {}, ingress=[], egress=[]))
        out.append(_policy("allow-dns", ns, {}, egress=dns))
    out += [
        _policy("allow-within-namespace", p, {}, ingress=same_ns, egress=same_ns_out),
        _policy("allow-inference-to-mlflow-minio", p, {},
                ingress=[{"from": [_in_ns(i, serving)], "ports": _tcp(MLFLOW_PORT, MINIO_PORT)}]),
        _policy("allow-workflows-to-apiserver-and-sources", p, _WORKFLOW_POD, egress=apiserver),
        _policy("allow-workflows-to-ledger", p, _LEDGER_CLIENT_POD, egress=to_ledger),
        _policy("allow-workflows-to-serving", p, _INFERENCE_CLIENT_POD,
                egress=[{"to": [_in_ns(i, serving)], "ports": _tcp(HTTP_PORT)}]),
        _policy("allow-mlflow-to-postgres", p, mlflow, egress=[{"ports": _tcp(POSTGRES_PORT)}]),
        _policy("allow-gateway-to-serving", i, serving,
                ingress=[{"from": [_in_ns(GATEWAY_NAMESPACE)], "ports": _tcp(HTTP_PORT)}]),
        _policy("allow-monitoring-to-serving", i, serving,
                ingress=[{"from": [_in_ns(m)], "ports": _tcp(HTTP_PORT)}]),
        _policy("allow-workflows-to-serving", i, serving,
                ingress=[{"from": [_in_ns(p, _INFERENCE_CLIENT_POD)], "ports": _tcp(HTTP_PORT)}]),
        _policy("allow-serving-to-mlflow-minio", i, serving,
                egress=[{"to": [_in_ns(p)], "ports": _tcp(MLFLOW_PORT, MINIO_PORT)}]),
        _policy("allow-serving-to-ledger", i, serving, egress=to_ledger),
        _policy("allow-within-namespace", m, {}, ingress=same_ns, egress=same_ns_out),
        _policy("allow-scrape-serving", m, {},
                egress=[{"to": [_in_ns(i, serving)], "ports": _tcp(HTTP_PORT)}]),
        _policy("allow-monitoring-to-apiserver", m, {}, egress=apiserver),
        _policy("allow-scrape-argo-controller", m, {},
                egress=[{"to": [_in_ns(ARGO_NAMESPACE, {"matchLabels": dict(ARGO_CONTROLLER)})],
                         "ports": _tcp(ARGO_METRICS_PORT)}]),
        _policy("allow-clients-to-ledger", lg, ledger,
                ingress=[{"from": [_in_ns(i, serving), _in_ns(p, _LEDGER_CLIENT_POD)],
                          "ports": _tcp(POSTGRES_PORT)}]),
        _policy("allow-operator-to-ledger", lg, ledger,
                ingress=[{"from": [operator], "ports": _tcp(CNPG_STATUS_PORT, POSTGRES_PORT)}]),
        _policy("allow-ledger-instances", lg, ledger,
                ingress=[{"from": [{"podSelector": ledger}],
                          "ports": _tcp(POSTGRES_PORT, CNPG_STATUS_PORT)}],
                egress=[{"to": [{"podSelector": ledger}],
                         "ports": _tcp(POSTGRES_PORT, CNPG_STATUS_PORT)}]),
        _policy("allow-ledger-to-apiserver", lg, ledger, egress=apiserver),
    ]
    return out


def rbac(settings: Settings) -> list[Manifest]:
    """Service accounts. The workflow one may report step results (Argo's executor) and
    create Workflows (the daily job's retraining on drift), nothing else."""
    p, i = namespace(settings, "pipelines"), namespace(settings, "inference")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": meta(WORKFLOW_SA, p, "pipelines")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": meta(WORKFLOW_SA, p, "pipelines"),
         "rules": [{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"],
                    "verbs": ["create", "patch"]},
                   {"apiGroups": ["argoproj.io"], "resources": ["workflows"],
                    "verbs": ["create", "get"]}]},
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
