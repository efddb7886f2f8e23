"""Argo CD ``Application`` objects: the cluster follows the committed kustomize overlays."""

from __future__ import annotations

from finmlops.config import Settings
from finmlops.deploy._k8s import ARGOCD_NAMESPACE, GITOPS_PATH, GITOPS_REVISION, Manifest, meta


def application(settings: Settings, overlay: str) -> Manifest:
    """Dev syncs automatically (prune + self-heal); prod waits for a human ``argocd app sync``."""
    sync: Manifest = {"syncOptions": ["ServerSideApply=true", "ApplyOutOfSyncOnly=true"],
                      "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2,
                                                        "maxDuration": "5m"}}}
    if overlay == "dev":
        sync["automated"] = {"prune": True, "selfHeal": True}
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": meta(f"{settings.deploy.namespace_prefix}-{overlay}", ARGOCD_NAMESPACE,
                         "gitops"),
        "spec": {
            "project": "default",
            "source": {"repoURL": settings.deploy.git_repo, "targetRevision": GITOPS_REVISION,
                       "path": f"{GITOPS_PATH}/overlays/{overlay}"},
            "destination": {"server": "https://kubernetes.default.svc"},
            "syncPolicy": sync,
        },
    }
