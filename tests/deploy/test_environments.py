"""Environments: dev and prod are the whole system each, in their own namespaces, with their
own images and configuration, Argo CD projects that keep each inside its own namespaces, and
not one object or reference in common."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from finmlops.config import Settings
from finmlops.deploy import (
    Rendered,
    environment_settings,
    render_kubernetes,
    write_rendered,
)
from finmlops.errors import ConfigError

ROLES = ("pipelines", "inference", "monitoring", "ledger")


def _key(o: dict[str, Any]) -> tuple[str, str, str]:
    return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_dev_and_prod_share_no_object(rendered_tree: Rendered, tmp_path: Path) -> None:
    """What ``kubectl apply -k`` of each environment creates: no (kind, namespace, name) in
    common, so neither environment's sync can overwrite (or prune) the other's objects."""
    write_rendered(rendered_tree, tmp_path)
    built = {}
    for env in ("dev", "prod"):
        out = subprocess.run(["kubectl", "kustomize", str(tmp_path / "environments" / env)],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        built[env] = [d for d in yaml.safe_load_all(out) if d]
    dev, prod = ({_key(o) for o in built[e]} for e in ("dev", "prod"))
    assert len(dev) == len(built["dev"]) and len(prod) == len(built["prod"])  # no duplicates
    assert len(dev) > 50
    assert dev & prod == set()
    # The Argo CD objects (argocd namespace) are distinct too.
    argo = [{_key(o) for o in rendered_tree.environment(e).manifests()
             if o["kind"] in ("Application", "AppProject")} for e in ("dev", "prod")]
    assert len(argo[0]) == len(argo[1]) == 2 and argo[0] & argo[1] == set()


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_environment_stays_in_its_namespaces(rendered_tree: Rendered, env: str) -> None:
    part = rendered_tree.environment(env)
    prefix = "finmlops-dev" if env == "dev" else "finmlops"
    own = {f"{prefix}-{r}" for r in ROLES}
    objs = [o for o in part.manifests() if o["kind"] not in ("Application", "AppProject")]
    used = {o["metadata"].get("namespace") for o in objs} - {None}
    assert used == own
    cluster_scoped = {o["kind"] for o in objs if "namespace" not in o["metadata"]}
    assert cluster_scoped == {"Namespace"}
    # Every namespace any object names (service DNS names in values, policy and monitor
    # selectors, the drift retraining's embedded manifest) is one of its own, or a platform
    # namespace (Argo's, the operators', DNS).
    named = set()
    for o in objs:
        for key, value in _pairs(o):
            if key in ("namespace", "kubernetes.io/metadata.name", "matchNames"):
                named.update(value if isinstance(value, list) else [value])
            if isinstance(value, str):
                named.update(re.findall(r"\.([a-z0-9-]+)\.svc\b", value))
                if "kind: Workflow" in value:
                    named.add(yaml.safe_load(value)["metadata"]["namespace"])
    platform = {"argo", "kube-system", "cnpg-system", "envoy-gateway-system"}
    assert named - platform == own


def _pairs(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, value) in a manifest, the value of a list being the list itself."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _pairs(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _pairs(v, key)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_app_project_admits_only_its_own_namespaces(rendered_tree: Rendered,
                                                        env: str) -> None:
    part = rendered_tree.environment(env)
    (project,) = [o for o in part.manifests() if o["kind"] == "AppProject"]
    (app,) = [o for o in part.manifests() if o["kind"] == "Application"]
    used = {o["metadata"]["namespace"] for o in part.manifests()
            if o["kind"] not in ("Application", "AppProject") and "namespace" in o["metadata"]}
    spec = project["spec"]
    assert {d["namespace"] for d in spec["destinations"]} == used
    assert {d["server"] for d in spec["destinations"]} == {app["spec"]["destination"]["server"]}
    assert all("*" not in d["namespace"] for d in spec["destinations"])  # no glob reaches another
    assert spec["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
    assert spec["sourceRepos"] == [app["spec"]["source"]["repoURL"]]
    assert app["spec"]["project"] == project["metadata"]["name"] == f"finmlops-{env}"
    assert app["spec"]["source"]["path"] == f"deploy/k8s/environments/{env}"
    automated = app["spec"]["syncPolicy"].get("automated")
    assert automated == ({"prune": True, "selfHeal": True} if env == "dev" else None)


def test_each_environment_routes_a_host_of_its_own(rendered_tree: Rendered) -> None:
    hosts = {e: [h for o in rendered_tree.environment(e).manifests() if o["kind"] == "HTTPRoute"
                 for h in o["spec"]["hostnames"]] for e in ("dev", "prod")}
    assert hosts == {"dev": ["dev.finmlops.example.com"], "prod": ["finmlops.example.com"]}


def test_the_other_environments_namespaces_are_outside_each_project(
        rendered_tree: Rendered) -> None:
    dests = {e: {d["namespace"] for o in rendered_tree.environment(e).manifests()
                 if o["kind"] == "AppProject" for d in o["spec"]["destinations"]}
             for e in ("dev", "prod")}
    assert dests["dev"] & dests["prod"] == set()


def test_environments_have_their_own_images_and_config(make_settings: Any) -> None:
    settings = make_settings(FINMLOPS_DEPLOY__ENVIRONMENTS=(
        '{"dev": {"namespace_prefix": "finmlops-dev", "image_suffix": "-rc1",'
        ' "config": {"data": {"tickers": ["IBB", "SPY", "QQQ"]},'
        ' "monitoring": {"ks_alpha": 0.05}}},'
        ' "prod": {"namespace_prefix": "finmlops", "image": "registry.example/fm:1.2.3"}}'))
    tree = render_kubernetes(settings)

    def config(env: str) -> dict[str, Any]:
        cm = next(o for o in tree.environment(env).manifests() if o["kind"] == "ConfigMap"
                  and o["metadata"]["name"] == "finmlops-config")
        loaded: dict[str, Any] = yaml.safe_load(cm["data"]["finmlops.yaml"])
        return loaded

    dev, prod = config("dev"), config("prod")
    assert dev["data"]["tickers"] == ["IBB", "SPY", "QQQ"] and dev["monitoring"]["ks_alpha"] == 0.05
    assert prod["data"]["tickers"] == ["IBB", "SPY"] and prod["monitoring"]["ks_alpha"] == 0.01
    assert dev["gitops"]["environment"] == "dev" and prod["gitops"]["environment"] == "prod"

    def image(env: str, name: str) -> str:
        obj = next(o for o in tree.environment(env).manifests() if o["kind"] == "Deployment"
                   and o["metadata"]["name"] == name)
        value: str = obj["spec"]["template"]["spec"]["containers"][0]["image"]
        return value

    assert image("dev", "finmlops-serving") == "ghcr.io/finmlops/finmlops:0.1.0-rc1"
    assert image("prod", "finmlops-serving") == "registry.example/fm:1.2.3"
    daily = next(o for o in tree.environment("dev").manifests()
                 if o["metadata"]["name"] == "finmlops-daily")
    steps = {t["container"]["image"] for t in daily["spec"]["workflowSpec"]["templates"]
             if "container" in t}
    assert steps == {"ghcr.io/finmlops/finmlops-train:0.1.0-rc1"}
    params = {p["name"]: p["value"] for p in daily["spec"]["workflowSpec"]["arguments"]
              ["parameters"]}
    assert params["tickers"] == "IBB,SPY,QQQ"


@pytest.mark.parametrize(("environments", "message"), [
    ('{"a": {"namespace_prefix": "x"}, "b": {"namespace_prefix": "x"}}',
     "share the namespace prefix 'x'"),
    ('{}', "at least one environment"),
    ('{"Dev": {"namespace_prefix": "x"}}', "lower-case"),
    ('{"dev": {"namespace_prefix": "Not_A_Name"}}', "namespace_prefix"),
])
def test_bad_environments_are_config_errors(make_settings: Any, environments: str,
                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_settings(FINMLOPS_DEPLOY__ENVIRONMENTS=environments)


@pytest.mark.parametrize(("config", "message"), [
    ({"deploy": {"replicas": 3}}, "must not set 'deploy'"),
    ({"data": {"tickerz": ["IBB"]}}, r"environments.dev.config: data.tickerz"),
    ({"features": {"target": ["QQQ"]}}, r"environments.dev.config"),
])
def test_bad_environment_config_names_the_environment(config: dict[str, Any],
                                                      message: str) -> None:
    settings = Settings(deploy={"environments": {
        "dev": {"namespace_prefix": "finmlops-dev", "config": config}}})
    with pytest.raises(ConfigError, match=message):
        environment_settings(settings, "dev")


def test_an_environment_keeps_the_users_secrets_out_of_its_config() -> None:
    settings = Settings(ledger={"url": "postgresql://u:pw-SENTINEL@h/db"},
                        serve={"tokens": {"admin": "adm-SENTINEL"}},
                        gitops={"token": "git-SENTINEL"})
    env = environment_settings(settings, "dev")
    assert env.ledger_url == "postgresql://u:pw-SENTINEL@h/db"  # kept for local use ...
    text = "".join(render_kubernetes(settings).files().values())
    for sentinel in ("pw-SENTINEL", "adm-SENTINEL", "git-SENTINEL", "**********"):
        assert sentinel not in text  # ... never rendered
