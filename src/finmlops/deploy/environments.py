"""Deployment environments: each one the whole system in its own namespaces.

``deploy.environments`` names them (``dev`` and ``prod`` by default). An environment's
settings are the user's with its own namespace prefix, images, sizes and ``config``
overrides, and with promotion through Git turned on for it (``gitops.environment``): every
builder in this package then renders it exactly as it renders one cluster, so no two
environments share a (kind, namespace, name) and each talks only to its own MinIO, MLflow,
ledger and service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from finmlops.config import EnvironmentSettings, Settings
from finmlops.deploy._k8s import GITOPS_PATH, GITOPS_REVISION
from finmlops.errors import ConfigError

FORBIDDEN_OVERRIDES = frozenset({"home", "deploy", "gitops"})
"""Sections an environment's ``config`` may not set: the environment's own fields and the
render decide them."""


def environment_names(settings: Settings) -> list[str]:
    return list(settings.deploy.environments)


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in, nested mappings key by key (lists replace)."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            out[key] = _merge(old, value)
        else:
            out[key] = value
    return out


def _deploy_update(settings: Settings, env: EnvironmentSettings) -> dict[str, Any]:
    d = settings.deploy
    return {
        "namespace_prefix": env.namespace_prefix,
        "image": env.image or f"{d.image}{env.image_suffix}",
        "training_image": env.training_image or f"{d.training_image}{env.image_suffix}",
        "hostname": f"{env.hostname_prefix}{d.hostname}",
        "replicas": env.replicas if env.replicas is not None else d.replicas,
        "max_replicas": env.max_replicas if env.max_replicas is not None else d.max_replicas,
        "ledger_instances": (env.ledger_instances if env.ledger_instances is not None
                             else d.ledger_instances),
    }


def environment_settings(settings: Settings, name: str) -> Settings:
    """The settings ``name`` is rendered from. Raises :class:`ConfigError` for an unknown
    environment or ``config`` overrides that are not valid settings."""
    envs = settings.deploy.environments
    if name not in envs:
        raise ConfigError(f"unknown environment {name!r}; deploy.environments has: "
                          f"{', '.join(envs)}")
    env = envs[name]
    forbidden = sorted(FORBIDDEN_OVERRIDES & set(env.config))
    if forbidden:
        raise ConfigError(f"deploy.environments.{name}.config must not set {forbidden[0]!r} "
                          "(use the environment's own fields)")
    # Python mode keeps SecretStr values, so tokens and DSNs survive the round trip.
    data = _merge(settings.model_dump(), env.config)
    data["deploy"] = {**settings.deploy.model_dump(), **_deploy_update(settings, env)}
    data["gitops"] = {**settings.gitops.model_dump(), "enabled": True, "environment": name,
                      "review": env.promotion == "branch",
                      "repo": settings.gitops.repo or settings.deploy.git_repo,
                      "branch": GITOPS_REVISION, "path": GITOPS_PATH}
    try:
        out = Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"deploy.environments.{name}.config: {where}: {first['msg']}") from None
    if out.deploy.max_replicas < out.deploy.replicas:
        raise ConfigError(f"deploy.environments.{name}: max_replicas "
                          f"{out.deploy.max_replicas} is below replicas {out.deploy.replicas}")
    return out
