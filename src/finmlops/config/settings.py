"""The one settings tree: defaults < finmlops.yaml < FINMLOPS_* environment variables.

Every section forbids unknown keys so a typo is an error naming the key, not a silently
ignored setting. Paths that are not set explicitly are derived from ``home``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Section):
    """Where bars come from and where versions are stored."""

    source: Literal["bundled", "yahoo", "stooq", "csv"] = "bundled"
    tickers: list[str] = Field(default_factory=lambda: ["IBB", "SPY"], min_length=1)
    start: dt.date = dt.date(2001, 1, 1)
    end: dt.date | None = None
    csv_path: Path | None = None
    store_uri: str | None = None
    """``None`` means ``<home>/store``; ``s3://bucket/prefix`` for MinIO/S3."""
    s3_endpoint_url: str | None = None
    timeout_s: float = Field(20.0, gt=0)
    max_retries: int = Field(4, ge=0, le=10)
    backoff_s: float = Field(1.0, ge=0)

    @field_validator("tickers")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        out = [t.strip().upper() for t in v if t.strip()]
        if len(set(out)) != len(out):
            raise ValueError("tickers must be unique")
        return out

    @model_validator(mode="after")
    def _ordered(self) -> DataSettings:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class FeatureSettings(_Section):
    """What is predicted, from what."""

    target: list[str] = Field(default_factory=lambda: ["IBB"], min_length=1)
    """One ticker, or several for a pooled universe model."""
    context: list[str] = Field(default_factory=lambda: ["SPY"])
    """Market context tickers; with the targets they make the master calendar (the union of
    their trading days), on which gaps are reported and never bridged."""
    horizon: int = Field(1, ge=1, le=20)
    dead_band: float = Field(0.0, ge=0.0, lt=0.05)
    """Label rows with |forward return| below this are dropped from training."""

    @field_validator("target", "context")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return [t.strip().upper() for t in v if t.strip()]


class VariantSettings(_Section):
    """One trainable model variant; adding a variant is adding one of these."""

    architecture: Literal["lstm", "gru", "tcn", "mlp"] = "lstm"
    features: Literal["core", "full"] = "core"
    window: int = Field(10, ge=1, le=250)
    hidden: int = Field(24, ge=1, le=1024)
    layers: int = Field(1, ge=1, le=8)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    epochs: int = Field(30, ge=1, le=1000)
    patience: int = Field(5, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)


def _default_variants() -> dict[str, VariantSettings]:
    return {
        "baseline": VariantSettings(architecture="lstm", features="core", window=10, hidden=24),
        "enhanced": VariantSettings(
            architecture="gru", features="full", window=20, hidden=64, layers=2, dropout=0.2
        ),
    }


class TrainSettings(_Section):
    variants: dict[str, VariantSettings] = Field(default_factory=_default_variants)
    seed: int = 42
    min_train_years: int = Field(4, ge=1)
    test_block_years: int = Field(1, ge=1)
    embargo_days: int = Field(5, ge=0)
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    """The last part of each walk-forward fold's training days, for early stopping."""
    cutoff: dt.date | None = dt.date(2018, 12, 31)
    """Deployable models see data up to this date; later days are the A/B replay period.
    ``None`` trains the deployable model on everything. The deployable fit holds out no
    validation tail: it is refitted on every row up to here for the median best epoch of the
    folds trained before it."""
    torch_threads: int = Field(1, ge=1)
    """1 is as fast as 2 on an idle 2-core machine and much faster on a busy one."""

    @field_validator("variants")
    @classmethod
    def _some(cls, v: dict[str, VariantSettings]) -> dict[str, VariantSettings]:
        if not v:
            raise ValueError("at least one variant is required")
        return v


class CostSettings(_Section):
    commission_bps: float = Field(1.0, ge=0)
    half_spread_bps: float = Field(1.0, ge=0)
    slippage_bps: float = Field(1.0, ge=0)
    impact_coefficient: float = Field(0.0, ge=0)
    """Square-root market impact: coefficient * sigma * sqrt(traded_notional / ADV)."""
    notional: float = Field(1_000_000.0, gt=0)


class StressWindow(_Section):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> StressWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _default_windows() -> dict[str, StressWindow]:
    return {
        "gfc_2008": StressWindow(start=dt.date(2007, 10, 9), end=dt.date(2009, 3, 9)),
        "covid_crash": StressWindow(start=dt.date(2020, 2, 19), end=dt.date(2020, 3, 23)),
        "bear_2022": StressWindow(start=dt.date(2022, 1, 3), end=dt.date(2022, 10, 12)),
    }


class EvaluationSettings(_Section):
    rule: Literal["long_flat", "long_short"] = "long_flat"
    threshold: float = Field(0.5, gt=0, lt=1)
    dead_band: float = Field(0.0, ge=0, lt=0.5)
    """Probabilities within threshold ± dead_band keep the previous position (flat at start)."""
    execution: Literal["same_close", "next_open", "next_close"] = "next_open"
    """When a position decided from the bars of day t (features use its close) is filled:
    ``same_close`` at the close of t itself (the price the features already used: only a
    market-on-close order placed just before the bell gets near it, so it flatters),
    ``next_open`` at the open of t+1 (an order sent overnight; the default, because it is the
    first price a strategy computed from the close can really trade at), ``next_close`` at the
    close of t+1 (a full day late). See :func:`finmlops.evaluation.execution_returns`."""
    risk_free_rate: float = Field(0.0, ge=-0.05, le=0.5)
    """Annual risk-free rate earned by the un-invested part of the capital (1 - position) and
    subtracted for Sharpe ratios. 0 by default: no rate series ships with the data."""
    risk_free_path: Path | None = None
    """CSV ``date,rate`` (annualised rate as a fraction, e.g. 0.0525) used instead of
    ``risk_free_rate``: forward-filled to trading days, it must start on or before the first
    evaluated day."""
    costs: CostSettings = Field(default_factory=CostSettings)
    stress_windows: dict[str, StressWindow] = Field(default_factory=_default_windows)
    cost_sweep_bps: list[float] = Field(
        default_factory=lambda: [0.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0]
    )
    periods_per_year: int = Field(252, ge=1)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    """Significance level of the tests the verdict needs (Sharpe difference, alpha, forecasts)."""
    hac_lags: int | None = Field(None, ge=0, le=250)
    """Newey-West lags for alpha/beta and the Sharpe-difference test; ``None`` means
    floor(4 (n/100)^(2/9)) (9 lags for 20 years of days)."""
    prior_trials: int = Field(0, ge=0)
    """Configurations backtested outside this tracking store (notebooks, another home, the
    system this one replaced): added to the ledger's count for the deflated Sharpe ratio."""
    pbo_splits: int = Field(16, ge=4, le=20)
    """Blocks of the combinatorially symmetric cross-validation (even; C(S, S/2) splits)."""
    pbo_min_trials: int = Field(4, ge=2)
    """Fewer trials with daily returns on common days than this give no PBO."""
    rolling_days: int = Field(126, ge=20, le=1000)
    """Window of the report's rolling Sharpe, volatility and beta (126 days: half a year)."""

    @field_validator("pbo_splits")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("must be even")
        return v


class ReportSettings(_Section):
    plotly_js: Path | None = None
    """A plotly.js build to inline in the report. ``None``: the partial bundle ``make``
    installs (``<venv>/share/finmlops/plotly-basic.min.js``), else plotly's full bundle."""
    attach_to_mlflow: bool = True
    """Log each distinct report once to the tracking store (one run of kind ``report``)."""


class TrackingSettings(_Section):
    uri: str | None = None
    """``None`` means ``sqlite:///<home>/mlflow.db``."""
    experiment: str = "finmlops"
    registered_model: str | None = None
    """``None`` means ``<first target, lower case>-direction``."""


class Candidate(_Section):
    name: str
    weight: int = Field(ge=0)


class Mirror(_Section):
    name: str
    percent: int = Field(100, ge=0, le=100)


class ExperimentSettings(_Section):
    """The fields of a Seldon Core v2 Experiment, so one definition drives both."""

    name: str = "direction-ab"
    default: str | None = "baseline"
    candidates: list[Candidate] = Field(
        default_factory=lambda: [
            Candidate(name="baseline", weight=70),
            Candidate(name="enhanced", weight=30),
        ],
        min_length=1,
    )
    mirror: Mirror | None = None
    shadow: bool = True
    """Score every candidate on every request, off the hot path, and log all of them: the
    market's outcome is the same whichever arm answered, so the arms can be compared paired."""

    @property
    def candidate_names(self) -> list[str]:
        """The candidates' names, in configuration order."""
        return [c.name for c in self.candidates]

    @property
    def reference(self) -> str:
        """The reference (champion) arm the challenger is compared with: ``default``, else
        the first candidate."""
        return self.default or self.candidates[0].name

    @property
    def arms(self) -> list[str]:
        """Every arm a model is served for: the candidates, then the mirror (once)."""
        names = self.candidate_names
        if self.mirror is not None and self.mirror.name not in names:
            names.append(self.mirror.name)
        return names

    @property
    def weights(self) -> dict[str, int]:
        """Each candidate's configured weight."""
        return {c.name: c.weight for c in self.candidates}

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSettings:
        names = self.candidate_names
        if len(set(names)) != len(names):
            raise ValueError("candidate names must be unique")
        if sum(c.weight for c in self.candidates) <= 0:
            raise ValueError("candidate weights must sum to more than 0")
        if self.default is not None and self.default not in names:
            raise ValueError(f"default {self.default!r} is not a candidate")
        return self


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
    hostname: str = "finmlops.example.com"
    gateway: str = "finmlops-gateway"
    git_repo: str = "https://github.com/finmlops/finmlops.git"


class Settings(BaseSettings):
    """Everything configurable. Load with :func:`finmlops.config.load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="FINMLOPS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    home: Path = Path(".finmlops")
    data: DataSettings = Field(default_factory=DataSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    experiment: ExperimentSettings = Field(default_factory=ExperimentSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    abtest: ABTestSettings = Field(default_factory=ABTestSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)

    @field_validator("home", mode="before")
    @classmethod
    def _home_not_empty(cls, v: Any) -> Any:
        # An empty FINMLOPS_HOME= would silently put the store and state in the working dir.
        if isinstance(v, str) and not v.strip():
            raise ValueError("must not be empty (unset it to use ./.finmlops)")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        missing = [t for t in self.features.target + self.features.context
                   if t not in self.data.tickers]
        if missing:
            raise ValueError(
                f"features.target/context name tickers not in data.tickers: {', '.join(missing)}"
            )
        variants = set(self.train.variants)
        for c in self.experiment.candidates:
            if c.name not in variants:
                raise ValueError(f"experiment candidate {c.name!r} is not a train.variants entry")
        return self

    # Derived locations: every embedded default lives under ``home``.
    @property
    def store_uri(self) -> str:
        return self.data.store_uri or str((self.home / "store").resolve())

    @property
    def tracking_uri(self) -> str:
        return self.tracking.uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return (self.home / "mlartifacts").resolve()

    @property
    def registered_model(self) -> str:
        return self.tracking.registered_model or f"{self.features.target[0].lower()}-direction"

    @property
    def ledger_url(self) -> str:
        """The experiment ledger's URL (a secret when it names PostgreSQL credentials)."""
        url = self.ledger.url
        if url is not None:
            return url.get_secret_value()
        return f"sqlite:///{(self.home / 'ledger.db').resolve()}"

    @property
    def reports_dir(self) -> Path:
        return (self.home / "reports").resolve()

    @property
    def runs_dir(self) -> Path:
        """Stage outputs of ``finmlops run`` (content-addressed cache)."""
        return (self.home / "runs").resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() merges file and environment itself (so tests can pass their own
        # environment); the model only validates what it is given.
        return (init_settings,)


def public_dict(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON-able data with secrets masked (for MLflow params, logs)."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    for scope, token in settings.serve.tokens:
        if token is not None:
            data["serve"]["tokens"][scope] = "***"
    if settings.ledger.url is not None:
        data["ledger"]["url"] = "***"
    return data
