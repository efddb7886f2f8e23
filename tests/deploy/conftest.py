"""Fixtures for the deploy tests: settings, rendered trees, and CRD schema validators."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from finmlops.config import Settings, load_settings
from finmlops.deploy import Rendered, render_kubernetes, render_seldon

REPO = Path(__file__).resolve().parents[2]


def _schemas_dir() -> Path:
    """``$FINMLOPS_CRD_SCHEMAS``, else the nearest ``shared/schemas`` beside the repository or
    one of its parents (a git worktree sits deeper than the main checkout)."""
    explicit = os.environ.get("FINMLOPS_CRD_SCHEMAS")
    if explicit:
        return Path(explicit)
    for parent in REPO.parents:
        candidate = parent / "shared" / "schemas"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "schemas"


SCHEMAS = _schemas_dir()
GOLDEN = REPO / "deploy" / "k8s"

CRD_FILES = {
    ("argoproj.io/v1alpha1", "WorkflowTemplate"):
        "argo-workflows_argoproj.io_workflowtemplates.yaml",
    ("argoproj.io/v1alpha1", "CronWorkflow"): "argo-workflows_argoproj.io_cronworkflows.yaml",
    ("argoproj.io/v1alpha1", "Application"): "argo-cd_application-crd.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"):
        "prometheus-operator_monitoring.coreos.com_prometheusrules.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"):
        "prometheus-operator_monitoring.coreos.com_servicemonitors.yaml",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"):
        "gateway-api_gateway.networking.k8s.io_httproutes.yaml",
    ("mlops.seldon.io/v1alpha1", "Model"): "seldon-core-v2_mlops.seldon.io_models.yaml",
    ("mlops.seldon.io/v1alpha1", "Experiment"): "seldon-core-v2_mlops.seldon.io_experiments.yaml",
    ("postgresql.cnpg.io/v1", "Cluster"): "cloudnative-pg_postgresql.cnpg.io_clusters.yaml",
}


@pytest.fixture(scope="session")
def make_settings(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Settings]:
    """``make_settings(FINMLOPS_X__Y="v", ...)``: defaults plus environment-style overrides,
    never reading the caller's environment or a ``finmlops.yaml`` in the working directory."""
    empty = tmp_path_factory.mktemp("config") / "finmlops.yaml"
    empty.write_text("")

    def make(**env: str) -> Settings:
        return load_settings(empty, environ=env)

    return make


@pytest.fixture(scope="session")
def default_settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def rendered(default_settings: Settings) -> Rendered:
    return render_kubernetes(default_settings)


@pytest.fixture(scope="session")
def rendered_seldon(default_settings: Settings) -> Rendered:
    return render_seldon(default_settings)


def _strict(node: Any) -> None:
    """Reject unknown fields: ``additionalProperties: false`` wherever properties are listed
    and the schema does not preserve unknown fields (as /work/shared/schemas/README.md says)."""
    if isinstance(node, dict):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for v in node.values():
            _strict(v)
    elif isinstance(node, list):
        for v in node:
            _strict(v)


def _fix_re2(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("pattern") == "^(?i)(abort|warn)?$":
            node["pattern"] = "(?i)^(abort|warn)?$"
        for v in node.values():
            _fix_re2(v)
    elif isinstance(node, list):
        for v in node:
            _fix_re2(v)


def _load_validator(path: Path, version: str) -> Any:
    import jsonschema
    import yaml

    with path.open(encoding="utf-8") as f:
        crd = yaml.load(f, Loader=yaml.CSafeLoader)
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = copy.deepcopy(entry["schema"]["openAPIV3Schema"])
    _fix_re2(schema)
    _strict(schema)
    metadata = schema.get("properties", {}).get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("additionalProperties", None)
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


@pytest.fixture(scope="session")
def crd_validate() -> Iterator[Callable[[dict[str, Any]], list[str]]]:
    """``validate(obj) -> [error messages]`` for every custom kind we render. The big Argo CRDs
    load once per session (about 1.5 s each)."""
    if not SCHEMAS.is_dir():
        pytest.skip(f"CRD schemas not found at {SCHEMAS.resolve()} (the shared folder beside "
                    "the repo root)")
    cache: dict[tuple[str, str], Any] = {}

    def validate(obj: dict[str, Any]) -> list[str]:
        key = (obj["apiVersion"], obj["kind"])
        if key not in CRD_FILES:
            raise KeyError(f"no CRD schema for {key}")
        if key not in cache:
            cache[key] = _load_validator(SCHEMAS / CRD_FILES[key], key[0].split("/")[1])
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in cache[key].iter_errors(obj)]

    yield validate


def _is_core(obj: dict[str, Any]) -> bool:
    return (obj["apiVersion"], obj["kind"]) not in CRD_FILES


@pytest.fixture(scope="session")
def is_core() -> Callable[[dict[str, Any]], bool]:
    """True for kinds Kubernetes itself defines (validated with kubernetes-validate)."""
    return _is_core
