"""Seldon Core v2 objects: one ``Model`` per experiment arm and the ``Experiment`` itself.

The Experiment is ``settings.experiment`` as is (the local router reads the same fields), so
the cluster splits traffic exactly like ``finmlops serve``. Models are the registered ONNX
artifacts under ``s3://<bucket>/models/<registered_model>/<variant>``.
"""

from __future__ import annotations

from finmlops.config import Settings
from finmlops.deploy._k8s import Manifest, meta, namespace
from finmlops.errors import ConfigError

STORAGE_SECRET = "finmlops-seldon-rclone"  # noqa: S105 - a Secret name
"""An rclone-config Secret for Seldon's agent to read the bucket (Seldon v2's storage scheme)."""


def storage_uri(settings: Settings, variant: str) -> str:
    return f"s3://{settings.deploy.bucket}/models/{settings.registered_model}/{variant}"


def arms(settings: Settings) -> list[str]:
    """Candidates in configured order, then the mirror if it is not a candidate."""
    exp = settings.experiment
    names = [c.name for c in exp.candidates]
    if exp.mirror is not None and exp.mirror.name not in names:
        if exp.mirror.name not in settings.train.variants:
            raise ConfigError(
                f"experiment.mirror {exp.mirror.name!r} is not a train.variants entry")
        names.append(exp.mirror.name)
    return names


def models(settings: Settings) -> list[Manifest]:
    exp = settings.experiment
    champion = exp.default or exp.candidates[0].name
    out = []
    for name in arms(settings):
        m = meta(name, namespace(settings, "inference"), "seldon")
        m["labels"]["finmlops.io/role"] = "champion" if name == champion else "challenger"
        out.append({
            "apiVersion": "mlops.seldon.io/v1alpha1", "kind": "Model", "metadata": m,
            "spec": {"storageUri": storage_uri(settings, name), "requirements": ["onnx"],
                     "secretName": STORAGE_SECRET, "replicas": settings.deploy.replicas}})
    return out


def experiment(settings: Settings) -> Manifest:
    exp = settings.experiment
    spec: Manifest = {"candidates": [{"name": c.name, "weight": c.weight}
                                     for c in exp.candidates]}
    if exp.default is not None:
        spec["default"] = exp.default
    if exp.mirror is not None:
        spec["mirror"] = {"name": exp.mirror.name, "percent": exp.mirror.percent}
    return {"apiVersion": "mlops.seldon.io/v1alpha1", "kind": "Experiment",
            "metadata": meta(exp.name, namespace(settings, "inference"), "seldon"),
            "spec": spec}


def seldon_objects(settings: Settings) -> list[Manifest]:
    return [*models(settings), experiment(settings)]
