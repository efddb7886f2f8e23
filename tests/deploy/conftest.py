"""Fixtures for the deploy tests: settings, rendered trees, CRD schema validators, and (for the
publish step) registered versions of real exported networks and moto's S3 server."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from finmlops.config import Settings, load_settings
from finmlops.deploy import Rendered, render_kserve, render_kubernetes, render_seldon

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
    ("argoproj.io/v1alpha1", "AppProject"): "argo-cd_appproject-crd.yaml",
    # No Workflow CRD is stored: a Workflow's spec is the same WorkflowSpec as a
    # WorkflowTemplate's, so Workflows are checked against that schema (see crd_validate).
    ("argoproj.io/v1alpha1", "Workflow"): "argo-workflows_argoproj.io_workflowtemplates.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"):
        "prometheus-operator_monitoring.coreos.com_prometheusrules.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"):
        "prometheus-operator_monitoring.coreos.com_servicemonitors.yaml",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"):
        "gateway-api_gateway.networking.k8s.io_httproutes.yaml",
    ("mlops.seldon.io/v1alpha1", "Model"): "seldon-core-v2_mlops.seldon.io_models.yaml",
    ("mlops.seldon.io/v1alpha1", "Experiment"): "seldon-core-v2_mlops.seldon.io_experiments.yaml",
    ("postgresql.cnpg.io/v1", "Cluster"): "cloudnative-pg_postgresql.cnpg.io_clusters.yaml",
    ("serving.kserve.io/v1beta1", "InferenceService"):
        "kserve_serving.kserve.io_inferenceservices.yaml",
}
PINNED = {"baseline": "1", "enhanced": "2"}
"""The versions a fresh `make run` registers: what the committed Seldon/KServe trees pin."""


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
def rendered_tree(default_settings: Settings) -> Rendered:
    """The whole default render: every environment, Argo CD, platform, Helm values."""
    return render_kubernetes(default_settings)


@pytest.fixture(scope="session")
def rendered(rendered_tree: Rendered) -> Rendered:
    """The prod environment of the default render (namespaces ``finmlops-*``)."""
    return rendered_tree.environment("prod")


@pytest.fixture(scope="session")
def rendered_dev(rendered_tree: Rendered) -> Rendered:
    return rendered_tree.environment("dev")


@pytest.fixture(scope="session")
def pinned() -> dict[str, str]:
    """Arm -> registered version for the Seldon and KServe renders."""
    return dict(PINNED)


@pytest.fixture(scope="session")
def rendered_seldon(default_settings: Settings, pinned: dict[str, str]) -> Rendered:
    return render_seldon(default_settings, pinned)


@pytest.fixture(scope="session")
def rendered_kserve(default_settings: Settings, pinned: dict[str, str]) -> Rendered:
    return render_kserve(default_settings, pinned)


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


# -- the publish step: registered versions of real exported networks, and S3 on loopback --

VARIANT_SHAPES = {"baseline": ("lstm", 4), "enhanced": ("gru", 6)}
"""Architecture and own window of the two exported networks (shared input: 6 days, 5 features)."""
WINDOW, N_FEATURES = 6, 5


def export_variant(out: Path, variant: str, seed: int) -> Path:
    """A seeded, untrained ``DirectionModel`` of ``variant``'s architecture through the
    project's own ONNX export, with its model card: an exported model directory."""
    import numpy as np
    import torch

    from finmlops.config import VariantSettings
    from finmlops.models._modules import DirectionModel, Preprocess, build_core
    from finmlops.models.export import export_onnx, model_card, write_model_json

    architecture, window = VARIANT_SHAPES[variant]
    settings = VariantSettings(architecture=architecture, window=window, hidden=8)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    index = [0, 1, 3]
    model = DirectionModel(
        Preprocess(window, index, rng.normal(size=3).astype(np.float32),
                   rng.uniform(0.5, 2.0, size=3).astype(np.float32)),
        build_core(settings, len(index))).eval()
    export_onnx(model, out / "model.onnx", WINDOW, N_FEATURES)
    write_model_json(out / "model.json", model_card(
        variant=variant, target=["IBB"], window=WINDOW,
        feature_names=[f"x{i}" for i in range(N_FEATURES)], data_version="d" * 12,
        weights_hash=f"w-{variant}-{seed}", trained_until="2018-12-31", horizon=1,
        reference=None))
    return out


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, int], Path]:
    """``exported(variant, seed)``: an exported model directory, built once per pair."""
    root = tmp_path_factory.mktemp("exported")
    built: dict[tuple[str, int], Path] = {}

    def get(variant: str, seed: int = 0) -> Path:
        if (variant, seed) not in built:
            built[variant, seed] = export_variant(root / f"{variant}-{seed}", variant, seed)
        return built[variant, seed]

    return get


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow database to copy (the migrations run once)."""
    from finmlops.tracking._client import quiet

    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    with quiet():
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def registry(tmp_path: Path, mlflow_db: Path,
             exported: Callable[[str, int], Path]) -> Callable[..., Settings]:
    """``registry(**settings)``: a home where baseline (v1) and enhanced (v2) are registered
    from real exported networks (the ``add_version`` fixture registers more)."""
    import shutil

    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(mlflow_db, home / "mlflow.db")

    def make(**kwargs: Any) -> Settings:
        settings = Settings(home=home, **kwargs)
        for variant in ("baseline", "enhanced"):
            _add_version(settings, exported(variant, 0), variant)
        return settings

    return make


@pytest.fixture
def add_version() -> Callable[[Settings, Path, str], str]:
    """``add_version(settings, model_dir, variant)``: log and register one more version."""
    return _add_version


def _add_version(settings: Settings, model_dir: Path, variant: str) -> str:
    """Log ``model_dir`` as a training run of ``variant`` and register it; its version."""
    import json as _json

    from finmlops.config import public_dict
    from finmlops.models import TrainedVariant
    from finmlops.tracking import log_training, register

    card = _json.loads((model_dir / "model.json").read_text())
    trained = TrainedVariant(
        variant=variant, settings=settings.train.variants[variant], model_dir=model_dir,
        oos_path=model_dir / "absent.parquet", fold_metrics=[], metrics={"accuracy": 0.5},
        baselines={}, weights_hash=card["weights_hash"], data_version=card["data_version"],
        feature_names=card["feature_names"], seconds=0.0)
    run_id = log_training(settings, trained, public_dict(settings))
    return register(settings, run_id, variant, trained.data_version).version


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port."""
    from s3_support import moto_server

    with moto_server() as url:
        yield url
