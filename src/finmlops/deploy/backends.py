"""The shared services the pipeline needs on a cluster: an MLflow server and MinIO.

MLflow is a plain Deployment + Service (the image is the Dockerfile's ``mlflow`` target, since
the upstream image has neither the PostgreSQL driver nor boto3), backed by PostgreSQL through a
Secret-held URI and by S3 for artifacts. MinIO is installed with its upstream Helm chart
(``minio/minio``, standalone) from the values rendered here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from finmlops.config import Settings
from finmlops.deploy._k8s import (
    MINIO_PORT,
    MLFLOW_KEYS,
    MLFLOW_PORT,
    UID,
    Manifest,
    container_security_context,
    meta,
    mlflow_uri,
    namespace,
    pod_security_context,
    resources,
    s3_env,
    secret_env,
    selector,
)


def mlflow_image(settings: Settings) -> str:
    """``<image repository>-mlflow:<tag>`` next to the app image (not yet a setting)."""
    repo, _, tag = settings.deploy.image.rpartition(":")
    if not repo or "/" in tag:
        return f"{settings.deploy.image}-mlflow:latest"
    return f"{repo}-mlflow:{tag}"


def _allowed_hosts(settings: Settings) -> list[str]:
    """The service's in-cluster names (with and without the port), the configured URI's host
    (and its host:port, as clients send it in ``Host``), and private address ranges for the
    kubelet's probes, which use the pod IP."""
    ns = namespace(settings, "pipelines")
    names = ["mlflow", f"mlflow.{ns}", f"mlflow.{ns}.svc", f"mlflow.{ns}.svc.cluster.local"]
    configured = urlsplit(mlflow_uri(settings))
    if configured.hostname and configured.hostname not in names:
        names.append(configured.hostname)
    hosts = [h for n in names for h in (n, f"{n}:{MLFLOW_PORT}")]
    if configured.port and configured.port != MLFLOW_PORT and configured.hostname:
        hosts.append(f"{configured.hostname}:{configured.port}")
    return [*hosts, "10.*", "172.*", "192.168.*"]


def mlflow_objects(settings: Settings) -> list[Manifest]:
    ns = namespace(settings, "pipelines")
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10,
             "timeoutSeconds": 3, "failureThreshold": 3}
    container: Manifest = {
        "name": "mlflow",
        "image": mlflow_image(settings),
        "imagePullPolicy": "IfNotPresent",
        "command": ["mlflow", "server", "--host", "0.0.0.0", "--port", str(MLFLOW_PORT),  # noqa: S104
                    "--backend-store-uri", "$(MLFLOW_BACKEND_STORE_URI)",
                    "--artifacts-destination", f"s3://{settings.deploy.bucket}/mlartifacts",
                    "--serve-artifacts"],
        "env": [
            secret_env("MLFLOW_BACKEND_STORE_URI", settings.deploy.mlflow_secret, MLFLOW_KEYS[0]),
            # MLflow >= 3.5 rejects Host headers it does not know (DNS-rebinding protection).
            {"name": "MLFLOW_SERVER_ALLOWED_HOSTS", "value": ",".join(_allowed_hosts(settings))},
            *[e for e in s3_env(settings) if not e["name"].startswith("FINMLOPS_")],
            {"name": "HOME", "value": "/tmp"},  # noqa: S108 - an emptyDir
        ],
        "ports": [{"name": "http", "containerPort": MLFLOW_PORT, "protocol": "TCP"}],
        "startupProbe": probe | {"failureThreshold": 30},
        "readinessProbe": probe,
        "livenessProbe": probe,
        "resources": resources("250m", "512Mi", "1", "1Gi"),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": meta("mlflow", ns, "mlflow"),
         "spec": {
             "replicas": 1,
             "selector": {"matchLabels": selector("mlflow")},
             "template": {
                 "metadata": {"labels": meta("mlflow", None, "mlflow")["labels"]},
                 "spec": {
                     "serviceAccountName": "mlflow",
                     "automountServiceAccountToken": False,
                     "enableServiceLinks": False,
                     "securityContext": pod_security_context(),
                     "containers": [container],
                     "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                 },
             },
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": meta("mlflow", ns, "mlflow"),
         "spec": {"type": "ClusterIP", "selector": selector("mlflow"),
                  "ports": [{"name": "http", "port": MLFLOW_PORT, "targetPort": "http",
                             "protocol": "TCP"}]}},
    ]


def minio_values(settings: Settings) -> dict[str, Any]:
    """Values for the upstream ``minio/minio`` chart: one standalone server named ``minio``
    in the pipelines namespace, root credentials from an existing Secret, the bucket created."""
    return {
        "fullnameOverride": "minio",
        "mode": "standalone",
        "replicas": 1,
        "existingSecret": "minio-root",
        "buckets": [{"name": settings.deploy.bucket, "policy": "none", "purge": False}],
        "persistence": {"enabled": True, "size": "50Gi"},
        "resources": resources("250m", "1Gi", "2", "2Gi"),
        "service": {"type": "ClusterIP", "port": str(MINIO_PORT)},
        "consoleService": {"type": "ClusterIP"},
        "securityContext": {"enabled": True, "runAsUser": UID, "runAsGroup": UID,
                            "fsGroup": UID, "fsGroupChangePolicy": "OnRootMismatch"},
        "containerSecurityContext": {
            "readOnlyRootFilesystem": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "podLabels": {"app.kubernetes.io/part-of": "finmlops"},
        "metrics": {"serviceMonitor": {"enabled": False}},
    }
