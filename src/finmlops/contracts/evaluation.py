"""``evaluation.json``: what the evaluate stage writes and the report, the CLI, the run state's
summary and the tracking store read (docs/CONTRACTS.md, "evaluation.json").

Every figure the readers use is typed. Two payloads stay free-form, because only charts draw
them and no decision reads them: ``tearsheet`` (calendar, worst drawdowns, return
distribution) and ``series`` (the daily equity lines, position and rolling statistics).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field

from finmlops.config import EvaluationSettings, StressWindow
from finmlops.contracts._base import Contract

Number = float | None
"""A figure that is ``null`` in JSON where it is undefined or not finite."""


@dataclass(frozen=True)
class PerformanceMetrics:
    """Every figure of one return series; ``None`` where it is undefined (e.g. zero volatility).

    Returns are fractions (0.1 = 10%); ``max_drawdown`` is negative; ``turnover`` and
    ``cost_drag`` are per year; ``min_trl`` is in days (``None`` when the Sharpe ratio is
    not above zero, i.e. no track record would suffice). Computed by
    :func:`finmlops.evaluation.performance_metrics`; defined here so ``evaluation.json``'s
    contract validates into the same class.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")

    days: int
    total_return: float
    annual_return: float
    volatility: float
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float
    max_drawdown_days: int
    hit_rate: float | None
    exposure: float
    turnover: float
    cost_drag: float
    skew: float | None
    kurtosis: float | None
    sharpe_per_period: float | None
    psr: float | None
    min_trl: float | None
    dsr: float | None
    dsr_benchmark_sharpe: float
    """The expected maximum per-period Sharpe ratio of ``n_trials`` unskilled trials."""
    n_trials: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CostPoint(PerformanceMetrics):
    """The strategy's metrics at one swept cost per unit traded."""

    cost_bps: float


class Execution(Contract):
    setting: Literal["same_close", "next_open", "next_close"]
    description: str


class Histogram(Contract):
    edges: list[float]
    counts: list[float]


class Pbo(Contract):
    """The probability of backtest overfitting by CSCV over the ledger's trials."""

    pbo: float
    n_trials: int
    n_days: int
    n_splits: int
    n_combinations: int
    oos_below_zero: float
    metric: str
    start: str
    end: str
    logit_histogram: Histogram


class TrialsUsed(Contract):
    """The trials every DSR is deflated by, how they were counted, and PBO when computed."""

    n: int
    recorded: int
    prior: int
    source: Literal["ledger", "variants"]
    counted: list[str]
    sr_variance: Number
    active_sr_variance: Number
    sr_variance_source: str
    pbo: Pbo | None
    pbo_note: str


class SharpeDifference(Contract):
    """SR(strategy) - SR(benchmark) per period; ``p_value`` one-sided (strategy above)."""

    sharpe_a: Number
    sharpe_b: Number
    difference: Number
    se: Number
    z: Number
    p_value: Number
    p_two_sided: Number
    method: str
    lags: int


class ActiveStats(Contract):
    """The strategy's active returns against one benchmark (PSR/DSR of the active returns)."""

    active_total: float
    active_annual: float
    tracking_error: float
    information_ratio: Number
    sharpe_per_period: Number
    sharpe: Number
    psr: Number
    min_trl: Number
    dsr: Number
    dsr_benchmark_sharpe: float
    n_trials: int
    sharpe_difference: SharpeDifference
    sharpe_difference_iid: SharpeDifference
    break_even_bps: Number


class Capm(Contract):
    """Excess returns regressed on buy-and-hold's (Newey-West); ``beta_t`` tests beta = 1."""

    n: int
    alpha: Number
    beta: Number
    alpha_se: Number
    beta_se: Number
    alpha_t: Number
    beta_t: Number
    alpha_p: Number
    r_squared: Number
    lags: int
    alpha_annual: Number


class Relative(Contract):
    exposure: float
    buy_and_hold: ActiveStats
    exposure_matched: ActiveStats
    capm: Capm


class DsrByTrials(Contract):
    """The strategy's DSR at other trial counts (same Sharpe-ratio variance)."""

    trials: list[int]
    absolute: list[Number]
    active: list[Number]


class ReliabilityBin(Contract):
    lo: float
    hi: float
    count: int
    mean_predicted: float
    observed: float


class Direction(Contract):
    n: int
    accuracy: Number
    accuracy_ci: list[Number]
    always_up: Number
    yesterday: Number
    brier: Number
    log_loss: Number
    reliability: list[ReliabilityBin]


class McNemar(Contract):
    n: int
    wins: int
    losses: int
    p_value: float
    p_better: float


class DieboldMariano(Contract):
    n: int
    mean_difference: float
    statistic: Number
    p_value: Number
    p_better: Number
    horizon: int
    mean_loss_model: float
    mean_loss_other: float


class NaiveForecasts(Contract):
    coin: DieboldMariano
    base_rate: DieboldMariano


class Auc(Contract):
    auc: Number
    se: Number
    ci: list[Number] | None
    p_value: Number
    positives: int
    negatives: int


class Forecast(Contract):
    mcnemar_vs_always_up: McNemar
    diebold_mariano: NaiveForecasts
    auc: Auc


class VariantEvaluation(Contract):
    """One variant: its lines' metrics (keys of ``finmlops.evaluation.columns.LINES``),
    benchmark-relative statistics, stress windows, cost sweep and forecast tests."""

    days: int
    start: str
    end: str
    tickers: list[str]
    dropped_rows: int
    metrics: dict[str, PerformanceMetrics]
    relative: Relative
    dsr_by_trials: DsrByTrials
    stress: dict[str, dict[str, PerformanceMetrics | None]]
    """Per window, each line's metrics (``None``: too few days in the window)."""
    stress_active: dict[str, dict[str, Number]]
    cost_sweep: list[CostPoint]
    break_even_bps: Number
    direction: Direction
    forecast: Forecast
    tearsheet: dict[str, Any]
    """Chart data only: ``calendar``, ``drawdowns``, ``distribution`` per line."""
    series: dict[str, Any]
    """Chart data only: ``dates``, equity per line, ``position``, ``rolling``."""


class EvaluationFile(Contract):
    """The whole ``evaluation.json``. ``predictions`` and ``dataset_version`` are the
    stage's: an evaluation computed outside it (:func:`finmlops.evaluation.evaluate_predictions`)
    has none."""

    format: Literal[2]
    settings: EvaluationSettings
    cost_bps: float
    execution: Execution
    trials: TrialsUsed
    windows: dict[str, StressWindow]
    notes: list[str]
    variants: dict[str, VariantEvaluation]
    predictions: dict[str, str] = Field(default_factory=dict)
    dataset_version: str | None = None


def read_evaluation(path: Path) -> EvaluationFile:
    """The evaluate stage's ``evaluation.json``, validated once."""
    return EvaluationFile.read_stage_file(path, "evaluation", "evaluate")
