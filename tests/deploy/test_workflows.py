"""The Argo workflows' structure: the DAGs, retries, deadlines, and S3/MLflow wiring."""

from __future__ import annotations

from typing import Any

from finmlops.deploy import Rendered
from finmlops.deploy._k8s import HOME
from finmlops.deploy.workflows import (
    COMMANDS,
    DAILY_CRON,
    DATA_TEMPLATE,
    SHARED_HOME_SIZE,
    TRAINING_TEMPLATE,
    USER_ERROR_EXIT_CODES,
)


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
    assert params["service-url"] == "http://finmlops-serving.finmlops-inference.svc:8080"
    feedback = next(t for t in cron["spec"]["workflowSpec"]["templates"]
                    if t["name"] == "feedback")
    assert any(e["name"] == "FINMLOPS_API_TOKEN" and "secretKeyRef" in e["valueFrom"]
               for e in feedback["container"]["env"])


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


def test_daily_feedback_and_decide_need_no_request_ids_and_no_local_log(
        rendered: Rendered) -> None:
    """The cron pod posts outcomes by routing key (the CLI computes them from the store) and
    decides from Prometheus: the service's counters over every replica, not a pod's own log."""
    spec = _spec(rendered, DAILY_CRON)
    params = {p["name"]: p["value"] for p in spec["arguments"]["parameters"]}
    assert params["prometheus-url"] == \
        "http://prometheus-operated.finmlops-monitoring.svc:9090"
    args = {t["name"]: t["container"]["args"] for t in spec["templates"] if "container" in t}
    assert args["feedback"] == ["abtest", "feedback", "--url",
                                "{{workflow.parameters.service-url}}"]
    assert args["decide"] == ["abtest", "decide", "--source", "prometheus",
                              "--prometheus-url", "{{workflow.parameters.prometheus-url}}"]
    assert "--apply" not in args["decide"]


def test_prometheus_url_follows_the_namespace_prefix(make_settings: Any) -> None:
    from finmlops.deploy.workflows import daily_cron

    cron = daily_cron(make_settings(FINMLOPS_DEPLOY__NAMESPACE_PREFIX="acme"))
    params = {p["name"]: p["value"] for p in cron["spec"]["workflowSpec"]["arguments"]
              ["parameters"]}
    assert params["prometheus-url"] == "http://prometheus-operated.acme-monitoring.svc:9090"
