"""MLflow tracking and registry: the only package that imports mlflow (inside functions).

Runs per trained variant (opened before training, with the dataset as an input and per-epoch
losses), each variant an MLflow model (ONNX flavor + pyfunc, signature, input example) logged
as the run's ``LoggedModel``, evaluation metrics, registered versions with aliases
(``champion``, ``challenger``, ``previous-champion`` and one per variant), promotion with an
audit trail, and the trial ledger (every backtested configuration, for deflation and PBO).
"""

from finmlops.errors import TrackingError
from finmlops.tracking._client import Tracker, configure
from finmlops.tracking.aliases import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION
from finmlops.tracking.datasets import DatasetRef
from finmlops.tracking.declared import DECLARED, declared_aliases, planned_aliases, sync_aliases
from finmlops.tracking.evaluations import evaluation_figures, log_evaluation
from finmlops.tracking.logged_model import onnx_signature
from finmlops.tracking.promotion import (
    arm_versions,
    carry_out,
    history,
    promote,
    rollback,
    set_alias,
)
from finmlops.tracking.registry import (
    PUBLISHED_TAG,
    ModelVersionInfo,
    baseline_variant,
    download_arms,
    download_model,
    list_models,
    mark_published,
    register,
    resolve,
    run_metrics,
)
from finmlops.tracking.reports import log_report
from finmlops.tracking.runs import (
    TrainingRun,
    config_hash,
    count_trials,
    find_training_run,
    git_commit,
    log_artifacts,
    log_trained_variants,
    log_training,
    start_training_run,
    training_run,
)
from finmlops.tracking.studies import end_parent_run, start_parent_run
from finmlops.tracking.trials import TrialRecord, read_trials, record_trial, trial_id

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DECLARED",
    "PREVIOUS_CHAMPION",
    "PUBLISHED_TAG",
    "DatasetRef",
    "ModelVersionInfo",
    "Tracker",
    "TrackingError",
    "TrainingRun",
    "TrialRecord",
    "arm_versions",
    "baseline_variant",
    "carry_out",
    "config_hash",
    "configure",
    "count_trials",
    "declared_aliases",
    "download_arms",
    "download_model",
    "end_parent_run",
    "evaluation_figures",
    "find_training_run",
    "git_commit",
    "history",
    "list_models",
    "log_artifacts",
    "log_evaluation",
    "log_report",
    "log_trained_variants",
    "log_training",
    "mark_published",
    "onnx_signature",
    "planned_aliases",
    "promote",
    "read_trials",
    "record_trial",
    "register",
    "resolve",
    "rollback",
    "run_metrics",
    "set_alias",
    "start_parent_run",
    "start_training_run",
    "sync_aliases",
    "training_run",
    "trial_id",
]
