"""The settings sections of the running service and what surrounds it: tokens, serving, the
experiment ledger, the A/B analysis, monitoring and deployment (:mod:`finmlops.config.settings`
holds the tree)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from finmlops.config._section import _Section


class TokenSettings(_Section):
    """One bearer token per scope: ``inference`` (infer and model metadata), ``feedback``
    (outcomes) and ``admin`` (experiment weights, reload). With none set, the service is open
    (loopback only is advised); once any is set, every scope needs its own token and a scope
    without one refuses every caller."""

    inference: SecretStr | None = None
    feedback: SecretStr | None = None
    admin: SecretStr | None = None


class ServeSettings(_Section):
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


class LedgerSettings(_Section):
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


class ABTestSettings(_Section):
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


class MonitoringSettings(_Section):
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


class DeploySettings(_Section):
    image: str = "ghcr.io/finmlops/finmlops:0.1.0"
    training_image: str = "ghcr.io/finmlops/finmlops-train:0.1.0"
    namespace_prefix: str = "finmlops"
    bucket: str = "finmlops"
    model_repository: str | None = None
    """Where ``finmlops models publish`` lays registered versions out as Triton model
    repositories, and what Seldon/KServe manifests point at; ``None`` means
    ``s3://<bucket>/triton``."""
    s3_endpoint: str = "http://minio.finmlops-pipelines.svc:9000"
    mlflow_uri: str = "http://mlflow.finmlops-pipelines.svc:5000"
    schedule: str = "30 22 * * 1-5"
    timezone: str = "America/New_York"
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
    search_secret: str = "finmlops-search"  # noqa: S105
    """Key ``url``: the Optuna storage (e.g. ``postgresql://...``) the search workers share."""
    hostname: str = "finmlops.example.com"
    gateway: str = "finmlops-gateway"
    git_repo: str = "https://github.com/finmlops/finmlops.git"
