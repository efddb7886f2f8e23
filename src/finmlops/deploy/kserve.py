"""KServe: the A/B experiment as one ``InferenceService`` on the Triton runtime, the
challenger as its canary.

KServe splits traffic between two revisions of one InferenceService: the revision last rolled
out in full (the default arm) and the newest one, which gets ``canaryTrafficPercent`` of the
requests. So two objects are rendered, the same InferenceService in two states:

- ``default/``: the experiment's default arm alone (100%): the first rollout on a cluster, and
  the roll-back;
- the root: the other candidate as the canary, with the experiment's weights as the percentage.

Each arm is pinned to the registered version its alias names, through the Triton repository
``finmlops models publish`` wrote for it (:mod:`finmlops.deploy.triton`). The predictor speaks
the Open Inference Protocol V2 (``/v2/models/<registered model>/infer``, the Triton model being
named after the registered model) and reads the bucket as the ``finmlops-kserve`` service
account, whose S3 credentials Secret is referenced, never rendered. KServe has no shadow
traffic: an experiment mirror is not rendered (a note says so).
"""

from __future__ import annotations

from collections.abc import Mapping

from finmlops.config import Settings
from finmlops.deploy._k8s import Manifest, meta, namespace, resources
from finmlops.deploy.seldon import arm_version
from finmlops.deploy.triton import repository_root, version_repository
from finmlops.errors import ConfigError

SERVICE_ACCOUNT = "finmlops-kserve"
STORAGE_SECRET = "finmlops-kserve-s3"  # noqa: S105 - a Secret name
"""A Secret with the bucket's credentials and KServe's ``serving.kserve.io/s3-*``
annotations (created by hand, see the README)."""
RUNTIME = "kserve-tritonserver"
PREDICTOR_RESOURCES = resources("250m", "512Mi", "1", "1Gi")
TRITON_UID = 1000
"""The ``triton-server`` user of NVIDIA's Triton images: the namespace enforces the
``restricted`` Pod Security Standard, so the container may not run as root."""


def security_context() -> Manifest:
    """``restricted`` for the Triton container (its root filesystem stays writable: Triton
    writes to its home and /tmp)."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True, "runAsUser": TRITON_UID, "runAsGroup": TRITON_UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def arms(settings: Settings) -> tuple[str, str | None]:
    """``(default arm, canary arm or None)``: KServe splits two ways."""
    exp = settings.experiment
    names = [c.name for c in exp.candidates]
    if len(names) > 2:
        raise ConfigError(f"KServe splits traffic two ways (a default and one canary); the "
                          f"experiment has {len(names)} candidates: {', '.join(names)}")
    default = exp.default or names[0]
    others = [n for n in names if n != default]
    return default, (others[0] if others else None)


def canary_percent(settings: Settings) -> int:
    """The canary's share of the traffic, in percent, from the experiment's weights."""
    default, canary = arms(settings)
    weights = {c.name: c.weight for c in settings.experiment.candidates}
    if canary is None:
        return 0
    total = weights[default] + weights[canary]
    return round(100 * weights[canary] / total)


def service_account(settings: Settings) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": meta(SERVICE_ACCOUNT, namespace(settings, "inference"), "kserve"),
            "secrets": [{"name": STORAGE_SECRET}], "automountServiceAccountToken": False}


def inference_service(settings: Settings, versions: Mapping[str, str], *,
                      canary: bool = True) -> Manifest:
    """The InferenceService serving the default arm's version, or (``canary``) the canary
    arm's version with ``canaryTrafficPercent``; with one arm, or both arms on one version,
    there is no canary."""
    default, other = arms(settings)
    pinned = {default: arm_version(versions, default)}
    if other is not None:
        pinned[other] = arm_version(versions, other)
    serving = other if canary and other is not None else default
    model = settings.registered_model
    m = meta(settings.experiment.name, namespace(settings, "inference"), "kserve")
    m["annotations"] = {
        # Canary rollouts are revisions of a Knative service; KServe's default mode
        # (Standard, formerly RawDeployment) has none. "Knative" was called "Serverless".
        "serving.kserve.io/deploymentMode": "Knative",
        **{f"finmlops.io/{arm}-version": v for arm, v in pinned.items()},
        "finmlops.io/serving-arm": serving,
    }
    predictor: Manifest = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "minReplicas": settings.deploy.replicas,
        "maxReplicas": settings.deploy.max_replicas,
        "model": {
            "modelFormat": {"name": "onnx"},
            "runtime": RUNTIME,
            "protocolVersion": "v2",
            "storageUri": version_repository(repository_root(settings), model, pinned[serving]),
            "resources": PREDICTOR_RESOURCES,
            "securityContext": security_context(),
        },
    }
    if serving != default and pinned[serving] != pinned[default]:
        predictor["canaryTrafficPercent"] = canary_percent(settings)
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": m, "spec": {"predictor": predictor}}


def notes(settings: Settings) -> list[str]:
    mirror = settings.experiment.mirror
    if mirror is None:
        return []
    return [f"KServe has no shadow traffic: experiment.mirror ({mirror.name}, "
            f"{mirror.percent}%) is not rendered"]
