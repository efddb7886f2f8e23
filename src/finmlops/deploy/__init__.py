"""Kubernetes manifests for finmlops, rendered from the same settings as the laptop run.

Pure builders return plain dicts (Argo via Hera, core kinds, Prometheus Operator, Seldon,
KServe, Argo CD); :func:`render_kubernetes` / :func:`render_seldon` / :func:`render_kserve` lay
them out as a kustomize tree and :func:`write_rendered` writes it as deterministic YAML.
:func:`publish_version` writes a registered version as the Triton model repository that the
Seldon and KServe objects point at.
"""

from finmlops.deploy._k8s import K8S_VERSION, Manifest, cluster_config, namespace
from finmlops.deploy.render import (
    OVERLAYS,
    Rendered,
    dump_yaml,
    render_kserve,
    render_kubernetes,
    render_seldon,
    write_rendered,
)
from finmlops.deploy.triton import (
    Published,
    config_pbtxt,
    model_folder,
    publish_version,
    read_marker,
    repository_root,
    version_repository,
)

__all__ = [
    "K8S_VERSION",
    "OVERLAYS",
    "Manifest",
    "Published",
    "Rendered",
    "cluster_config",
    "config_pbtxt",
    "dump_yaml",
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
