"""Argo Workflows, built with Hera: the data pipeline, training, and the daily CronWorkflow.

Every step runs the image's ``finmlops <stage>`` command with the same settings file as the
laptop (a mounted ConfigMap); data and artifacts go to S3/MinIO and MLflow, credentials come
from Secret references. Steps retry with exponential backoff, except on exit codes that mean
the user must fix something (bad config or data, unknown model), where a retry cannot help.

Steps that hand results to later steps through the run state (``state.json`` and the
content-addressed cache under ``FINMLOPS_HOME``) share one ``FINMLOPS_HOME``: a volume claimed
per workflow (``volumeClaimTemplates``), deleted when the workflow completes.

Only the steps that read or write the experiment ledger get its DSN (``LEDGER_STEPS``); no
step gets a service token: the daily job writes outcomes into the ledger itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from finmlops.config import Settings
from finmlops.deploy._k8s import (
    LEDGER_CLIENT,
    WORKFLOW_SA,
    Manifest,
    app_env,
    app_volume_mounts,
    app_volumes,
    container_security_context,
    labels,
    ledger_env,
    namespace,
    pod_security_context,
    resources,
)

DATA_TEMPLATE = "finmlops-data"
TRAINING_TEMPLATE = "finmlops-training"
DAILY_CRON = "finmlops-daily"
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

_END_TODAY = ("{{workflow.creationTimestamp.Y}}-{{workflow.creationTimestamp.m}}"
              "-{{workflow.creationTimestamp.d}}")

# The command line of each step (after ``finmlops``); one table, so the CLI contract the
# cluster relies on is visible in one place (tests/deploy check each one against the CLI).
COMMANDS: dict[str, list[str]] = {
    "ingest": ["ingest", "--tickers", "{{workflow.parameters.tickers}}",
               "--start", "{{workflow.parameters.start}}", "--end", "{{workflow.parameters.end}}"],
    "validate": ["data", "list", "--json"],
    "features": ["run", "--until", "features"],
    "train": ["train", "--variant", "{{inputs.parameters.variant}}"],
    "evaluate": ["evaluate"],
    "register": ["register"],
    "feedback": ["abtest", "feedback", "--ledger"],
    "drift": ["monitor", "drift"],
    "decide": ["abtest", "decide"],
    "search": ["search", "--trials", "{{workflow.parameters.trials_per_worker}}"],
    "search-summary": ["search", "--trials", "0"],
}
LEDGER_STEPS = frozenset({"feedback", "decide"})
SEARCH_STEPS = frozenset({"search", "search-summary"})
"""The steps of a universe search: they share one Optuna study through its storage URL."""
"""The steps whose command reads or writes ``ledger.url``: they get ``FINMLOPS_LEDGER_URL``
and the ``LEDGER_CLIENT`` label the NetworkPolicies admit to the database."""


def _models() -> Any:
    from hera.workflows import models

    return models


def _step(settings: Settings, name: str, *, image: str, res: Manifest, deadline: int,
          inputs: Sequence[str] = ()) -> Any:
    """One ``finmlops <stage>`` container template with the restricted security context."""
    from hera.workflows import Container, Parameter, RetryStrategy

    m = _models()
    client = name in LEDGER_STEPS
    extra_env = [ledger_env(settings)] if client else []
    if name in SEARCH_STEPS:
        from finmlops.deploy._k8s import secret_env

        extra_env.append(secret_env("FINMLOPS_UNIVERSE__SEARCH__STORAGE",
                                    settings.deploy.search_secret, SEARCH_STORAGE_KEY))
    return Container(
        name=name,
        image=image,
        image_pull_policy="IfNotPresent",
        command=["finmlops"],
        args=COMMANDS[name],
        inputs=[Parameter(name=i) for i in inputs] or None,
        labels=dict(LEDGER_CLIENT) if client else None,
        env=[m.EnvVar.model_validate(e) for e in (*app_env(settings), *extra_env)],
        resources=m.ResourceRequirements.model_validate(res),
        security_context=m.SecurityContext.model_validate(container_security_context()),
        volume_mounts=[m.VolumeMount.model_validate(v) for v in app_volume_mounts()],
        active_deadline_seconds=deadline,
        retry_strategy=RetryStrategy(
            limit=3, expression=RETRY_EXPRESSION,
            backoff=m.Backoff(duration="30s", factor=2, max_duration="30m")),
    )


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
                     parameters: dict[str, str], *, shared_home: bool = False) -> dict[str, Any]:
    """Workflow-level fields; ``shared_home`` replaces each pod's emptyDir ``FINMLOPS_HOME``
    with one claim for the whole workflow (for steps that pass the run state on)."""
    from hera.workflows import Parameter

    m = _models()
    volumes = [v for v in app_volumes() if not (shared_home and v["name"] == HOME_VOLUME)]
    shared: dict[str, Any] = {}
    if shared_home:
        shared = {
            "volume_claim_templates": [m.PersistentVolumeClaim.model_validate(
                shared_home_claim())],
            "volume_claim_gc": m.VolumeClaimGC(strategy="OnWorkflowCompletion"),
        }
    return {
        "namespace": namespace(settings, "pipelines"),
        "labels": labels(component),
        "entrypoint": "main",
        "service_account_name": WORKFLOW_SA,
        "active_deadline_seconds": deadline,
        "security_context": m.PodSecurityContext.model_validate(pod_security_context()),
        "volumes": [m.Volume.model_validate(v) for v in volumes],
        **shared,
        "pod_gc": m.PodGC(strategy="OnPodSuccess"),
        "ttl_strategy": m.TTLStrategy(seconds_after_completion=7 * 24 * 3600),
        "pod_metadata": m.Metadata(labels=labels(component)),
        "arguments": [Parameter(name=k, value=v) for k, v in parameters.items()],
    }


def _data_parameters(settings: Settings) -> dict[str, str]:
    return {"tickers": ",".join(settings.data.tickers),
            "start": settings.data.start.isoformat(),
            "end": settings.data.end.isoformat() if settings.data.end else _END_TODAY}


def data_template(settings: Settings) -> Manifest:
    """Ingest then validate; tickers and dates are parameters (``end`` defaults to today)."""
    from hera.workflows import DAG, WorkflowTemplate

    image = settings.deploy.training_image
    with WorkflowTemplate(name=DATA_TEMPLATE,
                          **_workflow_kwargs(settings, "pipelines", 2 * 3600,
                                             _data_parameters(settings))) as wt:
        ingest = _step(settings, "ingest", image=image, res=SMALL, deadline=3600)
        validate = _step(settings, "validate", image=image, res=SMALL, deadline=600)
        with DAG(name="main"):
            ingest() >> validate()
    return _to_dict(wt)


def training_template(settings: Settings) -> Manifest:
    """Pin the dataset version and build the features once, train every variant in parallel
    (``withParam`` over a JSON list), then evaluate all of them and register the models in
    MLflow. The steps share one ``FINMLOPS_HOME`` (:func:`shared_home_claim`): each train pod
    merges its variant into the run state, which evaluate and register then read."""
    from hera.workflows import DAG, WorkflowTemplate

    image = settings.deploy.training_image
    params = {"variants": json.dumps(sorted(settings.train.variants))}
    with WorkflowTemplate(name=TRAINING_TEMPLATE,
                          **_workflow_kwargs(settings, "pipelines", 12 * 3600, params,
                                             shared_home=True)) as wt:
        features = _step(settings, "features", image=image, res=SMALL, deadline=3600)
        train = _step(settings, "train", image=image, res=TRAINING, deadline=6 * 3600,
                      inputs=["variant"])
        evaluate = _step(settings, "evaluate", image=image, res=TRAINING, deadline=2 * 3600)
        register = _step(settings, "register", image=image, res=SMALL, deadline=1800)
        with DAG(name="main"):
            (features()
             >> train(name="train", arguments={"variant": "{{item}}"},
                      with_param="{{workflow.parameters.variants}}")
             >> evaluate() >> register())
    return _to_dict(wt)


def daily_cron(settings: Settings) -> Manifest:
    """Every trading day: ingest, write the newest known outcomes into the ledger (by routing
    key ``TICKER:DATE``: the pod does not know the request ids), check drift, and decide the
    A/B test from the ledger, which holds every pod's predictions (deciding is read-only;
    promotion stays a human ``--apply``)."""
    from hera.workflows import DAG, CronWorkflow

    d = settings.deploy
    image = d.training_image
    params = {**_data_parameters(settings), "end": _END_TODAY}
    with CronWorkflow(name=DAILY_CRON, schedules=[d.schedule], timezone=d.timezone,
                      concurrency_policy="Forbid", starting_deadline_seconds=3600,
                      successful_jobs_history_limit=3, failed_jobs_history_limit=5,
                      **_workflow_kwargs(settings, "pipelines", 4 * 3600, params)) as cw:
        ingest = _step(settings, "ingest", image=image, res=SMALL, deadline=3600)
        feedback = _step(settings, "feedback", image=image, res=SMALL, deadline=1800)
        drift = _step(settings, "drift", image=image, res=SMALL, deadline=1800)
        decide = _step(settings, "decide", image=image, res=SMALL, deadline=1800)
        with DAG(name="main"):
            ingest() >> feedback() >> drift() >> decide()
    return _to_dict(cw)


def search_template(settings: Settings, workers: int = 4) -> Manifest:
    """A universe search fanned out: ``workers`` pods (``withParam`` over a JSON list) each
    run ``trials_per_worker`` trials of one Optuna study (its storage URL from
    ``deploy.search_secret``), every trial a child run in MLflow's trial ledger; then one
    step summarises every trial of the universe (DSR over all of them, PBO). The universe's
    bar files (``universe.files``) must be readable in the training image."""
    from hera.workflows import DAG, WorkflowTemplate

    image = settings.deploy.training_image
    per = max(1, -(-settings.universe.search.trials // workers))
    params = {"workers": json.dumps([str(i) for i in range(workers)]),
              "trials_per_worker": str(per)}
    with WorkflowTemplate(name=SEARCH_TEMPLATE,
                          **_workflow_kwargs(settings, "pipelines", 24 * 3600, params)) as wt:
        search = _step(settings, "search", image=image, res=TRAINING, deadline=12 * 3600,
                       inputs=["worker"])
        summary = _step(settings, "search-summary", image=image, res=TRAINING,
                        deadline=2 * 3600)
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
            search_template(settings)]
