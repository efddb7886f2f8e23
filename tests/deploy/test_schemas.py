"""Every rendered object is valid: core kinds against Kubernetes' own schemas (strict), custom
kinds against their CRDs with unknown fields rejected."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from finmlops.deploy import (
    K8S_VERSION,
    Rendered,
    render_kserve,
    render_kubernetes,
    render_seldon,
    write_rendered,
)


def _core_errors(obj: dict[str, Any]) -> str | None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}"
    return None


def _all(*trees: Rendered) -> list[dict[str, Any]]:
    return [o for t in trees for o in t.manifests()]


def _variant_settings(make_settings: Any) -> Any:
    """A non-default config exercising optional fields: CORS filter, mirror, fixed end date."""
    return make_settings(
        FINMLOPS_SERVE__CORS_ORIGINS='["https://app.example.com", "https://b.example.org"]',
        FINMLOPS_EXPERIMENT__MIRROR='{"name": "enhanced", "percent": 50}',
        FINMLOPS_DATA__END="2024-06-28",
        FINMLOPS_DEPLOY__ENVIRONMENTS='{"qa": {"namespace_prefix": "quant", "auto_sync": true}}',
    )


def test_core_objects_validate_strictly(rendered: Rendered, rendered_kserve: Rendered,
                                        is_core: Any) -> None:
    core = [o for o in _all(rendered, rendered_kserve) if is_core(o)]
    assert {o["kind"] for o in core} >= {
        "Namespace", "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding", "ConfigMap",
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    errors = [e for o in core if (e := _core_errors(o))]
    assert errors == []


def test_core_validation_catches_a_typo(rendered: Rendered) -> None:
    deployment = next(o for o in rendered.manifests() if o["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["resourcez"] = {}
    assert _core_errors(broken) is not None


def test_custom_objects_validate_against_crds(crd_validate: Any, rendered: Rendered,
                                              rendered_seldon: Rendered,
                                              rendered_kserve: Rendered, is_core: Any,
                                              make_settings: Any, pinned: dict[str, str]) -> None:
    variant = _variant_settings(make_settings)
    objs = _all(rendered, rendered_seldon, rendered_kserve, render_kubernetes(variant),
                render_seldon(variant, pinned), render_kserve(variant, pinned))
    custom = [o for o in objs if not is_core(o)]
    # The Workflow the daily job creates on drift travels as a resource template's manifest.
    custom += [yaml.safe_load(t["resource"]["manifest"]) for o in custom
               if o["kind"] == "CronWorkflow"
               for t in o["spec"]["workflowSpec"].get("templates", []) if "resource" in t]
    assert {o["kind"] for o in custom} >= {
        "WorkflowTemplate", "CronWorkflow", "Workflow", "Application", "AppProject",
        "ServiceMonitor", "HTTPRoute", "Model", "Experiment", "Cluster", "InferenceService",
        "PrometheusRule"}
    assert sum(o["kind"] == "Workflow" for o in custom) >= 3  # hook + drift run, per tree
    errors = {f"{o['kind']}/{o['metadata'].get('name') or o['metadata']['generateName']}":
              crd_validate(o) for o in custom}
    assert {k: v for k, v in errors.items() if v} == {}


@pytest.mark.parametrize("kind", ["WorkflowTemplate", "CronWorkflow", "Workflow", "HTTPRoute",
                                  "ServiceMonitor", "Application", "AppProject", "Model",
                                  "Experiment", "Cluster", "InferenceService"])
def test_unknown_custom_fields_are_rejected(crd_validate: Any, rendered: Rendered,
                                            rendered_seldon: Rendered,
                                            rendered_kserve: Rendered, kind: str) -> None:
    obj = copy.deepcopy(next(o for o in _all(rendered, rendered_seldon, rendered_kserve)
                             if o["kind"] == kind))
    obj["spec"]["typoField"] = 1
    assert any("typoField" in e for e in crd_validate(obj))


def test_cluster_schema_rejects_what_cloudnativepg_would(crd_validate: Any,
                                                         rendered: Rendered) -> None:
    cluster = next(o for o in rendered.manifests() if o["kind"] == "Cluster")
    for path, value in ((("spec", "instances"), 0),
                        (("spec", "postgresql", "synchronous", "method"), "all"),
                        (("spec", "bootstrap", "initdb", "secret", "key"), "password")):
        broken = copy.deepcopy(cluster)
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert crd_validate(broken), path


def test_cron_uses_the_v4_schedules_list(crd_validate: Any, rendered: Rendered) -> None:
    cron = next(o for o in rendered.manifests() if o["kind"] == "CronWorkflow")
    assert "schedule" not in cron["spec"]
    old = copy.deepcopy(cron)
    old["spec"]["schedule"] = old["spec"].pop("schedules")[0]
    assert crd_validate(old)  # the single-string form is gone in Argo Workflows v4


def test_prometheus_rule_from_assets_validates(crd_validate: Any, tmp_path: Path,
                                               make_settings: Any) -> None:
    rules = {"groups": [{"name": "finmlops", "partial_response_strategy": "warn", "rules": [
        {"alert": "FinmlopsNotReady", "expr": "min(finmlops_ready) < 1", "for": "5m",
         "labels": {"severity": "critical"}, "annotations": {"summary": "not ready"}}]}]}
    (tmp_path / "monitoring").mkdir()
    (tmp_path / "monitoring" / "alerts.yml").write_text(yaml.safe_dump(rules))
    tree = render_kubernetes(make_settings(), assets=tmp_path)
    rule = next(o for o in tree.manifests() if o["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == rules["groups"]
    assert crd_validate(rule) == []


def test_a_typo_deep_in_a_workflow_step_is_rejected(crd_validate: Any,
                                                    rendered: Rendered) -> None:
    cron = copy.deepcopy(next(o for o in rendered.manifests() if o["kind"] == "CronWorkflow"
                              and "templates" in o["spec"]["workflowSpec"]))
    step = next(t for t in cron["spec"]["workflowSpec"]["templates"] if "container" in t)
    step["outputs"] = {"parameters": [{"name": "x", "valueFrom": {"pathh": "/tmp/x"}}]}
    assert any("pathh" in e for e in crd_validate(cron))
    cron["spec"]["workflowSpec"]["synchronization"] = {"mutex": {"name": "x"}}  # pre-3.6 form
    assert any("mutex" in e for e in crd_validate(cron))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_environments_build_with_kustomize_and_stay_valid(crd_validate: Any,
                                                          rendered_tree: Rendered,
                                                          tmp_path: Path, environment: str,
                                                          is_core: Any) -> None:
    write_rendered(rendered_tree, tmp_path)
    built = _kustomize(tmp_path, environment)
    part = rendered_tree.environment(environment)
    assert len(built) == len([o for o in part.manifests()
                              if o["kind"] not in ("Application", "AppProject")])
    for obj in built:
        assert obj["metadata"]["labels"]["finmlops.io/environment"] == environment
        errors = [_core_errors(obj)] if is_core(obj) else crd_validate(obj)
        assert [e for e in errors if e] == [], obj["kind"]
    hpa = next(o for o in built if o["kind"] == "HorizontalPodAutoscaler")
    crons = {o["metadata"]["name"]: o for o in built if o["kind"] == "CronWorkflow"}
    ledger = next(o for o in built if o["kind"] == "Cluster")["spec"]
    images = {c["image"] for o in built if o["kind"] == "Deployment"
              for c in o["spec"]["template"]["spec"]["containers"]}
    if environment == "dev":
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)
        assert all(c["spec"].get("suspend") is True for c in crons.values())
        # One PostgreSQL instance, and so no standby for commits to wait for.
        assert ledger["instances"] == 1 and "synchronous" not in ledger["postgresql"]
        assert images == {"ghcr.io/finmlops/finmlops:0.1.0-dev",
                          "ghcr.io/finmlops/finmlops-mlflow:0.1.0-dev"}
    else:
        assert hpa["spec"]["minReplicas"] == 2
        assert not any("suspend" in c["spec"] for c in crons.values())
        assert ledger["instances"] == 3 and ledger["postgresql"]["synchronous"]["number"] == 1
        assert images == {"ghcr.io/finmlops/finmlops:0.1.0",
                          "ghcr.io/finmlops/finmlops-mlflow:0.1.0"}


def _kustomize(root: Path, environment: str) -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(root / "environments" / environment)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]
