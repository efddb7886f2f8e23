"""The inference service: Deployment, Service, autoscaler, disruption budget, HTTPRoute.

The serving pods run ``finmlops serve`` from the serving image with one worker each (the
autoscaler scales pods, so the metrics need no multiprocess mode), load the registered models
from MLflow (artifacts in S3/MinIO) into an emptyDir, and keep no state of their own: every
prediction is committed to the shared ledger (PostgreSQL) before it is answered. A rollout,
an eviction or a scale-down therefore loses nothing but the pod: ``preStop`` keeps it
answering until the endpoints change has spread, then SIGTERM drains it within the grace
period derived from the request and ledger timeouts.
"""

from __future__ import annotations

import math

from finmlops.config import Settings
from finmlops.deploy._k8s import (
    GATEWAY_NAMESPACE,
    HTTP_PORT,
    SERVING,
    SERVING_SA,
    TOKEN_KEY,
    Manifest,
    app_env,
    app_volume_mounts,
    app_volumes,
    cluster_config,
    config_hash,
    container_security_context,
    ledger_env,
    meta,
    namespace,
    pod_security_context,
    resources,
    secret_env,
    selector,
)
from finmlops.deploy.ledger import MAX_SURGE
from finmlops.errors import ConfigError

SERVING_RESOURCES = resources("250m", "512Mi", "1", "1Gi")
MODELS_SIZE = "1Gi"
"""The pod's ``FINMLOPS_HOME`` emptyDir: only the models downloaded from MLflow at start."""
SERVER_GRACE_EXTRA_S = 5
"""``finmlops serve`` lets in-flight requests finish for ``request_timeout_s`` plus this."""
DRAIN_MARGIN_S = 5
"""Headroom for the process to exit after its last commit."""

PUBLIC_PATHS: tuple[tuple[str, str], ...] = (
    ("PathPrefix", "/v2/models"),
    ("PathPrefix", "/v2/health"),
    ("Exact", "/v2"),
    ("Exact", "/v2/repository/index"),
)
"""What the Gateway routes to the service: inference and model metadata, health, the V2
server metadata and the model repository index (inference scope, what V2 clients list).
``/v2/feedback``, ``/admin/*``, ``/metrics`` and ``/openapi.json`` stay inside the cluster."""


def token_env(settings: Settings) -> list[Manifest]:
    """One Secret per token scope (``serve.tokens.inference|feedback|admin``)."""
    d = settings.deploy
    return [secret_env("FINMLOPS_INFERENCE_TOKEN", d.inference_token_secret, TOKEN_KEY),
            secret_env("FINMLOPS_FEEDBACK_TOKEN", d.feedback_token_secret, TOKEN_KEY),
            secret_env("FINMLOPS_ADMIN_TOKEN", d.admin_token_secret, TOKEN_KEY)]


def termination_grace_s(settings: Settings) -> int:
    """The longest a pod can take from deletion to exit: the ``preStop`` sleep, the server's
    graceful shutdown (in-flight requests, each waiting for its commit), the final commit of
    what is still queued (bounded by the ledger's write timeout) and a margin."""
    return (settings.deploy.prestop_sleep_s
            + math.ceil(settings.serve.request_timeout_s) + SERVER_GRACE_EXTRA_S
            + math.ceil(settings.ledger.write_timeout_s) + DRAIN_MARGIN_S)


def _probe(path: str, period: int, failures: int) -> Manifest:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "timeoutSeconds": 2, "failureThreshold": failures}


def deployment(settings: Settings) -> Manifest:
    """Replicas are left to the HorizontalPodAutoscaler (GitOps would fight it otherwise)."""
    ns = namespace(settings, "inference")
    container: Manifest = {
        "name": "serving",
        "image": settings.deploy.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["finmlops", "serve"],
        "env": [
            *app_env(settings),
            {"name": "FINMLOPS_SERVE__HOST", "value": "0.0.0.0"},  # noqa: S104 - in a pod
            {"name": "FINMLOPS_SERVE__PORT", "value": str(HTTP_PORT)},
            {"name": "FINMLOPS_SERVE__WORKERS", "value": "1"},
            ledger_env(settings),
            *token_env(settings),
        ],
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "lifecycle": {"preStop": {"sleep": {"seconds": settings.deploy.prestop_sleep_s}}},
        "startupProbe": _probe("/v2/health/live", 5, 24),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "readinessProbe": _probe("/v2/health/ready", 5, 2),
        "resources": SERVING_RESOURCES,
        "securityContext": container_security_context(),
        "volumeMounts": app_volume_mounts(),
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta(SERVING, ns, "serving"),
        "spec": {
            "selector": {"matchLabels": selector("serving")},
            "revisionHistoryLimit": 5,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": MAX_SURGE, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": meta(SERVING, None, "serving")["labels"],
                    "annotations": {
                        "finmlops.io/config-hash": config_hash(cluster_config(settings))},
                },
                "spec": {
                    "serviceAccountName": SERVING_SA,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "terminationGracePeriodSeconds": termination_grace_s(settings),
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector("serving")}}],
                    "containers": [container],
                    "volumes": app_volumes(MODELS_SIZE),
                },
            },
        },
    }


def service(settings: Settings) -> Manifest:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": meta(SERVING, namespace(settings, "inference"), "serving"),
            "spec": {"type": "ClusterIP", "selector": selector("serving"),
                     "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http",
                                "protocol": "TCP"}]}}


def autoscaler(settings: Settings) -> Manifest:
    d = settings.deploy
    if d.max_replicas < d.replicas:
        raise ConfigError(
            f"deploy.max_replicas ({d.max_replicas}) is below deploy.replicas ({d.replicas})")
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": meta(SERVING, namespace(settings, "inference"), "serving"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVING},
            "minReplicas": d.replicas,
            "maxReplicas": d.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def disruption_budget(settings: Settings) -> Manifest:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": meta(SERVING, namespace(settings, "inference"), "serving"),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector("serving")}}}


def http_route(settings: Settings) -> Manifest:
    """Only :data:`PUBLIC_PATHS` are public. CORS is enforced by the app's allowlist and,
    where the Gateway implementation supports it, the CORS filter."""
    rule: Manifest = {
        "matches": [{"path": {"type": kind, "value": value}} for kind, value in PUBLIC_PATHS],
        "backendRefs": [{"name": SERVING, "port": HTTP_PORT}],
        "timeouts": {"request": f"{math.ceil(settings.serve.request_timeout_s) + 5}s"},
    }
    origins = settings.serve.cors_origins
    if origins:
        rule["filters"] = [{"type": "CORS", "cors": {
            "allowOrigins": sorted(origins),
            "allowMethods": ["GET", "OPTIONS", "POST"],
            "allowHeaders": ["Authorization", "Content-Type"],
            "maxAge": 600}}]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": meta(SERVING, namespace(settings, "inference"), "serving"),
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "name": settings.deploy.gateway, "namespace": GATEWAY_NAMESPACE}],
            "hostnames": [settings.deploy.hostname],
            "rules": [rule],
        },
    }


def serving_objects(settings: Settings) -> list[Manifest]:
    return [deployment(settings), service(settings), autoscaler(settings),
            disruption_budget(settings)]
