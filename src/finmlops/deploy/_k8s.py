"""Shared pieces of every manifest: names, labels, the restricted security context, env wiring.

Kept in one place so the security rules the tests assert (non-root, no privilege escalation,
all capabilities dropped, limits everywhere) are written once and reused by every pod.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from finmlops.config import Settings

Manifest = dict[str, Any]

UID = 10001
"""The image's numeric non-root user (see the Dockerfile)."""
HOME = "/data"
CONFIG_DIR = "/etc/finmlops"
CONFIG_MAP = "finmlops-config"
SERVING = "finmlops-serving"
WORKFLOW_SA = "finmlops-workflow"
SERVING_SA = "finmlops-serving"
HTTP_PORT = 8080
MLFLOW_PORT = 5000
MINIO_PORT = 9000
POSTGRES_PORT = 5432
GATEWAY_NAMESPACE = "envoy-gateway-system"
"""Where the Gateway's data-plane pods run (Envoy Gateway's default); not yet a setting."""
ARGOCD_NAMESPACE = "argocd"
ARGO_NAMESPACE = "argo"
"""Where the Argo Workflows controller runs (its metrics Service is scraped from there)."""
GITOPS_PATH = "deploy/k8s"
"""Where the rendered tree is committed in ``deploy.git_repo``."""
GITOPS_REVISION = "main"
OUTPUTS_DIR = "/tmp/outputs"  # noqa: S108 - an emptyDir, see app_volumes
"""Where a workflow step's ``finmlops --outputs`` writes the files Argo reads as outputs."""
PROMOTION_CONFIG_MAP = "finmlops-promotion"
PROMOTION_DIR = "/etc/finmlops-promotion"
PROMOTION_FILE = "promotion.json"
K8S_VERSION = "1.33.0"
"""The Kubernetes API version the core objects are written (and validated) against."""

S3_KEYS = ("access-key-id", "secret-access-key")
MLFLOW_KEYS = ("backend-store-uri",)
TOKEN_KEY = "token"  # noqa: S105 - a key name in each token Secret (and the git Secret)
LEDGER_URL_KEY = "url"
"""The key of the ledger DSN in ``deploy.ledger_secret``."""
LEDGER_CLIENT = {"finmlops.io/ledger-client": "true"}
"""The label of the workflow pods that get the ledger DSN (and may reach the database)."""
INFERENCE_CLIENT = {"finmlops.io/inference-client": "true"}
"""The label of the workflow pods that call the service (the daily ``predict`` step)."""


def namespace(settings: Settings, role: str) -> str:
    """``<prefix>-pipelines`` / ``-inference`` / ``-monitoring`` / ``-ledger``."""
    return f"{settings.deploy.namespace_prefix}-{role}"


def s3_endpoint(settings: Settings) -> str:
    """``deploy.s3_endpoint``, else the environment's MinIO Service."""
    return settings.deploy.s3_endpoint or (
        f"http://minio.{namespace(settings, 'pipelines')}.svc:{MINIO_PORT}")


def mlflow_uri(settings: Settings) -> str:
    """``deploy.mlflow_uri``, else the environment's MLflow Service."""
    return settings.deploy.mlflow_uri or (
        f"http://mlflow.{namespace(settings, 'pipelines')}.svc:{MLFLOW_PORT}")


def service_url(settings: Settings) -> str:
    """``deploy.service_url``, else the environment's serving Service."""
    return settings.deploy.service_url or (
        f"http://{SERVING}.{namespace(settings, 'inference')}.svc:{HTTP_PORT}")


def labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "finmlops",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "finmlops",
        "app.kubernetes.io/managed-by": "finmlops-deploy",
    }


def selector(component: str) -> dict[str, str]:
    """The stable subset of :func:`labels` used in selectors (immutable on Deployments)."""
    return {"app.kubernetes.io/name": "finmlops", "app.kubernetes.io/component": component}


def meta(name: str, ns: str | None, component: str, **extra: Any) -> Manifest:
    out: Manifest = {"name": name, "labels": labels(component)}
    if ns is not None:
        out["namespace"] = ns
    out.update(extra)
    return out


def pod_security_context() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    """The Pod Security Standard ``restricted`` profile plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Manifest:
    return {"requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu_limit, "memory": memory_limit}}


def secret_env(name: str, secret: str, key: str) -> Manifest:
    """An env var read from a Secret by reference: the value never appears in a manifest."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def s3_env(settings: Settings) -> list[Manifest]:
    """Where data and artifacts live (MinIO/S3) and the credentials to reach them."""
    d = settings.deploy
    endpoint = s3_endpoint(settings)
    return [
        {"name": "FINMLOPS_DATA__STORE_URI", "value": f"s3://{d.bucket}/store"},
        {"name": "FINMLOPS_DATA__S3_ENDPOINT_URL", "value": endpoint},
        {"name": "AWS_ENDPOINT_URL_S3", "value": endpoint},
        {"name": "MLFLOW_S3_ENDPOINT_URL", "value": endpoint},
        secret_env("AWS_ACCESS_KEY_ID", d.s3_secret, S3_KEYS[0]),
        secret_env("AWS_SECRET_ACCESS_KEY", d.s3_secret, S3_KEYS[1]),
    ]


def ledger_env(settings: Settings) -> Manifest:
    """``FINMLOPS_LEDGER_URL`` from ``deploy.ledger_secret``: the DSN holds a password."""
    return secret_env("FINMLOPS_LEDGER_URL", settings.deploy.ledger_secret, LEDGER_URL_KEY)


def app_env(settings: Settings) -> list[Manifest]:
    """The environment every finmlops container gets: config file, home, S3, MLflow."""
    return [
        {"name": "FINMLOPS_CONFIG", "value": f"{CONFIG_DIR}/finmlops.yaml"},
        {"name": "FINMLOPS_HOME", "value": HOME},
        {"name": "FINMLOPS_TRACKING__URI", "value": mlflow_uri(settings)},
        *s3_env(settings),
        {"name": "HOME", "value": HOME},
        {"name": "TMPDIR", "value": "/tmp"},  # noqa: S108 - an emptyDir, see app_volumes
    ]


def app_volumes(home_size: str = "2Gi") -> list[Manifest]:
    """Writable paths for a read-only root: FINMLOPS_HOME and /tmp on emptyDirs, the config."""
    return [
        {"name": "home", "emptyDir": {"sizeLimit": home_size}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "config", "configMap": {"name": CONFIG_MAP}},
    ]


def app_volume_mounts() -> list[Manifest]:
    return [
        {"name": "home", "mountPath": HOME},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    ]


def cluster_config(settings: Settings) -> dict[str, Any]:
    """The ``finmlops.yaml`` mounted into every pod: the user's settings minus local paths,
    secrets (tokens, the ledger DSN, the git token: they come from Secrets) and what the
    environment sets (store, tracking URI, home, the serving address and worker count). A
    local source (``bundled``, ``csv``) becomes ``deploy.source``: the daily job must see
    each new bar."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    for key in ("home", "deploy"):
        data.pop(key, None)
    for key in ("store_uri", "s3_endpoint_url", "csv_path"):
        data["data"].pop(key, None)
    if settings.data.source in ("bundled", "csv"):
        data["data"]["source"] = settings.deploy.source
    data["gitops"].pop("token", None)
    data["tracking"].pop("uri", None)
    for key in ("tokens", "model_dir", "host", "port", "workers"):
        data["serve"].pop(key, None)
    data["ledger"].pop("url", None)
    return data


def config_hash(config: dict[str, Any]) -> str:
    """Rolls the serving pods when the mounted configuration changes."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
