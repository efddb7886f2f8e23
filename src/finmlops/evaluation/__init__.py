"""Honest evaluation: walk-forward splits, classification metrics, backtests, PSR/DSR,
benchmark-relative statistics, forecast tests, trial deflation and PBO, execution timing."""

# --- splits and classification metrics (walk-forward training) ---
from finmlops.evaluation.classification import (  # noqa: I001
    METRIC_NAMES as METRIC_NAMES,
    auc as auc,
    baseline_metrics as baseline_metrics,
    classification_metrics as classification_metrics,
    naive_probabilities as naive_probabilities,
    wilson_interval as wilson_interval,
)
from finmlops.evaluation.splits import (
    Fold as Fold,
    holdout_split as holdout_split,
    label_known_by as label_known_by,
    purged_train_end as purged_train_end,
    walk_forward as walk_forward,
)

_SPLITS_ALL: list[str] = [
    "METRIC_NAMES",
    "Fold",
    "auc",
    "baseline_metrics",
    "classification_metrics",
    "holdout_split",
    "label_known_by",
    "naive_probabilities",
    "purged_train_end",
    "walk_forward",
    "wilson_interval",
]

# --- backtest, performance metrics, stress windows, cost sweep ---
from finmlops.evaluation.assessment import (  # noqa: E402, I001
    LINES as LINES,
    backtests_for as backtests_for,
    clean_predictions as clean_predictions,
    evaluate_predictions as evaluate_predictions,
    summarize as summarize,
    trial_returns as trial_returns,
    variant_trials as variant_trials,
)
from finmlops.evaluation.backtest import (  # noqa: E402
    BacktestResult as BacktestResult,
    backtest_positions as backtest_positions,
    buy_and_hold as buy_and_hold,
    cost_per_unit as cost_per_unit,
    equal_weight as equal_weight,
    impact_inputs as impact_inputs,
    positions as positions,
    run_backtest as run_backtest,
)
from finmlops.contracts import PerformanceMetrics as PerformanceMetrics  # noqa: E402
from finmlops.evaluation.performance import (  # noqa: E402
    deflated_sharpe_ratio as deflated_sharpe_ratio,
    expected_max_sharpe as expected_max_sharpe,
    max_drawdown as max_drawdown,
    min_track_record_length as min_track_record_length,
    performance_metrics as performance_metrics,
    probabilistic_sharpe_ratio as probabilistic_sharpe_ratio,
    sharpe_moments as sharpe_moments,
)
from finmlops.evaluation.sensitivity import (  # noqa: E402
    break_even_active_bps as break_even_active_bps,
    break_even_cost_bps as break_even_cost_bps,
    cost_sweep as cost_sweep,
    total_return_at as total_return_at,
)
from finmlops.evaluation.stress import (  # noqa: E402
    stress_metrics as stress_metrics,
    window_mask as window_mask,
)

_BACKTEST_ALL: list[str] = [
    "LINES",
    "BacktestResult",
    "PerformanceMetrics",
    "backtest_positions",
    "backtests_for",
    "break_even_active_bps",
    "break_even_cost_bps",
    "buy_and_hold",
    "clean_predictions",
    "cost_per_unit",
    "cost_sweep",
    "deflated_sharpe_ratio",
    "equal_weight",
    "evaluate_predictions",
    "expected_max_sharpe",
    "impact_inputs",
    "max_drawdown",
    "min_track_record_length",
    "performance_metrics",
    "positions",
    "probabilistic_sharpe_ratio",
    "run_backtest",
    "sharpe_moments",
    "stress_metrics",
    "summarize",
    "total_return_at",
    "trial_returns",
    "variant_trials",
    "window_mask",
]

# --- benchmark-relative statistics, forecast tests, trials and PBO, execution, tear sheet ---
from finmlops.evaluation.execution import (  # noqa: E402, I001
    EXECUTIONS as EXECUTIONS,
    Execution as Execution,
    execution_returns as execution_returns,
)
from finmlops.evaluation.forecast import (  # noqa: E402
    DeLong as DeLong,
    DieboldMariano as DieboldMariano,
    McNemar as McNemar,
    base_rate_forecast as base_rate_forecast,
    delong_auc as delong_auc,
    diebold_mariano as diebold_mariano,
    log_loss_terms as log_loss_terms,
    mcnemar_exact as mcnemar_exact,
)
from finmlops.evaluation.overfitting import (  # noqa: E402
    TRIAL_COLUMNS as TRIAL_COLUMNS,
    PBOResult as PBOResult,
    Trials as Trials,
    TrialStats as TrialStats,
    pbo_cscv as pbo_cscv,
    trial_stats as trial_stats,
    trials_from_returns as trials_from_returns,
)
from finmlops.evaluation.relative import (  # noqa: E402
    Regression as Regression,
    SharpeDifference as SharpeDifference,
    exposure_matched as exposure_matched,
    hac_regression as hac_regression,
    information_ratio as information_ratio,
    long_run_covariance as long_run_covariance,
    memmel_test as memmel_test,
    newey_west_lags as newey_west_lags,
    sharpe_difference as sharpe_difference,
)
from finmlops.evaluation.tearsheet import (  # noqa: E402
    calendar_returns as calendar_returns,
    distribution as distribution,
    drawdown_episodes as drawdown_episodes,
    rolling_stats as rolling_stats,
)

_RELATIVE_ALL: list[str] = [
    "EXECUTIONS",
    "TRIAL_COLUMNS",
    "DeLong",
    "DieboldMariano",
    "Execution",
    "McNemar",
    "PBOResult",
    "Regression",
    "SharpeDifference",
    "TrialStats",
    "Trials",
    "base_rate_forecast",
    "calendar_returns",
    "delong_auc",
    "diebold_mariano",
    "distribution",
    "drawdown_episodes",
    "execution_returns",
    "exposure_matched",
    "hac_regression",
    "information_ratio",
    "log_loss_terms",
    "long_run_covariance",
    "mcnemar_exact",
    "memmel_test",
    "newey_west_lags",
    "pbo_cscv",
    "rolling_stats",
    "sharpe_difference",
    "trial_stats",
    "trials_from_returns",
]

# --- universe books: ranked long/short portfolios, IC, quantile spreads, capacity ---
from finmlops.evaluation.book import (  # noqa: E402, I001
    BookReport as BookReport,
    evaluate_book as evaluate_book,
)
from finmlops.evaluation.portfolio import (  # noqa: E402
    BENCHMARKS as BENCHMARKS,
    Book as Book,
    benchmark_returns as benchmark_returns,
    capacity_curve as capacity_curve,
    information_coefficient as information_coefficient,
    information_coefficient_summary as information_coefficient_summary,
    quantile_returns as quantile_returns,
    quantile_summary as quantile_summary,
    simulate as simulate,
    target_weights as target_weights,
)

_PORTFOLIO_ALL: list[str] = [
    "BENCHMARKS",
    "Book",
    "BookReport",
    "benchmark_returns",
    "capacity_curve",
    "evaluate_book",
    "information_coefficient",
    "information_coefficient_summary",
    "quantile_returns",
    "quantile_summary",
    "simulate",
    "target_weights",
]

__all__ = [*_SPLITS_ALL, *_BACKTEST_ALL, *_RELATIVE_ALL, *_PORTFOLIO_ALL]
