"""The kit every Argo workflow of :mod:`finmlops.deploy.workflows` is built from.

One ``finmlops <command>`` container template per step (:func:`step`, from a :class:`StepSpec`
and the command table ``COMMANDS``), the workflow-level fields they all share
(:func:`workflow_kwargs`: namespace, security, volumes, artifact repository, retention), the
``onExit`` failure report (:func:`exit_handler`), and which steps get which credentials
(``LEDGER_STEPS``, ``INFERENCE_STEPS``, ``GIT_STEPS``, ``SEARCH_STEPS``). Kept apart from the
workflow definitions so that each definition reads as its DAG and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from finmlops.config import Settings
from finmlops.deploy._k8s import (
    INFERENCE_CLIENT,
    LEDGER_CLIENT,
    OUTPUTS_DIR,
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
    namespace,
    pod_security_context,
    resources,
    secret_env,
)

if TYPE_CHECKING:
    from hera.workflows import Parameter
    from hera.workflows.models import (
        ArtifactRepositoryRef,
        Metadata,
        PersistentVolumeClaim,
        PodGC,
        PodSecurityContext,
        Synchronization,
        TTLStrategy,
        Volume,
        VolumeClaimGC,
    )

REGISTRY_MUTEX = "finmlops-registry"
"""Held by every workflow that moves registry aliases (training, promotion)."""
ARTIFACT_REPOSITORIES = "artifact-repositories"
ARTIFACT_KEY = "finmlops"
FAILURE_METRIC = "finmlops_workflow_failures"
"""A counter (Argo prefixes custom metrics with ``argo_workflows_``)."""
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


def hera_models() -> Any:
    """Hera's generated Argo models, imported on use (Hera is heavy; the CLI starts fast)."""
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


def step(settings: Settings, spec: StepSpec, *, image: str | None = None,
         metrics: Any = None) -> Any:
    """A container template with the restricted security context and its outputs."""
    from hera.workflows import Artifact, Container, Parameter, RetryStrategy

    m = hera_models()
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


def exit_handler(settings: Settings, template: str) -> None:
    """``exit-handler``: when the workflow did not succeed, ``report-failure`` prints one line
    naming the failed steps and counts the failure (``finmlops_workflow_failures``)."""
    from hera.workflows import Steps

    m = hera_models()
    metric = m.Metrics(prometheus=[m.Prometheus(
        name=FAILURE_METRIC, help="finmlops workflows that did not succeed",
        labels=[m.MetricLabel(key="template", value=template),
                m.MetricLabel(key="workflow_namespace", value="{{workflow.namespace}}"),
                m.MetricLabel(key="status", value="{{workflow.status}}")],
        counter=m.Counter(value="1"))])
    report = step(settings, StepSpec("report-failure", SMALL, 300), metrics=metric)
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


class WorkflowFields(TypedDict):
    """The keyword arguments every workflow here is created with (typed, so mypy checks each
    name and value against Hera's ``Workflow`` fields)."""

    namespace: str
    labels: dict[str, str]
    entrypoint: str
    on_exit: str
    service_account_name: str
    active_deadline_seconds: int
    security_context: PodSecurityContext
    volumes: list[Volume]
    volume_claim_templates: NotRequired[list[PersistentVolumeClaim]]
    volume_claim_gc: NotRequired[VolumeClaimGC]
    synchronization: NotRequired[Synchronization]
    artifact_repository_ref: ArtifactRepositoryRef
    pod_gc: PodGC
    ttl_strategy: TTLStrategy
    pod_metadata: Metadata
    arguments: list[Parameter]


def workflow_kwargs(settings: Settings, component: str, deadline: int,
                    parameters: dict[str, str], *, shared_home: bool = False,
                    mutex: bool = False, extra_volumes: Sequence[Manifest] = ()
                    ) -> WorkflowFields:
    """Workflow-level fields; ``shared_home`` replaces each pod's emptyDir ``FINMLOPS_HOME``
    with one claim for the whole workflow (for steps that pass the run state on)."""
    from hera.workflows import Parameter

    m = hera_models()
    volumes = [v for v in app_volumes() if not (shared_home and v["name"] == HOME_VOLUME)]
    fields: WorkflowFields = {
        "namespace": namespace(settings, "pipelines"),
        "labels": labels(component),
        "entrypoint": "main",
        "on_exit": "exit-handler",
        "service_account_name": WORKFLOW_SA,
        "active_deadline_seconds": deadline,
        "security_context": m.PodSecurityContext.model_validate(pod_security_context()),
        "volumes": [m.Volume.model_validate(v) for v in (*volumes, *extra_volumes)],
        "artifact_repository_ref": m.ArtifactRepositoryRef(config_map=ARTIFACT_REPOSITORIES,
                                                           key=ARTIFACT_KEY),
        "pod_gc": m.PodGC(strategy="OnPodSuccess"),
        "ttl_strategy": m.TTLStrategy(seconds_after_completion=7 * 24 * 3600),
        "pod_metadata": m.Metadata(labels=labels(component)),
        "arguments": [Parameter(name=k, value=v) for k, v in parameters.items()],
    }
    if shared_home:
        fields["volume_claim_templates"] = [
            m.PersistentVolumeClaim.model_validate(shared_home_claim())]
        fields["volume_claim_gc"] = m.VolumeClaimGC(strategy="OnWorkflowCompletion")
    if mutex:
        fields["synchronization"] = m.Synchronization(mutexes=[m.Mutex(name=REGISTRY_MUTEX)])
    return fields


def dag_outputs(**params: str) -> list[Any]:
    """The DAG's output parameters, each the value of a task's output (``name=expression``)."""
    from hera.workflows import Parameter

    m = hera_models()
    return [Parameter(name=k, value_from=m.ValueFrom(parameter=v)) for k, v in params.items()]


def to_dict(workflow: Any) -> Manifest:
    """The rendered manifest of a Hera workflow object, without Hera's empty ``inputs``."""
    out: Manifest = workflow.to_dict()
    spec = out["spec"].get("workflowSpec", out["spec"])
    # Hera leaves inputs: {} on templates without inputs in some versions; keep output minimal.
    for t in spec.get("templates", []):
        if t.get("inputs") == {}:
            del t["inputs"]
    return out
