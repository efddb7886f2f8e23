"""Kubernetes manifests for finmlops, rendered from the same settings as the laptop run.

Pure builders return plain dicts (Argo via Hera, core kinds, Prometheus Operator, Seldon,
Argo CD); :func:`render_kubernetes` / :func:`render_seldon` lay them out as a kustomize tree
and :func:`write_rendered` writes it as deterministic YAML.
"""

from finmlops.deploy._k8s import K8S_VERSION, Manifest, cluster_config, namespace
from finmlops.deploy.render import (
    OVERLAYS,
    Rendered,
    dump_yaml,
    render_kubernetes,
    render_seldon,
    write_rendered,
)

__all__ = [
    "K8S_VERSION",
    "OVERLAYS",
    "Manifest",
    "Rendered",
    "cluster_config",
    "dump_yaml",
    "namespace",
    "render_kubernetes",
    "render_seldon",
    "write_rendered",
]
