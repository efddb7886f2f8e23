"""The Argo workflows' structure: the DAGs, lineage through outputs, the drift gate, the
mutex, exit handlers, artifacts, retries, deadlines, and S3/MLflow/ledger wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import pod_settings

from finmlops.deploy import Rendered, render_kubernetes
from finmlops.deploy._k8s import HOME, OUTPUTS_DIR
from finmlops.deploy.workflows import (
    ARTIFACT_KEY,
    ARTIFACT_REPOSITORIES,
    COMMANDS,
    DAILY_CRON,
    DATA_TEMPLATE,
    FAILURE_METRIC,
    LEDGER_STEPS,
    PROMOTION_HOOK,
    PROMOTION_TEMPLATE,
    REGISTRY_MUTEX,
    RETRAIN_CRON,
    SHARED_HOME_SIZE,
    TRAINING_TEMPLATE,
    USER_ERROR_EXIT_CODES,
)

DSN = "postgresql://finmlops:pw@finmlops-ledger-rw.finmlops-ledger.svc:5432/finmlops"
WORKFLOWS = (DATA_TEMPLATE, TRAINING_TEMPLATE, DAILY_CRON, PROMOTION_TEMPLATE)


def _obj(rendered: Rendered, name: str) -> dict[str, Any]:
    return next(o for o in rendered.manifests() if o["metadata"]["name"] == name
                and o["kind"] in ("WorkflowTemplate", "CronWorkflow", "Workflow"))


def _spec(rendered: Rendered, name: str) -> dict[str, Any]:
    obj = _obj(rendered, name)
    spec: dict[str, Any] = obj["spec"].get("workflowSpec", obj["spec"])
    return spec


def _templates(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in spec["templates"]}


def _dag(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (dag,) = [t["dag"] for t in spec["templates"] if t["name"] == spec["entrypoint"]]
    return {t["name"]: t for t in dag["tasks"]}


def _edges(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["depends"], t["name"]) for t in _dag(spec).values() if "depends" in t]


def test_dags_run_the_stages_in_order(rendered: Rendered) -> None:
    assert _edges(_spec(rendered, DATA_TEMPLATE)) == [("ingest", "validate")]
    assert _edges(_spec(rendered, TRAINING_TEMPLATE)) == [
        ("features", "train"), ("train", "evaluate"), ("evaluate", "register"),
        ("register", "publish")]
    assert _edges(_spec(rendered, DAILY_CRON)) == [
        ("ingest", "validate"), ("validate", "predict"), ("predict", "feedback"),
        ("feedback", "drift"), ("drift", "decide"), ("drift", "retrain")]
    assert list(_dag(_spec(rendered, PROMOTION_TEMPLATE))) == ["apply"]


def test_every_step_is_a_finmlops_command_with_retries_and_deadline(rendered: Rendered) -> None:
    for name in WORKFLOWS:
        spec = _spec(rendered, name)
        assert spec["activeDeadlineSeconds"] > 0
        for t in (t for t in spec["templates"] if "container" in t):
            assert t["container"]["command"] == ["finmlops"]
            assert t["container"]["args"] == COMMANDS[t["name"]]
            assert 0 < t["activeDeadlineSeconds"] <= spec["activeDeadlineSeconds"]
            retry = t["retryStrategy"]
            assert retry["limit"] == 3 and retry["backoff"]["factor"] == 2
            assert all(str(code) in retry["expression"] for code in USER_ERROR_EXIT_CODES)
            env = {e["name"]: e for e in t["container"]["env"]}
            assert env["FINMLOPS_DATA__STORE_URI"]["value"] == "s3://finmlops/store"
            assert env["FINMLOPS_TRACKING__URI"]["value"].startswith("http://mlflow.")
            assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
                "finmlops-s3")


def test_outputs_are_files_the_command_writes(rendered: Rendered) -> None:
    """Each output parameter is read from the file ``finmlops --outputs`` writes under its
    name, and only steps whose command line passes ``--outputs`` declare any."""
    seen = 0
    for name in WORKFLOWS:
        for t in _spec(rendered, name)["templates"]:
            if "container" not in t or "outputs" not in t:
                continue
            assert t["container"]["args"][:2] == ["--outputs", OUTPUTS_DIR], t["name"]
            for p in t["outputs"].get("parameters", []):
                assert p["valueFrom"] == {"path": f"{OUTPUTS_DIR}/{p['name']}"}
                seen += 1
            for a in t["outputs"].get("artifacts", []):
                assert a["path"].startswith(f"{OUTPUTS_DIR}/") and a["path"].endswith(".json")
                assert a["archive"] == {"none": {}}  # the JSON as it is, not a tarball
    assert seen >= 10


def test_lineage_runs_from_the_data_to_the_registry(rendered: Rendered) -> None:
    """The data workflow outputs the validated dataset version; training takes it as a
    parameter, pins it, and outputs it with the run ids and the registered versions."""
    data = _spec(rendered, DATA_TEMPLATE)
    tasks = _dag(data)
    assert tasks["validate"]["arguments"]["parameters"] == [
        {"name": "dataset_version",
         "value": "{{tasks.ingest.outputs.parameters.dataset_version}}"}]
    main = _templates(data)["main"]
    assert main["outputs"]["parameters"] == [
        {"name": "dataset_version",
         "valueFrom": {"parameter": "{{tasks.validate.outputs.parameters.dataset_version}}"}}]
    training = _spec(rendered, TRAINING_TEMPLATE)
    params = {p["name"]: p["value"] for p in training["arguments"]["parameters"]}
    assert params["dataset_version"] == "latest"
    assert COMMANDS["features"][-2:] == ["--dataset-version",
                                         "{{workflow.parameters.dataset_version}}"]
    outputs = {p["name"]: p["valueFrom"]["parameter"]
               for p in _templates(training)["main"]["outputs"]["parameters"]}
    assert outputs == {
        "dataset_version": "{{tasks.features.outputs.parameters.dataset_version}}",
        "run_ids": "{{tasks.train.outputs.parameters.run_id}}",
        "registered": "{{tasks.register.outputs.parameters.registered}}"}
    artifacts = [a["name"] for a in _templates(training)["evaluate"]["outputs"]["artifacts"]]
    assert artifacts == ["evaluation-json"]


def test_the_daily_job_pins_each_step_to_the_validated_version(rendered: Rendered) -> None:
    tasks = _dag(_spec(rendered, DAILY_CRON))
    validated = "{{tasks.validate.outputs.parameters.dataset_version}}"
    for step in ("predict", "feedback", "drift", "retrain"):
        assert tasks[step]["arguments"]["parameters"] == [
            {"name": "dataset_version", "value": validated}], step
    for step in ("predict", "feedback", "drift"):
        assert "{{inputs.parameters.dataset_version}}" in COMMANDS[step], step
    assert COMMANDS["drift"][-4:] == ["--model", "champion", "--dataset",
                                      "{{inputs.parameters.dataset_version}}"]
    templates = _templates(_spec(rendered, DAILY_CRON))
    assert [a["name"] for a in templates["predict"]["outputs"]["artifacts"]] == [
        "predictions-json"]


def test_drift_gates_the_decision_and_starts_a_retraining(rendered: Rendered) -> None:
    tasks = _dag(_spec(rendered, DAILY_CRON))
    assert tasks["decide"]["when"] == "{{tasks.drift.outputs.parameters.alarm}} == false"
    assert tasks["retrain"]["when"] == "{{tasks.drift.outputs.parameters.alarm}} == true"
    retrain = _templates(_spec(rendered, DAILY_CRON))["retrain"]
    assert retrain["resource"]["action"] == "create"
    run = yaml.safe_load(retrain["resource"]["manifest"])
    assert run["kind"] == "Workflow" and run["metadata"]["namespace"] == "finmlops-pipelines"
    assert run["metadata"]["generateName"] == f"{TRAINING_TEMPLATE}-drift-"
    assert run["spec"] == {
        "workflowTemplateRef": {"name": TRAINING_TEMPLATE},
        "arguments": {"parameters": [{"name": "dataset_version",
                                      "value": "{{inputs.parameters.dataset_version}}"}]}}
    # decide hands the change to Git (--apply with gitops on in the cluster config).
    assert COMMANDS["decide"][2:5] == ["abtest", "decide", "--apply"]


def test_retraining_is_also_scheduled(rendered: Rendered) -> None:
    cron = _obj(rendered, RETRAIN_CRON)
    assert cron["kind"] == "CronWorkflow"
    assert cron["spec"]["schedules"] == ["0 6 * * 6"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    spec = cron["spec"]["workflowSpec"]
    assert spec["workflowTemplateRef"] == {"name": TRAINING_TEMPLATE}
    assert spec["arguments"]["parameters"] == [{"name": "dataset_version", "value": "latest"}]


def test_registry_writers_share_one_mutex(rendered: Rendered) -> None:
    """Two trainings (scheduled and drift) or a training and a promotion never move the
    registry's aliases at once; the data and daily workflows take no lock."""
    for name in (TRAINING_TEMPLATE, PROMOTION_TEMPLATE):
        assert _spec(rendered, name)["synchronization"] == {
            "mutexes": [{"name": REGISTRY_MUTEX}]}, name
    for name in (DATA_TEMPLATE, DAILY_CRON):
        assert "synchronization" not in _spec(rendered, name), name


def test_every_workflow_reports_its_failure(rendered: Rendered) -> None:
    for name in WORKFLOWS:
        spec = _spec(rendered, name)
        assert spec["onExit"] == "exit-handler"
        templates = _templates(spec)
        ((step,),) = templates["exit-handler"]["steps"]
        assert step == {"name": "report-failure", "template": "report-failure",
                        "when": "{{workflow.status}} != Succeeded"}
        (metric,) = templates["report-failure"]["metrics"]["prometheus"]
        assert metric["name"] == FAILURE_METRIC and metric["counter"] == {"value": "1"}
        labels = {m["key"]: m["value"] for m in metric["labels"]}
        assert labels == {"template": name, "workflow_namespace": "{{workflow.namespace}}",
                          "status": "{{workflow.status}}"}


def test_artifacts_go_to_the_environments_minio(rendered: Rendered) -> None:
    cm = next(o for o in rendered.manifests() if o["kind"] == "ConfigMap"
              and o["metadata"]["name"] == ARTIFACT_REPOSITORIES)
    assert cm["metadata"]["annotations"] == {
        "workflows.argoproj.io/default-artifact-repository": ARTIFACT_KEY}
    repo = yaml.safe_load(cm["data"][ARTIFACT_KEY])["s3"]
    assert repo["endpoint"] == "minio.finmlops-pipelines.svc:9000" and repo["insecure"]
    assert repo["bucket"] == "finmlops"
    assert repo["accessKeySecret"] == {"name": "finmlops-s3", "key": "access-key-id"}
    for name in WORKFLOWS:
        assert _spec(rendered, name)["artifactRepositoryRef"] == {
            "configMap": ARTIFACT_REPOSITORIES, "key": ARTIFACT_KEY}


def test_the_promotion_runs_after_each_argo_cd_sync(rendered: Rendered) -> None:
    hook = _obj(rendered, PROMOTION_HOOK)
    assert hook["kind"] == "Workflow"
    assert hook["metadata"]["annotations"] == {
        "argocd.argoproj.io/hook": "PostSync",
        "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation"}
    assert hook["spec"] == {"workflowTemplateRef": {"name": PROMOTION_TEMPLATE}}
    spec = _spec(rendered, PROMOTION_TEMPLATE)
    apply = _templates(spec)["apply"]["container"]
    mounts = {m["mountPath"]: m for m in apply["volumeMounts"]}
    assert mounts["/etc/finmlops-promotion"]["readOnly"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mounts["/etc/finmlops-promotion"]["name"]]["configMap"] == {
        "name": "finmlops-promotion"}
    assert COMMANDS["apply"][2:6] == ["promotion", "apply", "--file",
                                      "/etc/finmlops-promotion/promotion.json"]


def test_cron_is_scheduled_in_its_timezone_without_overlap(rendered: Rendered) -> None:
    cron = _obj(rendered, DAILY_CRON)
    assert cron["spec"]["schedules"] == ["30 22 * * 1-5"]
    assert cron["spec"]["timezone"] == "America/New_York"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    params = {p["name"]: p["value"] for p in cron["spec"]["workflowSpec"]["arguments"]
              ["parameters"]}
    # No Prometheus URL: the job reads and writes the ledger, and predicts through the service.
    assert list(params) == ["tickers", "start", "end", "as_of", "since", "service_url"]
    assert params["end"] == params["as_of"]
    assert params["end"].startswith("{{workflow.creationTimestamp.Y}}")
    assert params["since"] == ""  # the newest day only; a backfill passes -p since=...
    assert params["service_url"] == "http://finmlops-serving.finmlops-inference.svc:8080"


def _home_volume(spec: dict[str, Any], template: dict[str, Any]) -> str:
    env = {e["name"]: e.get("value") for e in template["container"]["env"]}
    assert env["FINMLOPS_HOME"] == HOME
    (mount,) = [m for m in template["container"]["volumeMounts"] if m["mountPath"] == HOME]
    name: str = mount["name"]
    return name


def test_training_steps_share_one_home_claimed_per_workflow(rendered: Rendered) -> None:
    spec = _spec(rendered, TRAINING_TEMPLATE)
    steps = [t for t in spec["templates"] if "container" in t and t["name"] != "report-failure"]
    assert [t["name"] for t in steps] == ["features", "train", "evaluate", "register",
                                          "publish"]
    names = {_home_volume(spec, t) for t in steps}
    assert len(names) == 1  # one volume for every step, so state.json is shared
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] in names
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == SHARED_HOME_SIZE
    assert "storageClassName" not in claim["spec"]  # the cluster's default class
    assert spec["volumeClaimGC"] == {"strategy": "OnWorkflowCompletion"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert claim["metadata"]["name"] not in volumes  # not shadowed by an emptyDir
    assert "emptyDir" in volumes["tmp"] and "configMap" in volumes["config"]
    for t in steps:
        sc = t["container"]["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
    # fsGroup makes the claimed volume writable by the non-root user.
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"]


def test_workflows_that_pass_no_state_keep_pod_local_homes(rendered: Rendered) -> None:
    for name in (DATA_TEMPLATE, DAILY_CRON, PROMOTION_TEMPLATE):
        spec = _spec(rendered, name)
        assert "volumeClaimTemplates" not in spec
        volumes = {v["name"]: v for v in spec["volumes"]}
        for t in (t for t in spec["templates"] if "container" in t):
            assert "emptyDir" in volumes[_home_volume(spec, t)]


def test_training_fans_out_after_the_features_step(rendered: Rendered) -> None:
    tasks = _dag(_spec(rendered, TRAINING_TEMPLATE))
    assert "withParam" not in tasks["features"]
    assert tasks["train"]["withParam"] == "{{workflow.parameters.variants}}"
    assert COMMANDS["train"][2:] == ["train", "--variant", "{{inputs.parameters.variant}}"]
    assert COMMANDS["register"][2:] == ["register"]


def test_daily_feedback_and_decide_use_the_ledger(rendered: Rendered) -> None:
    """The cron pod writes outcomes by routing key straight into the ledger (the CLI computes
    them from the pinned dataset version) and decides from the ledger, which holds every
    pod's predictions."""
    spec = _spec(rendered, DAILY_CRON)
    args = {t["name"]: t["container"]["args"] for t in spec["templates"] if "container" in t}
    assert args["feedback"][2:5] == ["abtest", "feedback", "--ledger"]
    assert {"feedback", "decide", "apply"} == LEDGER_STEPS
    for t in (t for t in spec["templates"] if "container" in t):
        env = {e["name"]: e for e in t["container"]["env"]}
        if t["name"] in LEDGER_STEPS:
            assert env["FINMLOPS_LEDGER_URL"] == {"name": "FINMLOPS_LEDGER_URL", "valueFrom": {
                "secretKeyRef": {"name": "finmlops-ledger", "key": "url"}}}
            assert t["metadata"]["labels"] == {"finmlops.io/ledger-client": "true"}
        elif t["name"] == "predict":
            assert t["metadata"]["labels"] == {"finmlops.io/inference-client": "true"}
            assert "FINMLOPS_LEDGER_URL" not in env
        else:
            assert "FINMLOPS_LEDGER_URL" not in env, t["name"]
            assert "metadata" not in t, t["name"]


def _step_settings(rendered: Rendered, workflow: str, step: str, tmp: Path) -> Any:
    spec = _spec(rendered, workflow)
    (template,) = [t for t in spec["templates"] if t["name"] == step]
    config = next(o for o in rendered.manifests() if o["kind"] == "ConfigMap"
                  and o["metadata"]["name"] == "finmlops-config"
                  and o["metadata"]["namespace"].endswith("-pipelines"))
    secrets = {("finmlops-ledger", "url"): DSN, ("finmlops-s3", "access-key-id"): "k",
               ("finmlops-s3", "secret-access-key"): "s",
               ("finmlops-inference-token", "token"): "tok-i", ("finmlops-git", "token"): "g"}
    return pod_settings(template["container"], config, secrets, tmp)


def test_the_ledger_steps_load_the_dsn_and_no_service_token(rendered: Rendered,
                                                           tmp_path: Path) -> None:
    """What ``finmlops abtest feedback --ledger`` and ``decide`` read as ``ledger.url`` in the
    pod is the Secret's DSN, not a SQLite file in the pod's emptyDir."""
    for step in ("feedback", "decide"):
        settings = _step_settings(rendered, DAILY_CRON, step, tmp_path)
        assert settings.ledger_url == DSN
        assert settings.serve.tokens.feedback is None and settings.serve.tokens.admin is None
    apply = _step_settings(rendered, PROMOTION_TEMPLATE, "apply", tmp_path)
    assert apply.ledger_url == DSN and apply.gitops.token is None
    ingest = _step_settings(rendered, DAILY_CRON, "ingest", tmp_path)
    assert ingest.ledger.url is None
    assert ingest.store_uri == "s3://finmlops/store"


def test_the_cluster_ingests_from_a_network_source(rendered: Rendered, rendered_dev: Rendered,
                                                   tmp_path: Path) -> None:
    """bundled stays the local default; the pods ingest from deploy.source (Yahoo)."""
    for tree in (rendered, rendered_dev):
        ingest = _step_settings(tree, DAILY_CRON, "ingest", tmp_path)
        assert ingest.data.source == "yahoo"
    for source in ("stooq", "yahoo"):
        from finmlops.config import Settings

        tree = render_kubernetes(Settings(data={"source": "bundled"},
                                          deploy={"source": source})).environment("prod")
        assert _step_settings(tree, DAILY_CRON, "ingest", tmp_path).data.source == source


def test_predict_and_decide_get_their_tokens(rendered: Rendered, tmp_path: Path) -> None:
    predict = _step_settings(rendered, DAILY_CRON, "predict", tmp_path)
    assert predict.serve.tokens.inference is not None
    assert predict.serve.tokens.inference.get_secret_value() == "tok-i"
    assert predict.ledger.url is None
    decide = _step_settings(rendered, DAILY_CRON, "decide", tmp_path)
    assert decide.gitops.token is not None and decide.gitops.token.get_secret_value() == "g"
    assert decide.gitops.enabled and decide.gitops.environment == "prod"
    assert decide.gitops.review is True  # prod: a branch for review
    assert decide.gitops.repo == "https://github.com/finmlops/finmlops.git"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_environment_promotes_into_its_own_record(rendered_tree: Rendered, env: str,
                                                       tmp_path: Path) -> None:
    tree = rendered_tree.environment(env)
    decide = _step_settings(tree, DAILY_CRON, "decide", tmp_path)
    assert decide.gitops.environment == env
    assert decide.gitops.review is (env == "prod")
    assert f"environments/{env}/promotion.yaml" in tree.files()


def test_the_ledger_secret_name_follows_the_settings(make_settings: Any) -> None:
    tree = render_kubernetes(make_settings(FINMLOPS_DEPLOY__LEDGER_SECRET="acme-ledger-dsn"))
    refs = {e["valueFrom"]["secretKeyRef"]["name"]
            for o in tree.manifests()
            if o["kind"] in ("Deployment", "CronWorkflow", "WorkflowTemplate")
            for c in ([t["container"] for t in o["spec"].get("workflowSpec", o["spec"])
                       .get("templates", []) if "container" in t]
                      if o["kind"] != "Deployment"
                      else o["spec"]["template"]["spec"]["containers"])
            for e in c["env"] if e["name"] == "FINMLOPS_LEDGER_URL"}
    assert refs == {"acme-ledger-dsn"}
