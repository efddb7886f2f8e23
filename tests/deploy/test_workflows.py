"""The Argo workflows' structure: the DAGs, retries, deadlines, and S3/MLflow/ledger wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploy_support import pod_settings

from finmlops.deploy import Rendered, render_kubernetes
from finmlops.deploy._k8s import HOME
from finmlops.deploy.workflows import (
    COMMANDS,
    DAILY_CRON,
    DATA_TEMPLATE,
    LEDGER_STEPS,
    SHARED_HOME_SIZE,
    TRAINING_TEMPLATE,
    USER_ERROR_EXIT_CODES,
)

DSN = "postgresql://finmlops:pw@finmlops-ledger-rw.finmlops-ledger.svc:5432/finmlops"


def _spec(rendered: Rendered, name: str) -> dict[str, Any]:
    obj = next(o for o in rendered.manifests() if o["metadata"]["name"] == name
               and o["kind"] in ("WorkflowTemplate", "CronWorkflow"))
    spec: dict[str, Any] = obj["spec"].get("workflowSpec", obj["spec"])
    return spec


def _edges(spec: dict[str, Any]) -> list[tuple[str, str]]:
    (dag,) = [t["dag"] for t in spec["templates"] if t["name"] == spec["entrypoint"]]
    return [(t["depends"], t["name"]) for t in dag["tasks"] if "depends" in t]


def test_dags_run_the_stages_in_order(rendered: Rendered) -> None:
    assert _edges(_spec(rendered, DATA_TEMPLATE)) == [("ingest", "validate")]
    assert _edges(_spec(rendered, TRAINING_TEMPLATE)) == [("features", "train"),
                                                          ("train", "evaluate"),
                                                          ("evaluate", "register")]
    assert _edges(_spec(rendered, DAILY_CRON)) == [("ingest", "feedback"), ("feedback", "drift"),
                                                   ("drift", "decide")]


def test_every_step_is_a_finmlops_command_with_retries_and_deadline(rendered: Rendered) -> None:
    for name in (DATA_TEMPLATE, TRAINING_TEMPLATE, DAILY_CRON):
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


def test_cron_is_scheduled_in_its_timezone_without_overlap(rendered: Rendered) -> None:
    cron = next(o for o in rendered.manifests() if o["kind"] == "CronWorkflow")
    assert cron["spec"]["schedules"] == ["30 22 * * 1-5"]
    assert cron["spec"]["timezone"] == "America/New_York"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    params = {p["name"]: p["value"] for p in cron["spec"]["workflowSpec"]["arguments"]
              ["parameters"]}
    # No service URL, no Prometheus URL: the job reads and writes the ledger only.
    assert list(params) == ["tickers", "start", "end"]
    assert params["end"].startswith("{{workflow.creationTimestamp.Y}}")


def _home_volume(spec: dict[str, Any], template: dict[str, Any]) -> str:
    env = {e["name"]: e.get("value") for e in template["container"]["env"]}
    assert env["FINMLOPS_HOME"] == HOME
    (mount,) = [m for m in template["container"]["volumeMounts"] if m["mountPath"] == HOME]
    name: str = mount["name"]
    return name


def test_training_steps_share_one_home_claimed_per_workflow(rendered: Rendered) -> None:
    spec = _spec(rendered, TRAINING_TEMPLATE)
    steps = [t for t in spec["templates"] if "container" in t]
    assert [t["name"] for t in steps] == ["features", "train", "evaluate", "register"]
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
    for name in (DATA_TEMPLATE, DAILY_CRON):
        spec = _spec(rendered, name)
        assert "volumeClaimTemplates" not in spec
        volumes = {v["name"]: v for v in spec["volumes"]}
        for t in (t for t in spec["templates"] if "container" in t):
            assert "emptyDir" in volumes[_home_volume(spec, t)]


def test_training_fans_out_after_the_features_step(rendered: Rendered) -> None:
    spec = _spec(rendered, TRAINING_TEMPLATE)
    (dag,) = [t["dag"] for t in spec["templates"] if t["name"] == spec["entrypoint"]]
    tasks = {t["name"]: t for t in dag["tasks"]}
    assert "withParam" not in tasks["features"]
    assert tasks["train"]["withParam"] == "{{workflow.parameters.variants}}"
    assert COMMANDS["train"] == ["train", "--variant", "{{inputs.parameters.variant}}"]
    assert COMMANDS["features"] == ["run", "--until", "features"]
    assert COMMANDS["register"] == ["register"]


def test_daily_feedback_and_decide_use_the_ledger(rendered: Rendered) -> None:
    """The cron pod writes outcomes by routing key straight into the ledger (the CLI computes
    them from the store) and decides from the ledger, which holds every pod's predictions."""
    spec = _spec(rendered, DAILY_CRON)
    args = {t["name"]: t["container"]["args"] for t in spec["templates"] if "container" in t}
    assert args["feedback"] == ["abtest", "feedback", "--ledger"]
    assert args["decide"] == ["abtest", "decide"]
    assert "--apply" not in args["decide"]  # promotion stays a human decision
    assert {"feedback", "decide"} == LEDGER_STEPS
    for t in (t for t in spec["templates"] if "container" in t):
        env = {e["name"]: e for e in t["container"]["env"]}
        if t["name"] in LEDGER_STEPS:
            assert env["FINMLOPS_LEDGER_URL"] == {"name": "FINMLOPS_LEDGER_URL", "valueFrom": {
                "secretKeyRef": {"name": "finmlops-ledger", "key": "url"}}}
            assert t["metadata"]["labels"] == {"finmlops.io/ledger-client": "true"}
        else:
            assert "FINMLOPS_LEDGER_URL" not in env, t["name"]
            assert "metadata" not in t, t["name"]


def _daily_settings(rendered: Rendered, step: str, tmp: Path) -> Any:
    spec = _spec(rendered, DAILY_CRON)
    (template,) = [t for t in spec["templates"] if t["name"] == step]
    config = next(o for o in rendered.manifests() if o["kind"] == "ConfigMap"
                  and o["metadata"]["namespace"] == "finmlops-pipelines")
    secrets = {("finmlops-ledger", "url"): DSN, ("finmlops-s3", "access-key-id"): "k",
               ("finmlops-s3", "secret-access-key"): "s"}
    return pod_settings(template["container"], config, secrets, tmp)


def test_the_ledger_steps_load_the_dsn_and_no_token(rendered: Rendered, tmp_path: Path) -> None:
    """What ``finmlops abtest feedback --ledger`` and ``decide`` read as ``ledger.url`` in the
    pod is the Secret's DSN, not a SQLite file in the pod's emptyDir."""
    for step in sorted(LEDGER_STEPS):
        settings = _daily_settings(rendered, step, tmp_path)
        assert settings.ledger_url == DSN
        assert settings.ledger.url is not None
        assert settings.serve.tokens.feedback is None and settings.serve.tokens.admin is None
    ingest = _daily_settings(rendered, "ingest", tmp_path)
    assert ingest.ledger.url is None
    assert ingest.store_uri == "s3://finmlops/store"


def test_the_ledger_secret_name_follows_the_settings(make_settings: Any) -> None:
    tree = render_kubernetes(make_settings(FINMLOPS_DEPLOY__LEDGER_SECRET="acme-ledger-dsn"))
    refs = {e["valueFrom"]["secretKeyRef"]["name"]
            for o in tree.manifests() if o["kind"] in ("Deployment", "CronWorkflow")
            for c in ([t["container"] for t in o["spec"]["workflowSpec"]["templates"]
                       if "container" in t] if o["kind"] == "CronWorkflow"
                      else o["spec"]["template"]["spec"]["containers"])
            for e in c["env"] if e["name"] == "FINMLOPS_LEDGER_URL"}
    assert refs == {"acme-ledger-dsn"}
