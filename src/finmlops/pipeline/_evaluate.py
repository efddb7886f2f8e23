"""The evaluate stage: OOS predictions of every variant -> ``evaluation.json`` (backtests with
costs under the execution setting, benchmarks, benchmark-relative statistics, forecast tests,
stress windows, cost sweep, break-even costs, PSR/DSR deflated by the trial ledger, PBO, the
tear sheet's figures)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finmlops.config import Settings
from finmlops.contracts import (
    EvaluationFile,
    EvaluationOutput,
    EvaluationSummary,
    TrainedVariant,
    read_evaluation,
)
from finmlops.errors import ConfigError, FinmlopsError, StageError
from finmlops.files import write_json
from finmlops.pipeline.runner import RunContext, StageResult

EVALUATE_FORMAT = 3
"""Bump when the evaluation's figures change for the same inputs, so cached results are
recomputed (3: execution setting, risk-free rate, benchmark-relative statistics, forecast
tests, the trial ledger and PBO)."""


def run(ctx: RunContext) -> StageResult:
    """Evaluate each trained variant's out-of-sample predictions (cached by content)."""
    import pandas as pd

    from finmlops.evaluation import backtests_for, evaluate_predictions, summarize, trial_returns

    trained = ctx.run_state("trained").need_trained()
    settings = ctx.settings
    ev = settings.evaluation
    paths = {v: t.oos_path for v, t in sorted(trained.items())}
    for v, p in paths.items():
        if not p.is_file():
            raise StageError(f"predictions of {v!r} not found at {p}: run `finmlops train` again")
    horizon = settings.features.horizon
    frames = {v: pd.read_parquet(p) for v, p in paths.items()}
    notes: list[str] = []
    bars = _bars(ctx, frames) if _needs_bars(settings) else None
    if bars is not None:
        frames = _execution_returns(frames, bars, ev.execution)
        notes.append(f"positions {_EXECUTION_NOTES[ev.execution]}; returns from the stored bars"
                     + (f" (labels are {horizon}-day directions, each position is held one "
                        "day)" if horizon > 1 else ""))
    else:
        notes.append("positions filled at the close of t (the price the features used), held "
                     "to the close of t+1")
    rf = _risk_free(ev, frames)
    if rf is not None:
        notes.append(_rf_note(ev))
    impact_inputs = None
    if ev.costs.impact_coefficient > 0:
        impact_inputs, note = _impact_inputs(bars)
        notes.append(note)
    # every evaluated configuration is a trial: record it, then deflate by the whole ledger
    runs = {v: backtests_for(_clean(f), ev, impact_inputs, rf) for v, f in frames.items()}
    trials, trial_notes = _ledger(ctx, trained, {v: trial_returns(r) for v, r in runs.items()})
    notes.extend(trial_notes)
    key = {
        "format": EVALUATE_FORMAT,
        "predictions": {v: _sha256(p) for v, p in paths.items()},
        "evaluation": ev.model_dump(mode="json"),
        "risk_free": _sha256(ev.risk_free_path) if ev.risk_free_path else None,
        "trials": _trials_key(trials),
        "horizon": horizon,
        "dataset_version": ctx.state.get("dataset_version") if bars is not None else None,
    }
    out_path = ctx.cache_dir("evaluate", key) / "evaluation.json"
    if out_path.is_file():
        evaluation = read_evaluation(out_path)
    else:
        ctx.progress(f"evaluating {', '.join(paths)}")
        computed = evaluate_predictions(frames, ev, trials=trials, impact=impact_inputs,
                                        rf=rf, horizon=horizon)
        evaluation = computed.model_copy(update={
            "notes": [*notes, *computed.notes],
            "predictions": {v: str(p) for v, p in paths.items()},
            "dataset_version": ctx.state.get("dataset_version")})
        write_json(out_path, evaluation.to_json(), indent=1)
    summary = summarize(evaluation)
    _log_to_runs(ctx, trained, evaluation, summary, out_path, key)
    line = "; ".join(
        f"{v}: Sharpe {_num(s.sharpe)} (B&H {_num(s.buy_and_hold_sharpe)}), active "
        f"DSR {_num(s.active_dsr)}, alpha t {_num(s.alpha_t)}" for v, s in summary.items())
    n = evaluation.trials.n
    output = EvaluationOutput(path=str(out_path), summary=summary)
    return StageResult(summary=f"{line} ({n} trials)", outputs={"evaluation": output.to_json()})


_EXECUTION_NOTES = {
    "same_close": "filled at the close of t (the price the features used), held to the close "
                  "of t+1",
    "next_open": "filled at the open of t+1, held to the open of t+2",
    "next_close": "filled at the close of t+1, held to the close of t+2",
}


def trial_config(settings: Settings, variant: str) -> dict[str, Any]:
    """Everything a person can tune that changes a variant's backtest: the variant's model
    settings, features and horizon, training scheme and seed, data range, position rule,
    dead band, costs, execution and risk-free rate. Not: where files live, threads, report
    options, the cutoff of the deployable fit (out-of-sample predictions do not depend on
    it), or the variant's name."""
    data = settings.data.model_dump(mode="json")
    ev = settings.evaluation.model_dump(mode="json")
    train = settings.train.model_dump(mode="json")
    return {
        "variant": train["variants"][variant],
        "features": settings.features.model_dump(mode="json"),
        "train": {k: train[k] for k in ("seed", "min_train_years", "test_block_years",
                                        "embargo_days", "validation_fraction")},
        "data": {k: data[k] for k in ("source", "tickers", "start", "end")},
        "evaluation": {k: ev[k] for k in ("rule", "threshold", "dead_band", "execution",
                                          "costs", "risk_free_rate", "risk_free_path")},
    }


def _ledger(ctx: RunContext, trained: Mapping[str, TrainedVariant],
            returns: dict[str, Any]) -> tuple[Any, list[str]]:
    """Record this run's trials and read the whole ledger back; fall back to the variants
    evaluated (with a note) when the tracking store cannot say."""
    from finmlops.evaluation import trials_from_returns

    settings = ctx.settings
    ev = settings.evaluation
    version = str(ctx.state.get("dataset_version") or "")
    try:
        from finmlops.tracking import read_trials, record_trial

        for v, frame in returns.items():
            parent = trained[v].run_id if v in trained else None
            record_trial(settings, trial_config(settings, v), frame, name=v,
                         data_version=version, parent_run_id=parent)
        records = read_trials(settings)
    except (ImportError, FinmlopsError) as exc:
        return None, [f"trial ledger unavailable ({exc}): DSR trials are the variants "
                      "evaluated"]
    names: dict[str, int] = {}
    for r in records:
        names[r.name or "unnamed"] = names.get(r.name or "unnamed", 0) + 1
    listed = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(names.items()))
    counted = [
        f"{len(records)} distinct configurations in the trial ledger ({listed})",
        "a trial is one combination of variant settings, features and horizon, training "
        "scheme and seed, data range, position rule, threshold, dead band, costs, execution "
        "and risk-free rate",
    ]
    if ev.prior_trials:
        counted.append(f"{ev.prior_trials} more declared in evaluation.prior_trials")
    trials = trials_from_returns({r.trial_id: r.returns for r in records},
                                 prior=ev.prior_trials, pbo_splits=ev.pbo_splits,
                                 pbo_min_trials=ev.pbo_min_trials, counted=counted)
    return trials, [f"DSR trials = {trials.stats.n_trials}, from the trial ledger"
                    + (f" plus {ev.prior_trials} declared" if ev.prior_trials else "")]


def _trials_key(trials: Any) -> Any:
    if trials is None:
        return None
    return {"stats": trials.stats.as_dict(), "pbo": (trials.pbo or {}).get("pbo"),
            "counted": trials.counted}


def _needs_bars(settings: Settings) -> bool:
    ev = settings.evaluation
    return (ev.execution != "same_close" or settings.features.horizon > 1
            or ev.costs.impact_coefficient > 0)


def _clean(frame: Any) -> Any:
    from finmlops.evaluation import clean_predictions

    return clean_predictions(frame)[0]


def _bars(ctx: RunContext, frames: dict[str, Any]) -> Any:
    """The stored bars of every predicted ticker (the execution prices come from them)."""
    tickers = sorted({str(t) for f in frames.values() for t in f["ticker"].unique()})
    try:
        from finmlops.data import read_bars  # type: ignore[attr-defined,unused-ignore]

        return read_bars(ctx.settings, ctx.state.get("dataset_version"), tickers)
    except (ImportError, FinmlopsError) as exc:
        why = (f"execution {ctx.settings.evaluation.execution!r}"
               if ctx.settings.evaluation.execution != "same_close"
               else f"a {ctx.settings.features.horizon}-day horizon or market impact")
        raise StageError(f"{why} is backtested on returns from the stored bars, which are "
                         f"unavailable ({exc})") from exc


def _execution_returns(frames: dict[str, Any], bars: Any, execution: str) -> dict[str, Any]:
    """The predictions with ``forward_return`` replaced by what a position decided that day
    earns under ``execution`` (a one-day position whatever the label horizon)."""
    import pandas as pd

    from finmlops.evaluation import execution_returns

    ret = execution_returns(bars, execution)  # type: ignore[arg-type]
    lookup = pd.Series(ret["return"].to_numpy(), index=pd.MultiIndex.from_arrays(
        [ret["ticker"], ret["date"]]))
    out: dict[str, Any] = {}
    for v, f in frames.items():
        at = pd.MultiIndex.from_arrays([f["ticker"].astype(str), pd.to_datetime(f["date"])])
        out[v] = f.assign(forward_return=lookup.reindex(at).to_numpy())
    return out


def _risk_free(ev: Any, frames: dict[str, Any]) -> Any:
    """The per-period risk-free return on every predicted day, or ``None`` when it is 0."""
    import numpy as np
    import pandas as pd

    dates = pd.DatetimeIndex(sorted({d for f in frames.values()
                                     for d in pd.to_datetime(f["date"])}))
    ppy = ev.periods_per_year
    if ev.risk_free_path is None:
        if ev.risk_free_rate == 0:
            return None
        return pd.Series((1 + ev.risk_free_rate) ** (1 / ppy) - 1, index=dates)
    path = Path(ev.risk_free_path)
    try:
        table = pd.read_csv(path, parse_dates=["date"])
        rate = table.set_index("date")["rate"].astype("float64").sort_index()
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"evaluation.risk_free_path: cannot read a date,rate CSV from "
                          f"{path} ({exc})") from None
    if rate.empty or rate.index[0] > dates[0] or not np.isfinite(rate.to_numpy()).all():
        raise ConfigError(f"evaluation.risk_free_path: {path} must have finite rates from "
                          f"{dates[0].date()} on")
    annual = rate.reindex(rate.index.union(dates)).ffill().reindex(dates)
    return (1 + annual) ** (1 / ppy) - 1


def _rf_note(ev: Any) -> str:
    if ev.risk_free_path is not None:
        return (f"risk-free rate from {ev.risk_free_path}: earned by the capital out of the "
                "position, subtracted for Sharpe ratios")
    return (f"risk-free rate {100 * ev.risk_free_rate:g}% a year: earned by the capital out of "
            "the position, subtracted for Sharpe ratios")


def _log_to_runs(ctx: RunContext, trained: Mapping[str, TrainedVariant],
                 evaluation: EvaluationFile, summary: Mapping[str, EvaluationSummary],
                 path: Path, key: Any) -> None:
    """The headline backtest numbers and ``evaluation.json`` on each variant's MLflow run."""
    from finmlops.tracking import log_evaluation

    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    for variant, t in trained.items():
        run_id = t.run_id
        if not run_id or variant not in summary:
            continue
        metrics = {f"backtest.{k}": float(v) for k, v in summary[variant].to_json().items()
                   if isinstance(v, int | float)}
        log_evaluation(ctx.settings, run_id, metrics, {"evaluation": path}, key=digest[:32],
                       evaluation=evaluation)


def _impact_inputs(bars: Any) -> tuple[dict[str, Any] | None, str]:
    """Per ticker trailing volatility and ADV from the stored bars, for the impact term."""
    import pandas as pd

    from finmlops.evaluation import impact_inputs

    if bars is None:
        return None, "market impact not charged: bars unavailable"
    out: dict[str, Any] = {}
    for t, g in bars.groupby("ticker"):
        sigma, adv = impact_inputs(g["adj_close"], g["close"], g["volume"])
        out[str(t)] = pd.DataFrame({"sigma": sigma, "adv_notional": adv},
                                   index=pd.DatetimeIndex(g["date"]))
    return out, "market impact charged with 20-day volatility and average traded notional"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"
