"""The settings sections of the running service and what surrounds it: tokens, serving, the
experiment ledger, the A/B analysis, monitoring and deployment (:mod:`finmlops.config.settings`
holds the tree)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from finmlops.config._section import Section


class TokenSettings(Section):
    """One bearer token per scope: ``inference`` (infer and model metadata), ``feedback``
    (outcomes) and ``admin`` (experiment weights, reload). With none set, the service is open
    (loopback only is advised); once any is set, every scope needs its own token and a scope
    without one refuses every caller."""

    inference: SecretStr | None = None
    feedback: SecretStr | None = None
    admin: SecretStr | None = None


class ServeSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    request_timeout_s: float = Field(10.0, gt=0)
    model_dir: Path | None = None
    """Serve from a local directory of exported models instead of the MLflow registry."""
    grpc_port: int | None = Field(None, ge=0, le=65535)
    """Also serve the Open Inference Protocol V2 over gRPC on this port (``None``: REST only;
    0 picks a free port, for one worker)."""


class LedgerSettings(Section):
    """The experiment ledger: every answered prediction, every score and every outcome."""

    url: SecretStr | None = None
    """``None`` means ``sqlite:///<home>/ledger.db`` (WAL; shared by the workers of one host);
    ``postgresql://user:password@host:5432/db`` for several pods (a secret: it may hold a
    password, so it is masked wherever settings are shown)."""
    max_queue: int = Field(4096, ge=1)
    """Predictions waiting for their commit; beyond it, infer answers 503."""
    batch_max: int = Field(256, ge=1)
    """Most predictions committed in one transaction (group commit)."""
    linger_ms: float = Field(0.0, ge=0, le=5)
    """How long the writer waits for more predictions before a commit that is not full."""
    write_timeout_s: float = Field(2.0, gt=0, le=60)
    """Longest wait for the database (SQLite busy timeout, PostgreSQL statement and pool
    timeouts); a commit that takes longer fails and its requests get 503."""
    fail_after: int = Field(3, ge=1)
    """Consecutive failed commits after which readiness goes false (it comes back when a
    probe write succeeds)."""
    probe_interval_s: float = Field(1.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)
    """How often every worker and pod checks the ledger for a new experiment version."""
    summary_interval_s: float = Field(30.0, gt=0)
    """How often the service re-reads the experiment's outcomes from the ledger for the
    ``finmlops_ledger_*`` gauges (what alerts and dashboards read)."""
    pool_size: int = Field(4, ge=1, le=64)
    """PostgreSQL connections per process."""
    writers: int | None = Field(None, ge=1, le=8)
    """Writer threads committing in parallel; ``None``: 1 on SQLite (one write lock), 2 on
    PostgreSQL (two commits in flight share the server's WAL flushes)."""


class ABTestSettings(Section):
    alpha: float = Field(0.05, gt=0, lt=0.5)
    min_effect: float = Field(0.0, ge=0)
    """Smallest improvement in mean daily net return worth promoting for."""
    min_samples: int = Field(100, ge=2)
    srm_alpha: float = Field(0.001, gt=0, lt=0.5)
    """Level of the always-valid sample-ratio test (``finmlops.abtest.srm_test``): its
    false-alarm rate over a whole experiment checked every day, per experiment version."""
    metric: Literal["net_return", "hit_rate"] = "net_return"
    replay_start: dt.date | None = None
    """``None`` means the day after ``train.cutoff``."""
    replay_end: dt.date | None = None


class MonitoringSettings(Section):
    """Drift against a null calibrated on windows of each model's own reference period."""

    psi_threshold: float = Field(0.2, gt=0)
    """A feature or the prediction alarms only when its PSI is also above this (materiality)."""
    ks_alpha: float = Field(0.01, gt=0, lt=1)
    """False-alarm rate per live window of each drift alarm (the aggregate, any one feature,
    the prediction): the share of the reference's own windows that would alarm."""
    drift_window_days: int = Field(20, ge=10, le=250)
    """Days in the service's live drift window (and ``monitor drift``'s default). Longer
    windows dilute a sudden shift; 10 is the shortest calibrated length."""
    bins: int = Field(10, ge=2, le=100)


class EnvironmentSettings(Section):
    """One deployment environment (``deploy.environments``): its own namespaces, images,
    cluster, sizes and configuration. What it leaves unset follows the ``deploy`` section."""

    namespace_prefix: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)
    """Its namespaces are ``<prefix>-pipelines``, ``-inference``, ``-monitoring``, ``-ledger``."""
    image: str | None = None
    """``None``: ``deploy.image`` with ``image_suffix`` appended."""
    training_image: str | None = None
    """``None``: ``deploy.training_image`` with ``image_suffix`` appended."""
    image_suffix: str = ""
    hostname_prefix: str = ""
    """Prepended to ``deploy.hostname`` for this environment's HTTPRoute (``dev.``: its own
    host, so two environments' routes never claim one name on a shared Gateway)."""
    cluster: str = "https://kubernetes.default.svc"
    """The API server Argo CD deploys this environment to; its AppProject allows no other."""
    replicas: int | None = Field(None, ge=1)
    max_replicas: int | None = Field(None, ge=1)
    ledger_instances: int | None = Field(None, ge=1, le=9)
    daily_suspended: bool = False
    """Render the daily CronWorkflow suspended (it then runs only when submitted by hand)."""
    auto_sync: bool = False
    """Argo CD applies every commit by itself (prune + self-heal); else a human syncs."""
    promotion: Literal["commit", "branch"] = "commit"
    """How ``abtest decide --apply`` hands a promotion to this environment: a commit on
    ``gitops.branch`` (applied at the next sync), or a branch of its own for review."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Overrides of this environment's ``finmlops.yaml``, nested as in the file (e.g.
    ``{data: {tickers: [IBB, SPY, QQQ]}}``); validated when the environment is rendered."""


def _default_environments() -> dict[str, EnvironmentSettings]:
    return {
        "dev": EnvironmentSettings(namespace_prefix="finmlops-dev", image_suffix="-dev",
                                   hostname_prefix="dev.",
                                   replicas=1, max_replicas=2, ledger_instances=1,
                                   daily_suspended=True, auto_sync=True, promotion="commit"),
        "prod": EnvironmentSettings(namespace_prefix="finmlops", promotion="branch"),
    }


class DeploySettings(Section):
    image: str = "ghcr.io/finmlops/finmlops:0.1.0"
    training_image: str = "ghcr.io/finmlops/finmlops-train:0.1.0"
    namespace_prefix: str = "finmlops"
    bucket: str = "finmlops"
    model_repository: str | None = None
    """Where ``finmlops models publish`` lays registered versions out as Triton model
    repositories, and what Seldon/KServe manifests point at; ``None`` means
    ``s3://<bucket>/triton``."""
    source: Literal["yahoo", "stooq"] = "yahoo"
    """The network source the cluster ingests from when ``data.source`` names a local one
    (``bundled``, ``csv``): a daily job must see each new bar."""
    s3_endpoint: str | None = None
    """``None``: the environment's MinIO, ``http://minio.<prefix>-pipelines.svc:9000``."""
    mlflow_uri: str | None = None
    """``None``: the environment's MLflow, ``http://mlflow.<prefix>-pipelines.svc:5000``."""
    service_url: str | None = None
    """Where the daily job's ``predict`` step reaches the service; ``None``: the
    environment's Service, ``http://finmlops-serving.<prefix>-inference.svc:8080``."""
    schedule: str = "30 22 * * 1-5"
    timezone: str = "America/New_York"
    retrain_schedule: str = "0 6 * * 6"
    """When the scheduled retraining runs (besides the one a drift alarm starts)."""
    replicas: int = Field(2, ge=1)
    max_replicas: int = Field(6, ge=1)
    prestop_sleep_s: int = Field(5, ge=1, le=60)
    """How long a terminating serving pod keeps answering before SIGTERM, so every proxy has
    dropped it from its endpoints first (the grace period adds the drain on top)."""
    ledger_instances: int = Field(3, ge=1, le=9)
    """PostgreSQL instances of the ledger (CloudNativePG): a primary and synchronous
    standbys, so a failover loses no committed prediction."""
    ledger_storage: str = Field("20Gi", pattern=r"^[0-9]+(\.[0-9]+)?([KMGTPE]i|[kMGTPE])?$")
    """The volume of each ledger instance (the cluster's default storage class)."""
    # Names of Kubernetes Secrets to reference; never their values.
    s3_secret: str = "finmlops-s3"  # noqa: S105
    mlflow_secret: str = "finmlops-mlflow"  # noqa: S105
    ledger_secret: str = "finmlops-ledger"  # noqa: S105
    """Key ``url``: the ledger's ``postgresql://`` DSN, for the serving and workflow pods."""
    ledger_owner_secret: str = "finmlops-ledger-owner"  # noqa: S105
    """``kubernetes.io/basic-auth`` (``username``, ``password``): the database owner that
    CloudNativePG creates at bootstrap."""
    inference_token_secret: str = "finmlops-inference-token"  # noqa: S105
    feedback_token_secret: str = "finmlops-feedback-token"  # noqa: S105
    admin_token_secret: str = "finmlops-admin-token"  # noqa: S105
    git_secret: str = "finmlops-git"  # noqa: S105
    """Key ``token``: a token that may push to ``git_repo`` (the daily job's promotion)."""
    search_secret: str = "finmlops-search"  # noqa: S105
    """Key ``url``: the Optuna storage (e.g. ``postgresql://...``) the search workers share."""
    hostname: str = "finmlops.example.com"
    gateway: str = "finmlops-gateway"
    git_repo: str = "https://github.com/finmlops/finmlops.git"
    environments: dict[str, EnvironmentSettings] = Field(default_factory=_default_environments)
    """Rendered side by side, each in its own namespaces, with its own Argo CD project."""

    @field_validator("environments")
    @classmethod
    def _distinct(cls, v: dict[str, EnvironmentSettings]) -> dict[str, EnvironmentSettings]:
        if not v:
            raise ValueError("at least one environment is required")
        for name in v:
            if not name or not name.replace("-", "").isalnum() or name != name.lower():
                raise ValueError(f"environment name {name!r}: use lower-case letters, digits "
                                 "and '-'")
        prefixes = [e.namespace_prefix for e in v.values()]
        clash = sorted({p for p in prefixes if prefixes.count(p) > 1})
        if clash:
            raise ValueError(f"environments share the namespace prefix {clash[0]!r}")
        return v


class GitOpsSettings(Section):
    """Promotion as a change to the config repository that Argo CD syncs. Off locally
    (``abtest decide --apply`` moves the aliases and the ledger's weights itself); the
    rendered cluster configuration turns it on for its environment."""

    enabled: bool = False
    repo: str | None = None
    """``None``: ``deploy.git_repo``."""
    branch: str = "main"
    path: str = "deploy/k8s"
    """Where the rendered tree lives in the repository."""
    environment: str = "prod"
    """Whose ``environments/<name>/promotion.yaml`` a promotion rewrites."""
    review: bool = False
    """Push the change to a branch of its own (``finmlops/promote/<environment>/...``) for
    review instead of onto ``branch``."""
    author: str = "finmlops <finmlops@users.noreply.github.com>"
    token: SecretStr | None = None
    """A token that may push over HTTPS (from a Secret on the cluster); given to git by a
    credential helper reading the environment, never on a command line."""


class ValidationSettings(Section):
    """What ``finmlops data validate`` checks beyond the schema every ingest enforces."""

    max_age_days: int = Field(4, ge=0, le=60)
    """Weekdays the newest bar may lie before the as-of date (weekends never count; 4 covers
    a holiday and a late vendor)."""
    recent_days: int = Field(60, ge=1)
    """Sessions at the end of the dataset in which a calendar gap (a day another ticker has)
    fails validation: the day's windows need them. Older gaps are reported."""
    max_abs_return: float = Field(0.5, gt=0)
    """A larger one-day move of ``adj_close`` is an error (an unadjusted split, a bad print)."""
