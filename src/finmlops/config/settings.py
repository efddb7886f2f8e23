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
    source_url: str | None = None
    """Base URL of the ``yahoo`` or ``stooq`` endpoint (``None``: the public one), e.g. a
    mirror or a proxy that records and replays responses."""
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


class GBMSettings(_Section):
    """A gradient-boosted tree variant (LightGBM), exported to ONNX for serving."""

    n_estimators: int = Field(200, ge=1, le=5000)
    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(15, ge=2, le=1024)
    min_child_samples: int = Field(200, ge=1)
    subsample: float = Field(0.8, gt=0, le=1)
    """Share of rows each tree sees (bagging, every iteration)."""
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    reg_lambda: float = Field(1.0, ge=0)
    lags: int = Field(1, ge=1, le=20)
    """Days of each feature the trees see: the last ``lags`` rows of the input window."""
    threads: int = Field(1, ge=1)


def _default_universe_network() -> VariantSettings:
    return VariantSettings(architecture="lstm", features="full", window=10, hidden=24,
                           epochs=8, patience=2, batch_size=1024, learning_rate=2e-3)


class UniverseVariantSettings(_Section):
    """One model of a universe study: a pooled network or a gradient-boosted tree."""

    kind: Literal["neural", "gbm"] = "gbm"
    features: Literal["raw", "cs", "both"] = "cs"
    """``raw``: each ticker's own and context features as they are; ``cs``: the own features
    ranked (or z-scored) across the universe each day, with the context features raw;
    ``both``: the two side by side."""
    network: VariantSettings = Field(default_factory=_default_universe_network)
    """Architecture and training of a ``neural`` variant (its ``features`` key is unused)."""
    gbm: GBMSettings = Field(default_factory=GBMSettings)


def _default_universe_variants() -> dict[str, UniverseVariantSettings]:
    return {"pooled_lstm": UniverseVariantSettings(kind="neural"),
            "gbm": UniverseVariantSettings(kind="gbm")}


class PortfolioSettings(_Section):
    """The daily ranked long/short book of a universe study (``finmlops.evaluation.portfolio``)."""

    quantile: float = Field(0.2, gt=0, le=0.5)
    """Long the top, short the bottom ``quantile`` of each day's scores."""
    weighting: Literal["equal", "volatility"] = "equal"
    """Equal weights within a leg, or inversely proportional to trailing volatility."""
    neutral: Literal["dollar", "beta", "sector", "long_only"] = "dollar"
    """``dollar``: long and short legs of equal gross (benchmark: cash); ``beta``: legs scaled
    so the book's trailing beta to the market is zero (benchmark: cash); ``sector``: a
    dollar-neutral book inside every sector (benchmark: cash); ``long_only``: the top
    quantile only (benchmark: the equal-weight universe)."""
    capital: float = Field(10_000_000.0, gt=0)
    """Capital behind the book: sizes the impact and the participation cap."""
    participation: float = Field(0.05, gt=0, le=1)
    """Most of a name's trailing average daily traded value one day's trade may take; a
    larger trade is cut to it (the book then lags its target)."""
    impact_coefficient: float = Field(0.1, ge=0)
    """Square-root impact per unit traded: coefficient * sigma * sqrt(traded / ADV)."""
    capacity_capitals: list[float] = Field(
        default_factory=lambda: [1e6, 1e7, 1e8, 1e9, 1e10], min_length=1)
    vol_window: int = Field(20, ge=2, le=250)
    beta_window: int = Field(60, ge=5, le=500)
    adv_window: int = Field(20, ge=1, le=250)
    quantiles: int = Field(5, ge=2, le=20)
    """Buckets of the quantile spread returns."""


class SearchSettings(_Section):
    """An Optuna search over one universe variant; every trial enters the trial ledger."""

    trials: int = Field(20, ge=1, le=10_000)
    seed: int = 7
    variant: str = "gbm"
    """The ``universe.variants`` entry whose settings the search varies."""
    storage: str | None = None
    """Optuna storage; ``None`` means ``sqlite:///<home>/search.db``. Workers of one study on
    a cluster share a database URL (e.g. ``postgresql://...``)."""
    study: str = "universe"


class UniverseSettings(_Section):
    """A cross-sectional study over many tickers (``finmlops universe``, ``finmlops search``)."""

    files: list[Path] = Field(default_factory=list)
    """Bar CSVs: multi-ticker files with a ``ticker`` column, or per-ticker ``TICKER.csv``."""
    tickers: list[str] = Field(default_factory=list)
    """The universe; empty means every ticker in ``files`` but the context."""
    context: list[str] = Field(default_factory=lambda: ["SPY"])
    """Market context tickers (also the market of beta and of the HAC regressions)."""
    sectors_path: Path | None = None
    """A constituents CSV with ``Symbol`` and ``GICS Sector`` columns (sector-neutral books
    and labels); tickers it lacks form the sector ``Unknown``."""
    start: dt.date | None = None
    end: dt.date | None = None
    label: Literal["market_neutral", "sector_neutral", "rank"] = "market_neutral"
    """What a model learns: the next-day return above the universe's (or its sector's) mean
    that day, or in the top half of that day's ranks."""
    label_quantile: float = Field(0.5, gt=0, le=0.5)
    """For ``rank``: train on the top and bottom ``label_quantile`` of each day only."""
    cross_section: Literal["rank", "zscore"] = "rank"
    """How a feature is made cross-sectional: centred percentile rank or z-score per day."""
    min_train_years: int = Field(1, ge=1)
    test_block_years: int = Field(1, ge=1)
    embargo_days: int = Field(5, ge=0)
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    cutoff: dt.date | None = None
    """Deployable models see data up to this date (``None``: everything)."""
    variants: dict[str, UniverseVariantSettings] = Field(
        default_factory=_default_universe_variants)
    portfolio: PortfolioSettings = Field(default_factory=PortfolioSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)

    @field_validator("tickers", "context")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        out = [t.strip().upper() for t in v if t.strip()]
        if len(set(out)) != len(out):
            raise ValueError("tickers must be unique")
        return out

    @model_validator(mode="after")
    def _consistent(self) -> UniverseSettings:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if not self.variants:
            raise ValueError("at least one variant is required")
        if self.search.variant not in self.variants:
            raise ValueError(f"search.variant {self.search.variant!r} is not a variants entry")
        return self


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

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSettings:
        names = [c.name for c in self.candidates]
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


class EnvironmentSettings(_Section):
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


class DeploySettings(_Section):
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


class GitOpsSettings(_Section):
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


class ValidationSettings(_Section):
    """What ``finmlops data validate`` checks beyond the schema every ingest enforces."""

    max_age_days: int = Field(4, ge=0, le=60)
    """Weekdays the newest bar may lie before the as-of date (weekends never count; 4 covers
    a holiday and a late vendor)."""
    recent_days: int = Field(60, ge=1)
    """Sessions at the end of the dataset in which a calendar gap (a day another ticker has)
    fails validation: the day's windows need them. Older gaps are reported."""
    max_abs_return: float = Field(0.5, gt=0)
    """A larger one-day move of ``adj_close`` is an error (an unadjusted split, a bad print)."""


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
    gitops: GitOpsSettings = Field(default_factory=GitOpsSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    universe: UniverseSettings = Field(default_factory=UniverseSettings)

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
    if settings.gitops.token is not None:
        data["gitops"]["token"] = "***"  # noqa: S105 - the mask, not a token
    return data
