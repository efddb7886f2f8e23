"""A change in configuration changes exactly the rendered fields it should, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finmlops.config import Settings
from finmlops.deploy import Rendered, render_kserve, render_kubernetes, render_seldon
from finmlops.deploy.workflows import (
    DAILY_CRON,
    DATA_TEMPLATE,
    RETRAIN_CRON,
    TRAINING_TEMPLATE,
)

HASH = "finmlops.io/config-hash"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, val in node.items()
                for k, v in _flatten(val, f"{prefix}/{key}").items()}
    if isinstance(node, list):
        return {k: v for i, val in enumerate(node)
                for k, v in _flatten(val, f"{prefix}/{i}").items()}
    return {prefix: node}


def _index(tree: Rendered) -> dict[str, Any]:
    """Every leaf of every object, keyed ``Kind/namespace/name/path``; the embedded
    ``finmlops.yaml`` is parsed so changes inside it show as individual keys."""
    out: dict[str, Any] = {}
    for o in tree.manifests():
        o = json.loads(json.dumps(o))
        if o["kind"] == "ConfigMap" and "finmlops.yaml" in o.get("data", {}):
            o["data"]["finmlops.yaml"] = yaml.safe_load(o["data"]["finmlops.yaml"])
        key = f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
        out.update(_flatten(o, key))
    return out


def _diff(a: Rendered, b: Rendered) -> set[str]:
    ia, ib = _index(a), _index(b)
    return {k for k in ia.keys() | ib.keys() if ia.get(k) != ib.get(k)}


def test_weights_change_only_the_experiment(default_settings: Settings, make_settings: Any,
                                            rendered: Rendered, rendered_seldon: Rendered,
                                            rendered_kserve: Rendered,
                                            pinned: dict[str, str]) -> None:
    changed = make_settings(
        FINMLOPS_EXPERIMENT__CANDIDATES='[{"name": "baseline", "weight": 50},'
                                        ' {"name": "enhanced", "weight": 50}]')
    isvc = "InferenceService/finmlops-inference/direction-ab/spec/predictor/canaryTrafficPercent"
    assert _diff(rendered_kserve, render_kserve(changed, pinned)) == {isvc}
    assert _diff(rendered_seldon, render_seldon(changed, pinned)) == {
        "Experiment/finmlops-inference/direction-ab/spec/candidates/0/weight",
        "Experiment/finmlops-inference/direction-ab/spec/candidates/1/weight"}
    cm = "ConfigMap/finmlops-{}/finmlops-config/data/finmlops.yaml/experiment/candidates/{}/weight"
    assert _diff(rendered, render_kubernetes(changed).environment("prod")) == {
        cm.format(ns, i) for ns in ("pipelines", "inference") for i in (0, 1)} | {
        f"Deployment/finmlops-inference/finmlops-serving/spec/template/metadata/annotations/{HASH}"}


def test_tickers_change_the_ingest_parameters_and_config(make_settings: Any,
                                                         rendered: Rendered) -> None:
    changed = make_settings(FINMLOPS_DATA__TICKERS="IBB,SPY,QQQ")
    diff = _diff(rendered, render_kubernetes(changed).environment("prod"))
    assert diff == {
        f"WorkflowTemplate/finmlops-pipelines/{DATA_TEMPLATE}/spec/arguments/parameters/0/value",
        f"CronWorkflow/finmlops-pipelines/{DAILY_CRON}/spec/workflowSpec/arguments/parameters/0/value",
        "ConfigMap/finmlops-pipelines/finmlops-config/data/finmlops.yaml/data/tickers/2",
        "ConfigMap/finmlops-inference/finmlops-config/data/finmlops.yaml/data/tickers/2",
        f"Deployment/finmlops-inference/finmlops-serving/spec/template/metadata/annotations/{HASH}",
    }
    cron = next(o for o in render_kubernetes(changed).environment("prod").manifests()
                if o["metadata"]["name"] == DAILY_CRON)
    assert cron["spec"]["workflowSpec"]["arguments"]["parameters"][0] == {
        "name": "tickers", "value": "IBB,SPY,QQQ"}


def test_schedule_changes_only_the_cron(make_settings: Any, rendered: Rendered,
                                        rendered_seldon: Rendered,
                                        pinned: dict[str, str]) -> None:
    changed = make_settings(FINMLOPS_DEPLOY__SCHEDULE="0 6 * * 2-6",
                            FINMLOPS_DEPLOY__TIMEZONE="Europe/London")
    assert _diff(rendered, render_kubernetes(changed).environment("prod")) == {
        f"CronWorkflow/finmlops-pipelines/{DAILY_CRON}/spec/schedules/0",
        f"CronWorkflow/finmlops-pipelines/{DAILY_CRON}/spec/timezone",
        # The scheduled retraining runs in the same timezone, on its own schedule.
        f"CronWorkflow/finmlops-pipelines/{RETRAIN_CRON}/spec/timezone"}
    assert _diff(rendered_seldon, render_seldon(changed, pinned)) == set()
    retrain = make_settings(FINMLOPS_DEPLOY__RETRAIN_SCHEDULE="0 3 1 * *")
    assert _diff(rendered, render_kubernetes(retrain).environment("prod")) == {
        f"CronWorkflow/finmlops-pipelines/{RETRAIN_CRON}/spec/schedules/0"}


def test_a_new_variant_fans_out_in_training(make_settings: Any) -> None:
    changed = make_settings(
        FINMLOPS_TRAIN__VARIANTS='{"baseline": {}, "enhanced": {}, "wide": {"window": 5}}')
    wt = next(o for o in render_kubernetes(changed).environment("prod").manifests()
              if o["metadata"]["name"] == TRAINING_TEMPLATE)
    params = {p["name"]: p["value"] for p in wt["spec"]["arguments"]["parameters"]}
    assert json.loads(params["variants"]) == ["baseline", "enhanced", "wide"]
    (task,) = [t for tpl in wt["spec"]["templates"] if "dag" in tpl
               for t in tpl["dag"]["tasks"] if t["name"] == "train"]
    assert task["withParam"] == "{{workflow.parameters.variants}}"


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(weights=st.lists(st.integers(0, 1000), min_size=2, max_size=2).filter(lambda w: sum(w)),
       mirror=st.none() | st.integers(0, 100))
def test_experiment_always_mirrors_the_settings(weights: list[int], mirror: int | None,
                                                pinned: dict[str, str]) -> None:
    data: dict[str, Any] = {"experiment": {
        "default": None,
        "candidates": [{"name": "baseline", "weight": weights[0]},
                       {"name": "enhanced", "weight": weights[1]}],
        "mirror": None if mirror is None else {"name": "enhanced", "percent": mirror}}}
    s = Settings(**data)
    objs = render_seldon(s, pinned).manifests()
    (exp,) = [o for o in objs if o["kind"] == "Experiment"]
    assert exp["spec"]["candidates"] == data["experiment"]["candidates"]
    assert exp["spec"].get("mirror") == data["experiment"]["mirror"]
    assert "default" not in exp["spec"]
    models = {o["metadata"]["name"]: (o["spec"]["storageUri"], o["spec"]["artifactVersion"])
              for o in objs if o["kind"] == "Model"}
    assert models == {n: (f"s3://finmlops/triton/ibb-direction/v{v}/ibb-direction", int(v))
                      for n, v in pinned.items()}


def test_secrets_in_the_settings_change_nothing_rendered(make_settings: Any,
                                                         rendered: Rendered) -> None:
    """Tokens and the ledger DSN live in Secrets: setting them locally neither leaks into the
    mounted configuration nor rolls the pods through the config hash."""
    changed = make_settings(FINMLOPS_INFERENCE_TOKEN="a", FINMLOPS_FEEDBACK_TOKEN="b",
                            FINMLOPS_ADMIN_TOKEN="c",
                            FINMLOPS_LEDGER_URL="postgresql://u:p@h:5432/d")
    assert _diff(rendered, render_kubernetes(changed).environment("prod")) == set()


def test_timeouts_change_the_serving_drain_only(make_settings: Any, rendered: Rendered) -> None:
    changed = make_settings(FINMLOPS_DEPLOY__PRESTOP_SLEEP_S="9")
    pod = "Deployment/finmlops-inference/finmlops-serving/spec/template/spec"
    assert _diff(rendered, render_kubernetes(changed).environment("prod")) == {
        f"{pod}/terminationGracePeriodSeconds",
        f"{pod}/containers/0/lifecycle/preStop/sleep/seconds"}
    slower = make_settings(FINMLOPS_LEDGER__WRITE_TIMEOUT_S="10")
    cm = "ConfigMap/finmlops-{}/finmlops-config/data/finmlops.yaml/ledger/write_timeout_s"
    assert _diff(rendered, render_kubernetes(slower).environment("prod")) == {
        f"{pod}/terminationGracePeriodSeconds", cm.format("pipelines"), cm.format("inference"),
        f"Deployment/finmlops-inference/finmlops-serving/spec/template/metadata/annotations/{HASH}"}
