"""Kubernetes manifests for finmlops, rendered from the same settings as the laptop run.

Pure builders return plain dicts (Argo via Hera, core kinds, Prometheus Operator, Seldon,
KServe, Argo CD); :func:`render_kubernetes` lays out every environment
(:func:`environment_settings`) as a kustomize tree, :func:`render_seldon` /
:func:`render_kserve` the optional serving targets, and :func:`write_rendered` writes them as
deterministic YAML. :func:`publish_version` writes a registered version as the Triton model
repository that the Seldon and KServe objects point at. :mod:`finmlops.deploy.gitops` holds
each environment's promotion record, which ``abtest decide --apply`` commits to Git.
"""

from finmlops.deploy._k8s import K8S_VERSION, Manifest, cluster_config, namespace
from finmlops.deploy._yaml import dump_yaml
from finmlops.deploy.environments import environment_names, environment_settings
from finmlops.deploy.gitops import PromotionFile, PromotionState
from finmlops.deploy.render import (
    Rendered,
    render_kserve,
    render_kubernetes,
    render_seldon,
    write_rendered,
)
from finmlops.deploy.triton import (
    Published,
    PublishMarker,
    config_pbtxt,
    model_folder,
    publish_version,
    read_marker,
    repository_root,
    version_repository,
)

__all__ = [
    "K8S_VERSION",
    "Manifest",
    "PromotionFile",
    "PromotionState",
    "PublishMarker",
    "Published",
    "Rendered",
    "cluster_config",
    "config_pbtxt",
    "dump_yaml",
    "environment_names",
    "environment_settings",
    "model_folder",
    "namespace",
    "publish_version",
    "read_marker",
    "render_kserve",
    "render_kubernetes",
    "render_seldon",
    "repository_root",
    "version_repository",
    "write_rendered",
]
