"""``finmlops search``: an Optuna search over one universe variant whose every trial counts.

Each trial varies the variant's hyper-parameters, its feature set and the book's cut
(quantile) and weighting; it is trained walk-forward, booked, and recorded in the trial
ledger as a child run of the search's MLflow run. The objective is the book's net Sharpe
ratio, i.e. exactly the quantity a search overfits, so the summary deflates the best
trial's Sharpe ratio by every trial of the universe in the ledger (not only this search's)
and computes PBO over them. Several processes (Argo pods) can share one study through
``universe.search.storage``; each runs ``trials`` trials, and a last ``--trials 0`` run
summarises.
"""

from __future__ import annotations

import math
import time
from typing import Any

from finmlops.config import (
    GBMSettings,
    PortfolioSettings,
    Settings,
    UniverseVariantSettings,
    VariantSettings,
)
from finmlops.files import write_json
from finmlops.research.run import study_dir, trials_block
from finmlops.research.study import (
    Prepared,
    Progress,
    book,
    prepare,
    quiet,
    train_one,
    trial_config,
    universe_trials,
)

SPACE: dict[str, str] = {
    "features": "raw | cs | both",
    "quantile": "0.1 .. 0.3 (step 0.05)",
    "weighting": "equal | volatility",
    "gbm.num_leaves": "4 .. 64 (log)",
    "gbm.learning_rate": "0.01 .. 0.2 (log)",
    "gbm.n_estimators": "50 .. 400 (step 50)",
    "gbm.min_child_samples": "50 .. 2000 (log)",
    "gbm.colsample_bytree": "0.4 .. 1.0",
    "network.hidden": "8 .. 64 (log)",
    "network.learning_rate": "3e-4 .. 1e-2 (log)",
}
"""The search space, as the report states it."""


def storage_url(settings: Settings) -> str:
    s = settings.universe.search.storage
    return s or f"sqlite:///{(settings.home / 'search.db').resolve()}"


def suggest(trial: Any, base: UniverseVariantSettings, portfolio: PortfolioSettings
            ) -> tuple[UniverseVariantSettings, PortfolioSettings]:
    """One point of :data:`SPACE` around ``base``."""
    features = trial.suggest_categorical("features", ["raw", "cs", "both"])
    port = portfolio.model_copy(update={
        "quantile": trial.suggest_float("quantile", 0.1, 0.3, step=0.05),
        "weighting": trial.suggest_categorical("weighting", ["equal", "volatility"])})
    if base.kind == "gbm":
        gbm = GBMSettings.model_validate({**base.gbm.model_dump(), **{
            "num_leaves": trial.suggest_int("gbm.num_leaves", 4, 64, log=True),
            "learning_rate": trial.suggest_float("gbm.learning_rate", 0.01, 0.2, log=True),
            "n_estimators": trial.suggest_int("gbm.n_estimators", 50, 400, step=50),
            "min_child_samples": trial.suggest_int("gbm.min_child_samples", 50, 2000,
                                                   log=True),
            "colsample_bytree": trial.suggest_float("gbm.colsample_bytree", 0.4, 1.0)}})
        return base.model_copy(update={"features": features, "gbm": gbm}), port
    net = VariantSettings.model_validate({**base.network.model_dump(), **{
        "hidden": trial.suggest_int("network.hidden", 8, 64, log=True),
        "learning_rate": trial.suggest_float("network.learning_rate", 3e-4, 1e-2, log=True)}})
    return base.model_copy(update={"features": features, "network": net}), port


def _objective(settings: Settings, prep: Prepared, parent: str, progress: Progress) -> Any:
    from finmlops.tracking import record_trial

    u = settings.universe
    base = u.variants[u.search.variant]

    def objective(trial: Any) -> float:
        variant, port = suggest(trial, base, u.portfolio)
        outcome = train_one(settings, prep, f"{u.search.variant}-t{trial.number}", variant)
        rep = book(settings, prep, outcome.oos, portfolio=port, capacity=False)
        run_id = record_trial(settings, trial_config(settings, prep, variant, port),
                              rep.trial_returns(),
                              name=f"search/{u.search.variant}/{trial.number}",
                              data_version=prep.version, parent_run_id=parent)
        sharpe = rep.figures["metrics"]["sharpe"]
        ic = rep.figures["ic"]["mean"]
        trial.set_user_attr("trial_run_id", run_id)
        trial.set_user_attr("ic", ic)
        progress(f"trial {trial.number}: net Sharpe "
                 f"{'n/a' if sharpe is None else f'{sharpe:.2f}'}, IC "
                 f"{'n/a' if ic is None else f'{ic:.4f}'}")
        return float(sharpe) if sharpe is not None else -math.inf

    return objective


def run_search(settings: Settings, *, trials: int | None = None,
               progress: Progress = quiet) -> dict[str, Any]:
    """Run ``trials`` (default ``universe.search.trials``) more trials of the study, then
    summarise every trial of the universe; written to ``search.json`` beside
    ``universe.json``."""
    import optuna

    from finmlops.tracking import end_parent_run, start_parent_run

    u = settings.universe
    s = u.search
    n = s.trials if trials is None else trials
    t0 = time.perf_counter()
    prep = prepare(settings, progress)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"{s.study}-{prep.universe_key}", storage=storage_url(settings),
        direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=s.seed + len_trials(settings, prep)))
    if n > 0:
        parent = start_parent_run(settings, "search", f"search/{s.variant}", {
            "universe": prep.universe_key, "variant": s.variant, "trials": n,
            "space": SPACE})
        status = "FAILED"
        try:
            study.optimize(_objective(settings, prep, parent, progress), n_trials=n,
                           catch=())
            status = "FINISHED"
        finally:
            best_value = _best_value(study)
            end_parent_run(settings, parent, {"trials": float(n),
                                              "best_sharpe": best_value}, status)
    ledger, sharpes = universe_trials(settings, prep.universe_key)
    summary: dict[str, Any] = {
        "universe": prep.universe_key, "dataset_version": prep.version,
        "study": study.study_name, "variant": s.variant, "space": SPACE,
        "optuna_trials": len(study.trials), "ran": n,
        "trials": trials_block(ledger, sharpes), "best": None,
    }
    done = [t for t in study.trials if t.value is not None and math.isfinite(t.value)]
    if done:
        best = max(done, key=lambda t: float(t.value or 0.0))
        variant, port = _replay_params(best.params, u.variants[s.variant], u.portfolio)
        outcome = train_one(settings, prep, f"{s.variant}-best", variant)
        rep = book(settings, prep, outcome.oos, portfolio=port, stats=ledger.stats)
        summary["best"] = {"number": best.number, "params": best.params,
                           "sharpe_in_search": best.value, "book": rep.figures,
                           "classification": outcome.metrics}
    summary["seconds"] = time.perf_counter() - t0
    path = write_json(study_dir(settings, prep.universe_key) / "search.json", summary,
                      indent=1, trailing_newline=True)
    summary["path"] = str(path)
    return summary


def len_trials(settings: Settings, prep: Prepared) -> int:
    """Trials already in the study (so a second worker's sampler is seeded differently)."""
    import optuna

    try:
        return len(optuna.load_study(study_name=f"{settings.universe.search.study}-"
                                                f"{prep.universe_key}",
                                     storage=storage_url(settings)).trials)
    except KeyError:
        return 0


def _best_value(study: Any) -> float:
    try:
        return float(study.best_value)
    except ValueError:
        return math.nan


class _Fixed:
    """A trial that answers with the parameters of a finished one (to rebuild the best)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.params[name]

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        return float(self.params[name])

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        return int(self.params[name])


def _replay_params(params: dict[str, Any], base: UniverseVariantSettings,
                   portfolio: PortfolioSettings
                   ) -> tuple[UniverseVariantSettings, PortfolioSettings]:
    return suggest(_Fixed(params), base, portfolio)
