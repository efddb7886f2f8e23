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
``predict`` gets the inference token, only ``decide`` the git token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from finmlops.config import Settings
from finmlops.deploy._k8s import (
    INFERENCE_CLIENT,
    LEDGER_CLIENT,
    OUTPUTS_DIR,
    PROMOTION_CONFIG_MAP,
    PROMOTION_DIR,
    PROMOTION_FILE,
    TOKEN_KEY,
    WORKFLOW_SA,
    Manifest,
    app_env,
    app_volume_mounts,
    app_volumes,
    container_security_context,
    labels,
    ledger_env,
    meta,
    namespace,
    pod_security_context,
    resources,
    s3_endpoint,
    secret_env,
    service_url,
)
from finmlops.deploy._yaml import dump_one

DATA_TEMPLATE = "finmlops-data"
TRAINING_TEMPLATE = "finmlops-training"
PROMOTION_TEMPLATE = "finmlops-promotion"
PROMOTION_HOOK = "finmlops-promotion-sync"
DAILY_CRON = "finmlops-daily"
RETRAIN_CRON = "finmlops-retrain"
REGISTRY_MUTEX = "finmlops-registry"
"""Held by every workflow that moves registry aliases (training, promotion)."""
ARTIFACT_REPOSITORIES = "artifact-repositories"
ARTIFACT_KEY = "finmlops"
FAILURE_METRIC = "finmlops_workflow_failures"
"""A counter (Argo prefixes custom metrics with ``argo_workflows_``)."""
SEARCH_TEMPLATE = "finmlops-search"
SEARCH_STORAGE_KEY = "url"
"""Key of ``deploy.search_secret``: the Optuna storage URL every search worker shares."""

USER_ERROR_EXIT_CODES = (2, 3, 6, 7, 9)
"""ConfigError, DataValidationError, ModelNotFoundError, BadRequestError, StageError."""
RETRY_EXPRESSION = (
    f"!(asInt(lastRetry.exitCode) in [{', '.join(map(str, USER_ERROR_EXIT_CODES))}])")

SMALL = resources("250m", "512Mi", "1", "1Gi")
TRAINING = resources("2", "4Gi", "4", "8Gi")

HOME_VOLUME = "home"
"""The name of the ``FINMLOPS_HOME`` volume in ``app_volumes``/``app_volume_mounts``."""
SHARED_HOME_SIZE = "2Gi"
"""The per-workflow shared home: the feature matrix, the models and their OOS predictions."""
PROMOTION_VOLUME = "promotion"

TODAY = ("{{workflow.creationTimestamp.Y}}-{{workflow.creationTimestamp.m}}"
         "-{{workflow.creationTimestamp.d}}")
"""The workflow's creation date (UTC): the daily job's as-of date and its data's end."""
LATEST = "latest"

OUT = ["--outputs", OUTPUTS_DIR]
_DV = "{{inputs.parameters.dataset_version}}"

# The command line of each step (after ``finmlops``); one table, so the CLI contract the
# cluster relies on is visible in one place (tests/deploy check each one against the CLI).
COMMANDS: dict[str, list[str]] = {
    "ingest": [*OUT, "ingest", "--tickers", "{{workflow.parameters.tickers}}",
               "--start", "{{workflow.parameters.start}}", "--end", "{{workflow.parameters.end}}"],
    "validate": [*OUT, "data", "validate", _DV, "--as-of", "{{workflow.parameters.as_of}}"],
    "features": [*OUT, "features", "--dataset-version", "{{workflow.parameters.dataset_version}}"],
    "train": [*OUT, "train", "--variant", "{{inputs.parameters.variant}}"],
    "evaluate": [*OUT, "evaluate"],
    "register": [*OUT, "register"],
    "publish": [*OUT, "models", "publish"],
    "predict": [*OUT, "predict", "--url", "{{workflow.parameters.service_url}}",
                "--dataset", _DV, "--since", "{{workflow.parameters.since}}"],
    "feedback": [*OUT, "abtest", "feedback", "--ledger", "--dataset", _DV,
                 "--since", "{{workflow.parameters.since}}"],
    "drift": [*OUT, "monitor", "drift", "--model", "champion", "--dataset", _DV],
    "decide": [*OUT, "abtest", "decide", "--apply", "--actor", "argo:{{workflow.name}}"],
    "apply": [*OUT, "promotion", "apply", "--file", f"{PROMOTION_DIR}/{PROMOTION_FILE}",
              "--actor", "argo:{{workflow.name}}"],
    "search": ["search", "--trials", "{{workflow.parameters.trials_per_worker}}"],
    "search-summary": ["search", "--trials", "0"],
    "report-failure": ["deploy", "report-failure", "--workflow", "{{workflow.name}}",
                       "--status", "{{workflow.status}}", "--failures", "{{workflow.failures}}"],
}
LEDGER_STEPS = frozenset({"feedback", "decide", "apply"})
"""The steps whose command reads or writes ``ledger.url``: they get ``FINMLOPS_LEDGER_URL``
and the ``LEDGER_CLIENT`` label the NetworkPolicies admit to the database."""
INFERENCE_STEPS = frozenset({"predict"})
"""The steps that call the service: the inference token and the ``INFERENCE_CLIENT`` label."""
GIT_STEPS = frozenset({"decide"})
"""The steps that push to the config repository: the git token."""
SEARCH_STEPS = frozenset({"search", "search-summary"})
"""The steps of a universe search: they share one Optuna study through its storage URL."""


@dataclass(frozen=True)
class StepSpec:
    """One ``finmlops <command>`` container template."""

    name: str
    res: Manifest
    deadline: int
    inputs: Sequence[str] = ()
    outputs: Sequence[str] = ()
    """Output parameters, each read from ``/tmp/outputs/<name>``."""
    artifacts: Sequence[str] = ()
    """Output artifacts, each a file ``/tmp/outputs/<name>`` uploaded as it is."""
    mounts: Sequence[Manifest] = field(default_factory=tuple)


def _models() -> Any:
    from hera.workflows import models

    return models


def _env(settings: Settings, name: str) -> list[Manifest]:
    env = list(app_env(settings))
    if name in LEDGER_STEPS:
        env.append(ledger_env(settings))
    if name in INFERENCE_STEPS:
        env.append(secret_env("FINMLOPS_INFERENCE_TOKEN",
                              settings.deploy.inference_token_secret, TOKEN_KEY))
    if name in GIT_STEPS:
        env.append(secret_env("FINMLOPS_GITOPS__TOKEN", settings.deploy.git_secret, TOKEN_KEY))
    if name in SEARCH_STEPS:
        env.append(secret_env("FINMLOPS_UNIVERSE__SEARCH__STORAGE",
                              settings.deploy.search_secret, SEARCH_STORAGE_KEY))
    return env


def _labels(name: str) -> dict[str, str] | None:
    out = {**(LEDGER_CLIENT if name in LEDGER_STEPS else {}),
           **(INFERENCE_CLIENT if name in INFERENCE_STEPS else {})}
    return out or None


def _step(settings: Settings, spec: StepSpec, *, image: str | None = None,
          metrics: Any = None) -> Any:
    """A container template with the restricted security context and its outputs."""
    from hera.workflows import Artifact, Container, Parameter, RetryStrategy

    m = _models()
    outputs: list[Any] = [
        Parameter(name=o, value_from=m.ValueFrom(path=f"{OUTPUTS_DIR}/{o}"))
        for o in spec.outputs]
    outputs += [Artifact(name=a.replace(".", "-"), path=f"{OUTPUTS_DIR}/{a}",
                         archive=m.ArchiveStrategy(none=m.NoneStrategy()))
                for a in spec.artifacts]
    return Container(
        name=spec.name,
        image=image or settings.deploy.training_image,
        image_pull_policy="IfNotPresent",
        command=["finmlops"],
        args=COMMANDS[spec.name],
        inputs=[Parameter(name=i) for i in spec.inputs] or None,
        outputs=outputs or None,
        labels=_labels(spec.name),
        env=[m.EnvVar.model_validate(e) for e in _env(settings, spec.name)],
        resources=m.ResourceRequirements.model_validate(spec.res),
        security_context=m.SecurityContext.model_validate(container_security_context()),
        volume_mounts=[m.VolumeMount.model_validate(v)
                       for v in (*app_volume_mounts(), *spec.mounts)],
        active_deadline_seconds=spec.deadline,
        metrics=metrics,
        retry_strategy=RetryStrategy(
            limit=3, expression=RETRY_EXPRESSION,
            backoff=m.Backoff(duration="30s", factor=2, max_duration="30m")),
    )


def _exit_handler(settings: Settings, template: str) -> None:
    """``exit-handler``: when the workflow did not succeed, ``report-failure`` prints one line
    naming the failed steps and counts the failure (``finmlops_workflow_failures``)."""
    from hera.workflows import Steps

    m = _models()
    metric = m.Metrics(prometheus=[m.Prometheus(
        name=FAILURE_METRIC, help="finmlops workflows that did not succeed",
        labels=[m.MetricLabel(key="template", value=template),
                m.MetricLabel(key="workflow_namespace", value="{{workflow.namespace}}"),
                m.MetricLabel(key="status", value="{{workflow.status}}")],
        counter=m.Counter(value="1"))])
    report = _step(settings, StepSpec("report-failure", SMALL, 300), metrics=metric)
    with Steps(name="exit-handler"):
        report(name="report-failure", when="{{workflow.status}} != Succeeded")


def shared_home_claim() -> Manifest:
    """The workflow-scoped claim mounted as ``FINMLOPS_HOME`` in every step. ReadWriteOnce
    works on any cluster but makes the workflow's pods schedule onto one node; a class with
    ReadWriteMany (storageClassName left unset: the cluster default) spreads them."""
    return {
        "metadata": {"name": HOME_VOLUME},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": SHARED_HOME_SIZE}}},
    }


def _workflow_kwargs(settings: Settings, component: str, deadline: int,
                     parameters: dict[str, str], *, shared_home: bool = False,
                     mutex: bool = False, extra_volumes: Sequence[Manifest] = ()
                     ) -> dict[str, Any]:
    """Workflow-level fields; ``shared_home`` replaces each pod's emptyDir ``FINMLOPS_HOME``
    with one claim for the whole workflow (for steps that pass the run state on)."""
    from hera.workflows import Parameter

    m = _models()
    volumes = [v for v in app_volumes() if not (shared_home and v["name"] == HOME_VOLUME)]
    extra: dict[str, Any] = {}
    if shared_home:
        extra = {
            "volume_claim_templates": [m.PersistentVolumeClaim.model_validate(
                shared_home_claim())],
            "volume_claim_gc": m.VolumeClaimGC(strategy="OnWorkflowCompletion"),
        }
    if mutex:
        extra["synchronization"] = m.Synchronization(mutexes=[m.Mutex(name=REGISTRY_MUTEX)])
    return {
        "namespace": namespace(settings, "pipelines"),
        "labels": labels(component),
        "entrypoint": "main",
        "on_exit": "exit-handler",
        "service_account_name": WORKFLOW_SA,
        "active_deadline_seconds": deadline,
        "security_context": m.PodSecurityContext.model_validate(pod_security_context()),
        "volumes": [m.Volume.model_validate(v) for v in (*volumes, *extra_volumes)],
        **extra,
        "artifact_repository_ref": m.ArtifactRepositoryRef(config_map=ARTIFACT_REPOSITORIES,
                                                           key=ARTIFACT_KEY),
        "pod_gc": m.PodGC(strategy="OnPodSuccess"),
        "ttl_strategy": m.TTLStrategy(seconds_after_completion=7 * 24 * 3600),
        "pod_metadata": m.Metadata(labels=labels(component)),
        "arguments": [Parameter(name=k, value=v) for k, v in parameters.items()],
    }


def _dag_outputs(**params: str) -> list[Any]:
    from hera.workflows import Parameter

    m = _models()
    return [Parameter(name=k, value_from=m.ValueFrom(parameter=v)) for k, v in params.items()]


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
    return _step(settings, INGEST), _step(settings, VALIDATE)


def _version_of(task: str) -> dict[str, str]:
    return {"dataset_version": f"{{{{tasks.{task}.outputs.parameters.dataset_version}}}}"}


def data_template(settings: Settings) -> Manifest:
    """Ingest then validate (freshness, calendar gaps, value ranges: what ingest does not
    check); ``tickers``, ``start``, ``end`` and ``as_of`` are parameters (today by
    default); the validated dataset version is the workflow's output."""
    from hera.workflows import DAG, WorkflowTemplate

    with WorkflowTemplate(name=DATA_TEMPLATE,
                          **_workflow_kwargs(settings, "pipelines", 2 * 3600,
                                             _data_parameters(settings))) as wt:
        ingest, validate = _ingest_and_validate(settings)
        _exit_handler(settings, DATA_TEMPLATE)
        with DAG(name="main", outputs=_dag_outputs(
                dataset_version="{{tasks.validate.outputs.parameters.dataset_version}}")):
            ingest() >> validate(arguments=_version_of("ingest"))
    return _to_dict(wt)


def training_template(settings: Settings) -> Manifest:
    """Pin ``dataset_version`` (``latest``: the newest in the store, resolved and recorded)
    and build the features once, train every variant in parallel (``withParam`` over a JSON
    list), evaluate all of them, register the models in MLflow and publish the new versions
    as Triton repositories. The steps share one ``FINMLOPS_HOME``
    (:func:`shared_home_claim`): each train pod merges its variant into the run state, which
    evaluate and register then read."""
    from hera.workflows import DAG, WorkflowTemplate

    params = {"dataset_version": LATEST, "variants": json.dumps(sorted(settings.train.variants))}
    with WorkflowTemplate(name=TRAINING_TEMPLATE,
                          **_workflow_kwargs(settings, "pipelines", 12 * 3600, params,
                                             shared_home=True, mutex=True)) as wt:
        features = _step(settings, StepSpec("features", SMALL, 3600,
                                            outputs=("dataset_version",)))
        train = _step(settings, StepSpec("train", TRAINING, 6 * 3600, inputs=("variant",),
                                         outputs=("run_id",)))
        evaluate = _step(settings, StepSpec("evaluate", TRAINING, 2 * 3600,
                                            artifacts=("evaluation.json",)))
        register = _step(settings, StepSpec("register", SMALL, 1800,
                                            outputs=("registered", "versions")))
        publish = _step(settings, StepSpec("publish", SMALL, 1800, outputs=("published",)))
        _exit_handler(settings, TRAINING_TEMPLATE)
        with DAG(name="main", outputs=_dag_outputs(
                dataset_version="{{tasks.features.outputs.parameters.dataset_version}}",
                run_ids="{{tasks.train.outputs.parameters.run_id}}",
                registered="{{tasks.register.outputs.parameters.registered}}")):
            (features()
             >> train(name="train", arguments={"variant": "{{item}}"},
                      with_param="{{workflow.parameters.variants}}")
             >> evaluate() >> register() >> publish())
    return _to_dict(wt)


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
                      **_workflow_kwargs(settings, "pipelines", 4 * 3600, params)) as cw:
        ingest, validate = _ingest_and_validate(settings)
        predict = _step(settings, StepSpec("predict", SMALL, 1800, inputs=("dataset_version",),
                                           outputs=("predicted",),
                                           artifacts=("predictions.json",)))
        feedback = _step(settings, StepSpec("feedback", SMALL, 1800,
                                            inputs=("dataset_version",)))
        drift = _step(settings, StepSpec("drift", SMALL, 1800, inputs=("dataset_version",),
                                         outputs=("alarm",), artifacts=("drift.json",)))
        decide = _step(settings, StepSpec("decide", SMALL, 1800,
                                          outputs=("action", "change"),
                                          artifacts=("decision.json",)))
        retrain = Resource(name="retrain", action="create",
                           manifest=dump_one(_training_run(settings, "drift")),
                           inputs=[Parameter(name="dataset_version")],
                           outputs=[Parameter(name="workflow", value_from=_models().ValueFrom(
                               json_path="{.metadata.name}"))])
        _exit_handler(settings, DAILY_CRON)
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
    return _to_dict(cw)


def retrain_cron(settings: Settings) -> Manifest:
    """``finmlops-training`` on ``deploy.retrain_schedule`` over the newest dataset version
    (the mutex queues it behind a drift retraining or a promotion in progress)."""
    from hera.workflows import CronWorkflow, Parameter

    m = _models()
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
    return _to_dict(cw)


def promotion_template(settings: Settings) -> Manifest:
    """``finmlops promotion apply`` on the mounted ``finmlops-promotion`` ConfigMap: moves
    the aliases it declares and puts its weights in force as a ledger version (idempotent:
    a record already in force changes nothing)."""
    from hera.workflows import DAG, WorkflowTemplate

    volume = {"name": PROMOTION_VOLUME, "configMap": {"name": PROMOTION_CONFIG_MAP}}
    mount = {"name": PROMOTION_VOLUME, "mountPath": PROMOTION_DIR, "readOnly": True}
    with WorkflowTemplate(name=PROMOTION_TEMPLATE,
                          **_workflow_kwargs(settings, "pipelines", 3600, {}, mutex=True,
                                             extra_volumes=[volume])) as wt:
        apply = _step(settings, StepSpec("apply", SMALL, 1800, outputs=("changed",),
                                         mounts=(mount,)))
        _exit_handler(settings, PROMOTION_TEMPLATE)
        with DAG(name="main"):
            apply()
    out = _to_dict(wt)
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
                          **_workflow_kwargs(settings, "pipelines", 24 * 3600, params)) as wt:
        search = _step(settings, StepSpec("search", TRAINING, 12 * 3600, inputs=("worker",)))
        summary = _step(settings, StepSpec("search-summary", TRAINING, 2 * 3600))
        _exit_handler(settings, SEARCH_TEMPLATE)
        with DAG(name="main"):
            (search(name="search", arguments={"worker": "{{item}}"},
                    with_param="{{workflow.parameters.workers}}")
             >> summary())
    return _to_dict(wt)


def _to_dict(workflow: Any) -> Manifest:
    out: Manifest = workflow.to_dict()
    spec = out["spec"].get("workflowSpec", out["spec"])
    # Hera leaves inputs: {} on templates without inputs in some versions; keep output minimal.
    for t in spec.get("templates", []):
        if t.get("inputs") == {}:
            del t["inputs"]
    return out


def workflow_objects(settings: Settings) -> list[Manifest]:
    return [data_template(settings), training_template(settings), daily_cron(settings),
            retrain_cron(settings), promotion_template(settings), search_template(settings)]
