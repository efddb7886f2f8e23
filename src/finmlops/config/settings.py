"""The one settings tree: defaults < finmlops.yaml < FINMLOPS_* environment variables.

Every section forbids unknown keys so a typo is an error naming the key, not a silently
ignored setting. Paths that are not set explicitly are derived from ``home``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from finmlops.config._evaluation import (
    EvaluationSettings,
)
from finmlops.config._section import Section
from finmlops.config._serving import (
    ABTestSettings,
    DeploySettings,
    GitOpsSettings,
    LedgerSettings,
    MonitoringSettings,
    ServeSettings,
    ValidationSettings,
)


class DataSettings(Section):
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


class FeatureSettings(Section):
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


class VariantSettings(Section):
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


class TrainSettings(Section):
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


class GBMSettings(Section):
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


class UniverseVariantSettings(Section):
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


class PortfolioSettings(Section):
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


class SearchSettings(Section):
    """An Optuna search over one universe variant; every trial enters the trial ledger."""

    trials: int = Field(20, ge=1, le=10_000)
    seed: int = 7
    variant: str = "gbm"
    """The ``universe.variants`` entry whose settings the search varies."""
    storage: str | None = None
    """Optuna storage; ``None`` means ``sqlite:///<home>/search.db``. Workers of one study on
    a cluster share a database URL (e.g. ``postgresql://...``)."""
    study: str = "universe"


class UniverseSettings(Section):
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


class ReportSettings(Section):
    plotly_js: Path | None = None
    """A plotly.js build to inline in the report. ``None``: the partial bundle ``make``
    installs (``<venv>/share/finmlops/plotly-basic.min.js``), else plotly's full bundle."""
    attach_to_mlflow: bool = True
    """Log each distinct report once to the tracking store (one run of kind ``report``)."""


class TrackingSettings(Section):
    uri: str | None = None
    """``None`` means ``sqlite:///<home>/mlflow.db``."""
    experiment: str = "finmlops"
    registered_model: str | None = None
    """``None`` means ``<first target, lower case>-direction``."""


class Candidate(Section):
    name: str
    weight: int = Field(ge=0)


class Mirror(Section):
    name: str
    percent: int = Field(100, ge=0, le=100)


class ExperimentSettings(Section):
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
