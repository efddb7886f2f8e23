"""Argo Workflows, built with Hera: the cluster loop from data to promotion.

- ``finmlops-data``: ingest → validate; outputs the dataset version.
- ``finmlops-training``: pin a dataset version → train each variant (in parallel) → evaluate
  → register → publish; outputs the dataset version, the run ids, the registered versions
  and ``evaluation.json``. A ``synchronization`` mutex keeps two trainings (and a promotion)
  from moving registry aliases at once.
- ``finmlops-daily`` (CronWorkflow, after the close): ingest → validate → predict (the day's
  signal through the service, so it enters the ledger as experiment traffic) → feedback
  (outcomes now known) → drift, which gates: no alarm → decide (``--apply``: a GitOps
  change), an alarm → a ``finmlops-training`` run on the day's dataset version.
- ``finmlops-retrain`` (CronWorkflow): the same training on a schedule.
- ``finmlops-promotion``: makes the registry and the ledger match the environment's
  promotion record (run by Argo CD after each sync).

Every step runs the image's ``finmlops <command>`` with the same settings file as the laptop
(a mounted ConfigMap); data and artifacts go to S3/MinIO and MLflow, credentials come from
Secret references. ``finmlops --outputs /tmp/outputs`` writes each output of a step as a file
that Argo reads as an output parameter (or uploads as an artifact to the artifact repository,
see :func:`artifact_repository`). Steps retry with exponential backoff, except on exit codes
that mean the user must fix something (bad config or data, unknown model), where a retry
cannot help. Every workflow's ``onExit`` handler reports a failure: one readable line in its
log and the ``finmlops_workflow_failures`` counter an alert watches.

Only the steps that read or write the experiment ledger get its DSN (``LEDGER_STEPS``), only
``predict`` gets the inference token, only ``decide`` the git token. Those rules, the command
table and the container template every step is built from live in
:mod:`finmlops.deploy._steps`; this module holds the workflows themselves.
"""

from __future__ import annotations

import json
from typing import Any

from finmlops.config import Settings
from finmlops.deploy._k8s import (
    PROMOTION_CONFIG_MAP,
    PROMOTION_DIR,
    Manifest,
    labels,
    meta,
    namespace,
    s3_endpoint,
    service_url,
)
from finmlops.deploy._steps import (
    ARTIFACT_KEY,
    ARTIFACT_REPOSITORIES,
    COMMANDS,
    FAILURE_METRIC,
    GIT_STEPS,
    INFERENCE_STEPS,
    LEDGER_STEPS,
    REGISTRY_MUTEX,
    SHARED_HOME_SIZE,
    SMALL,
    TRAINING,
    USER_ERROR_EXIT_CODES,
    StepSpec,
    dag_outputs,
    exit_handler,
    hera_models,
    step,
    to_dict,
    workflow_kwargs,
)
from finmlops.deploy._yaml import dump_one

__all__ = [
    "ARTIFACT_KEY",
    "ARTIFACT_REPOSITORIES",
    "COMMANDS",
    "DAILY_CRON",
    "DATA_TEMPLATE",
    "FAILURE_METRIC",
    "GIT_STEPS",
    "INFERENCE_STEPS",
    "LATEST",
    "LEDGER_STEPS",
    "PROMOTION_HOOK",
    "PROMOTION_TEMPLATE",
    "REGISTRY_MUTEX",
    "RETRAIN_CRON",
    "SEARCH_TEMPLATE",
    "SHARED_HOME_SIZE",
    "TODAY",
    "TRAINING_TEMPLATE",
    "USER_ERROR_EXIT_CODES",
    "artifact_repository",
    "daily_cron",
    "data_template",
    "promotion_hook",
    "promotion_template",
    "retrain_cron",
    "search_template",
    "training_template",
]

DATA_TEMPLATE = "finmlops-data"
TRAINING_TEMPLATE = "finmlops-training"
PROMOTION_TEMPLATE = "finmlops-promotion"
PROMOTION_HOOK = "finmlops-promotion-sync"
DAILY_CRON = "finmlops-daily"
RETRAIN_CRON = "finmlops-retrain"
SEARCH_TEMPLATE = "finmlops-search"

PROMOTION_VOLUME = "promotion"

TODAY = ("{{workflow.creationTimestamp.Y}}-{{workflow.creationTimestamp.m}}"
         "-{{workflow.creationTimestamp.d}}")
"""The workflow's creation date (UTC): the daily job's as-of date and its data's end."""
LATEST = "latest"


def _data_parameters(settings: Settings) -> dict[str, str]:
    return {"tickers": ",".join(settings.data.tickers),
            "start": settings.data.start.isoformat(),
            "end": settings.data.end.isoformat() if settings.data.end else TODAY,
            "as_of": TODAY}


INGEST = StepSpec("ingest", SMALL, 3600, outputs=("dataset_version",))
VALIDATE = StepSpec("validate", SMALL, 600, inputs=("dataset_version",),
                    outputs=("dataset_version", "newest"))


def _ingest_and_validate(settings: Settings) -> tuple[Any, Any]:
    """The two first steps of the data workflow and of the daily job."""
    return step(settings, INGEST), step(settings, VALIDATE)


def _version_of(task: str) -> dict[str, str]:
    return {"dataset_version": f"{{{{tasks.{task}.outputs.parameters.dataset_version}}}}"}


def data_template(settings: Settings) -> Manifest:
    """Ingest then validate (freshness, calendar gaps, value ranges: what ingest does not
    check); ``tickers``, ``start``, ``end`` and ``as_of`` are parameters (today by
    default); the validated dataset version is the workflow's output."""
    from hera.workflows import DAG, WorkflowTemplate

    with WorkflowTemplate(name=DATA_TEMPLATE,
                          **workflow_kwargs(settings, "pipelines", 2 * 3600,
                                            _data_parameters(settings))) as wt:
        ingest, validate = _ingest_and_validate(settings)
        exit_handler(settings, DATA_TEMPLATE)
        with DAG(name="main", outputs=dag_outputs(
                dataset_version="{{tasks.validate.outputs.parameters.dataset_version}}")):
            ingest() >> validate(arguments=_version_of("ingest"))
    return to_dict(wt)


def training_template(settings: Settings) -> Manifest:
    """Pin ``dataset_version`` (``latest``: the newest in the store, resolved and recorded)
    and build the features once, train every variant in parallel (``withParam`` over a JSON
    list), evaluate all of them, register the models in MLflow and publish the new versions
    as Triton repositories. The steps share one ``FINMLOPS_HOME``
    (``_steps.shared_home_claim``): each train pod merges its variant into the run state, which
    evaluate and register then read."""
    from hera.workflows import DAG, WorkflowTemplate

    params = {"dataset_version": LATEST, "variants": json.dumps(sorted(settings.train.variants))}
    with WorkflowTemplate(name=TRAINING_TEMPLATE,
                          **workflow_kwargs(settings, "pipelines", 12 * 3600, params,
                                            shared_home=True, mutex=True)) as wt:
        features = step(settings, StepSpec("features", SMALL, 3600,
                                           outputs=("dataset_version",)))
        train = step(settings, StepSpec("train", TRAINING, 6 * 3600, inputs=("variant",),
                                        outputs=("run_id",)))
        evaluate = step(settings, StepSpec("evaluate", TRAINING, 2 * 3600,
                                           artifacts=("evaluation.json",)))
        register = step(settings, StepSpec("register", SMALL, 1800,
                                           outputs=("registered", "versions")))
        publish = step(settings, StepSpec("publish", SMALL, 1800, outputs=("published",)))
        exit_handler(settings, TRAINING_TEMPLATE)
        with DAG(name="main", outputs=dag_outputs(
                dataset_version="{{tasks.features.outputs.parameters.dataset_version}}",
                run_ids="{{tasks.train.outputs.parameters.run_id}}",
                registered="{{tasks.register.outputs.parameters.registered}}")):
            (features()
             >> train(name="train", arguments={"variant": "{{item}}"},
                      with_param="{{workflow.parameters.variants}}")
             >> evaluate() >> register() >> publish())
    return to_dict(wt)


def _training_run(settings: Settings, reason: str) -> Manifest:
    """The Workflow a drift alarm creates: ``finmlops-training`` on the day's dataset."""
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": f"{TRAINING_TEMPLATE}-{reason}-",
                     "namespace": namespace(settings, "pipelines"),
                     "labels": {**labels("pipelines"), "finmlops.io/trigger": reason}},
        "spec": {"workflowTemplateRef": {"name": TRAINING_TEMPLATE},
                 "arguments": {"parameters": [
                     {"name": "dataset_version",
                      "value": "{{inputs.parameters.dataset_version}}"}]}},
    }


def daily_cron(settings: Settings) -> Manifest:
    """Every trading day after the close: ingest and validate the day's bars, predict the
    day through the service (routing key ``TICKER:DATE``; ``since`` backfills missed days),
    write the outcomes now known into the ledger, check drift against the champion's
    training reference, then either decide the A/B test and hand the change to Git (no
    alarm), or start a retraining on the day's dataset (an alarm)."""
    from hera.workflows import DAG, CronWorkflow, Parameter, Resource

    d = settings.deploy
    params = {**_data_parameters(settings), "end": TODAY, "since": "",
              "service_url": service_url(settings)}
    with CronWorkflow(name=DAILY_CRON, schedules=[d.schedule], timezone=d.timezone,
                      concurrency_policy="Forbid", starting_deadline_seconds=3600,
                      successful_jobs_history_limit=3, failed_jobs_history_limit=5,
                      **workflow_kwargs(settings, "pipelines", 4 * 3600, params)) as cw:
        ingest, validate = _ingest_and_validate(settings)
        predict = step(settings, StepSpec("predict", SMALL, 1800, inputs=("dataset_version",),
                                          outputs=("predicted",),
                                          artifacts=("predictions.json",)))
        feedback = step(settings, StepSpec("feedback", SMALL, 1800,
                                           inputs=("dataset_version",)))
        drift = step(settings, StepSpec("drift", SMALL, 1800, inputs=("dataset_version",),
                                        outputs=("alarm",), artifacts=("drift.json",)))
        decide = step(settings, StepSpec("decide", SMALL, 1800,
                                         outputs=("action", "change"),
                                         artifacts=("decision.json",)))
        retrain = Resource(name="retrain", action="create",
                           manifest=dump_one(_training_run(settings, "drift")),
                           inputs=[Parameter(name="dataset_version")],
                           outputs=[Parameter(name="workflow",
                                              value_from=hera_models().ValueFrom(
                                                  json_path="{.metadata.name}"))])
        exit_handler(settings, DAILY_CRON)
        version = _version_of("validate")
        with DAG(name="main"):
            i, v = ingest(), validate(arguments=_version_of("ingest"))
            p = predict(arguments=version)
            f = feedback(arguments=version)
            g = drift(arguments=version)
            no_alarm = "{{tasks.drift.outputs.parameters.alarm}} == false"
            alarm = "{{tasks.drift.outputs.parameters.alarm}} == true"
            i >> v >> p >> f >> g >> [decide(when=no_alarm),
                                      retrain(when=alarm, arguments=version)]
    return to_dict(cw)


def retrain_cron(settings: Settings) -> Manifest:
    """``finmlops-training`` on ``deploy.retrain_schedule`` over the newest dataset version
    (the mutex queues it behind a drift retraining or a promotion in progress)."""
    from hera.workflows import CronWorkflow, Parameter

    m = hera_models()
    d = settings.deploy
    with CronWorkflow(name=RETRAIN_CRON, schedules=[d.retrain_schedule], timezone=d.timezone,
                      concurrency_policy="Forbid", starting_deadline_seconds=3600,
                      successful_jobs_history_limit=3, failed_jobs_history_limit=5,
                      namespace=namespace(settings, "pipelines"), labels=labels("pipelines"),
                      workflow_template_ref=m.WorkflowTemplateRef(name=TRAINING_TEMPLATE),
                      workflow_metadata=m.WorkflowMetadata(
                          labels={"finmlops.io/trigger": "schedule"}),
                      arguments=[Parameter(name="dataset_version", value=LATEST)]) as cw:
        pass
    return to_dict(cw)


def promotion_template(settings: Settings) -> Manifest:
    """``finmlops promotion apply`` on the mounted ``finmlops-promotion`` ConfigMap: moves
    the aliases it declares and puts its weights in force as a ledger version (idempotent:
    a record already in force changes nothing)."""
    from hera.workflows import DAG, WorkflowTemplate

    volume = {"name": PROMOTION_VOLUME, "configMap": {"name": PROMOTION_CONFIG_MAP}}
    mount = {"name": PROMOTION_VOLUME, "mountPath": PROMOTION_DIR, "readOnly": True}
    with WorkflowTemplate(name=PROMOTION_TEMPLATE,
                          **workflow_kwargs(settings, "pipelines", 3600, {}, mutex=True,
                                            extra_volumes=[volume])) as wt:
        apply = step(settings, StepSpec("apply", SMALL, 1800, outputs=("changed",),
                                        mounts=(mount,)))
        exit_handler(settings, PROMOTION_TEMPLATE)
        with DAG(name="main"):
            apply()
    out = to_dict(wt)
    out["spec"].pop("arguments", None)
    return out


def promotion_hook(settings: Settings) -> Manifest:
    """The Workflow Argo CD creates after every sync (a PostSync hook, replaced each time),
    which runs ``finmlops-promotion``."""
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": meta(PROMOTION_HOOK, namespace(settings, "pipelines"), "promotion",
                         annotations={"argocd.argoproj.io/hook": "PostSync",
                                      "argocd.argoproj.io/hook-delete-policy":
                                          "BeforeHookCreation"}),
        "spec": {"workflowTemplateRef": {"name": PROMOTION_TEMPLATE}},
    }


def artifact_repository(settings: Settings) -> Manifest:
    """Where output artifacts go: ``s3://<bucket>/argo-artifacts/<workflow>/<step pod>/`` on
    the environment's MinIO, with the application's S3 Secret."""
    endpoint = s3_endpoint(settings)
    scheme, _, host = endpoint.partition("://")
    repo = {"s3": {"bucket": settings.deploy.bucket, "endpoint": host.rstrip("/"),
                   "insecure": scheme == "http",
                   "keyFormat": "argo-artifacts/{{workflow.name}}/{{pod.name}}",
                   "accessKeySecret": {"name": settings.deploy.s3_secret,
                                       "key": "access-key-id"},
                   "secretKeySecret": {"name": settings.deploy.s3_secret,
                                       "key": "secret-access-key"}}}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(ARTIFACT_REPOSITORIES, namespace(settings, "pipelines"),
                             "pipelines", annotations={
                                 "workflows.argoproj.io/default-artifact-repository":
                                     ARTIFACT_KEY}),
            "data": {ARTIFACT_KEY: dump_one(repo)}}


def search_template(settings: Settings, workers: int = 4) -> Manifest:
    """A universe search fanned out: ``workers`` pods (``withParam`` over a JSON list) each
    run ``trials_per_worker`` trials of one Optuna study (its storage URL from
    ``deploy.search_secret``), every trial a child run in MLflow's trial ledger; then one
    step summarises every trial of the universe (DSR over all of them, PBO). The universe's
    bar files (``universe.files``) must be readable in the training image."""
    from hera.workflows import DAG, WorkflowTemplate

    per = max(1, -(-settings.universe.search.trials // workers))
    params = {"workers": json.dumps([str(i) for i in range(workers)]),
              "trials_per_worker": str(per)}
    with WorkflowTemplate(name=SEARCH_TEMPLATE,
                          **workflow_kwargs(settings, "pipelines", 24 * 3600, params)) as wt:
        search = step(settings, StepSpec("search", TRAINING, 12 * 3600, inputs=("worker",)))
        summary = step(settings, StepSpec("search-summary", TRAINING, 2 * 3600))
        exit_handler(settings, SEARCH_TEMPLATE)
        with DAG(name="main"):
            (search(name="search", arguments={"worker": "{{item}}"},
                    with_param="{{workflow.parameters.workers}}")
             >> summary())
    return to_dict(wt)
