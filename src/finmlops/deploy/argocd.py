"""Argo CD: one ``AppProject`` and one ``Application`` per environment.

Each environment's project may deploy only from ``deploy.git_repo``, only to that
environment's cluster and namespaces, and only ``Namespace`` among cluster-scoped kinds, so
one environment's Application can never write into another's (even with self-heal on).
"""

from __future__ import annotations

from finmlops.config import Settings
from finmlops.deploy._k8s import (
    ARGOCD_NAMESPACE,
    GITOPS_PATH,
    GITOPS_REVISION,
    Manifest,
    meta,
    namespace,
)
from finmlops.deploy.platform import ROLES


def project_name(root: Settings, environment: str) -> str:
    """``<deploy.namespace_prefix>-<environment>`` (the root settings' prefix)."""
    return f"{root.deploy.namespace_prefix}-{environment}"


def app_project(root: Settings, environment: str, env_settings: Settings) -> Manifest:
    env = root.deploy.environments[environment]
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": meta(project_name(root, environment), ARGOCD_NAMESPACE, "gitops"),
        "spec": {
            "description": f"finmlops {environment}: its own namespaces on {env.cluster}",
            "sourceRepos": [root.deploy.git_repo],
            "destinations": [{"server": env.cluster, "namespace": namespace(env_settings, r)}
                             for r in ROLES],
            "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
        },
    }


def application(root: Settings, environment: str) -> Manifest:
    """Auto-sync (prune + self-heal) when the environment asks for it; else Argo CD waits
    for a human ``argocd app sync``."""
    env = root.deploy.environments[environment]
    sync: Manifest = {"syncOptions": ["ServerSideApply=true", "ApplyOutOfSyncOnly=true"],
                      "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2,
                                                        "maxDuration": "5m"}}}
    if env.auto_sync:
        sync["automated"] = {"prune": True, "selfHeal": True}
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": meta(project_name(root, environment), ARGOCD_NAMESPACE, "gitops"),
        "spec": {
            "project": project_name(root, environment),
            "source": {"repoURL": root.deploy.git_repo, "targetRevision": GITOPS_REVISION,
                       "path": f"{GITOPS_PATH}/environments/{environment}"},
            "destination": {"server": env.cluster},
            "syncPolicy": sync,
        },
    }
