"""Seldon Core v2 objects: one ``Model`` per experiment arm and the ``Experiment`` itself.

The Experiment is ``settings.experiment`` as is (the local router reads the same fields), so
the cluster splits traffic exactly like ``finmlops serve``. Each Model is pinned to the
registered version its arm's alias names (``versions``, resolved from the registry by
``finmlops deploy render``): ``storageUri`` is that version's Triton model folder as
``finmlops models publish`` wrote it (:mod:`finmlops.deploy.triton`) and ``artifactVersion``
its Triton version, so moving an alias and re-rendering changes the manifest, and the cluster
loads the new version.
"""

from __future__ import annotations

from collections.abc import Mapping

from finmlops.config import Settings
from finmlops.deploy._k8s import Manifest, meta, namespace
from finmlops.deploy.triton import model_folder, repository_root
from finmlops.errors import ConfigError

STORAGE_SECRET = "finmlops-seldon-rclone"  # noqa: S105 - a Secret name
"""An rclone-config Secret for Seldon's agent to read the bucket (Seldon v2's storage scheme)."""
VERSION_LABEL = "finmlops.io/model-version"


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


def arm_version(versions: Mapping[str, str], arm: str) -> str:
    """The registered version pinned for ``arm`` (a :class:`ConfigError` naming the fix)."""
    version = str(versions.get(arm) or "")
    if not version.isdigit() or int(version) < 1:
        raise ConfigError(f"no registered version for arm {arm!r}: register it, or pass "
                          f"--model-version {arm}=N")
    return str(int(version))


def storage_uri(settings: Settings, version: str) -> str:
    """The Triton model folder of a published version."""
    return model_folder(repository_root(settings), settings.registered_model, version)


def models(settings: Settings, versions: Mapping[str, str]) -> list[Manifest]:
    exp = settings.experiment
    champion = exp.default or exp.candidates[0].name
    out = []
    for name in arms(settings):
        version = arm_version(versions, name)
        m = meta(name, namespace(settings, "inference"), "seldon")
        m["labels"]["finmlops.io/role"] = "champion" if name == champion else "challenger"
        m["labels"][VERSION_LABEL] = version
        out.append({
            "apiVersion": "mlops.seldon.io/v1alpha1", "kind": "Model", "metadata": m,
            "spec": {"storageUri": storage_uri(settings, version),
                     "artifactVersion": int(version), "requirements": ["onnx"],
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


def seldon_objects(settings: Settings, versions: Mapping[str, str]) -> list[Manifest]:
    return [*models(settings, versions), experiment(settings)]
