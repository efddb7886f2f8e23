"""The evaluate stage: OOS predictions of every variant -> ``evaluation.json`` (backtests with
costs, benchmarks, stress windows, cost sweep, break-even cost, PSR/DSR, accuracy)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from finmlops.config import Settings
from finmlops.errors import FinmlopsError, StageError
from finmlops.pipeline.runner import RunContext, StageResult

EVALUATE_FORMAT = 2
"""Bump when the evaluation's figures change for the same inputs, so cached results are
recomputed (2: the DSR's Sharpe-ratio variance is floored at the null variance, and a
horizon > 1 is backtested on one-day returns)."""


def run(ctx: RunContext) -> StageResult:
    """Evaluate each trained variant's out-of-sample predictions (cached by content)."""
    import pandas as pd

    from finmlops.evaluation import evaluate_predictions, summarize

    trained: dict[str, Any] = ctx.require("trained", "train")
    settings = ctx.settings
    paths = {v: Path(info["oos_path"]) for v, info in sorted(trained.items())}
    for v, p in paths.items():
        if not p.is_file():
            raise StageError(f"predictions of {v!r} not found at {p}: run `finmlops train` again")
    n_trials, source, notes = trial_count(settings, len(paths))
    horizon = settings.features.horizon
    impact = settings.evaluation.costs.impact_coefficient > 0
    key = {
        "format": EVALUATE_FORMAT,
        "predictions": {v: _sha256(p) for v, p in paths.items()},
        "evaluation": settings.evaluation.model_dump(mode="json"),
        "trials": [n_trials, source],
        "horizon": horizon,
        "dataset_version": ctx.state.get("dataset_version") if impact or horizon > 1 else None,
    }
    out_path = ctx.cache_dir("evaluate", key) / "evaluation.json"
    if out_path.is_file():
        evaluation: dict[str, Any] = json.loads(out_path.read_text("utf-8"))
    else:
        ctx.progress(f"evaluating {', '.join(paths)}")
        frames = {v: pd.read_parquet(p) for v, p in paths.items()}
        if horizon > 1:
            frames = _one_day_returns(ctx, frames)
            notes.append(f"labels are {horizon}-day directions; each prediction is backtested "
                         "as a one-day position on the next day's return from the stored bars")
        impact_inputs = None
        if impact:
            impact_inputs, note = _impact_inputs(ctx, frames)
            notes.append(note)
        evaluation = evaluate_predictions(
            frames, settings.evaluation, n_trials=n_trials, trials_source=source,
            impact=impact_inputs)
        evaluation["notes"] = [*notes, *evaluation["notes"]]
        evaluation["predictions"] = {v: str(p) for v, p in paths.items()}
        _write_json(out_path, evaluation)
    summary = summarize(evaluation)
    _log_to_runs(ctx, trained, summary, out_path, key)
    line = "; ".join(
        f"{v}: Sharpe {_num(s['sharpe'])} (B&H {_num(s['buy_and_hold_sharpe'])}), "
        f"DSR {_num(s['dsr'])}" for v, s in summary.items())
    return StageResult(summary=line,
                       outputs={"evaluation": {"path": str(out_path), "summary": summary}})


def _log_to_runs(ctx: RunContext, trained: dict[str, Any], summary: dict[str, Any],
                 path: Path, key: Any) -> None:
    """The headline backtest numbers and ``evaluation.json`` on each variant's MLflow run."""
    from finmlops.tracking import log_evaluation

    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    for variant, info in trained.items():
        run_id = info.get("run_id")
        if not run_id or variant not in summary:
            continue
        metrics = {f"backtest.{k}": float(v) for k, v in summary[variant].items()
                   if isinstance(v, int | float)}
        log_evaluation(ctx.settings, run_id, metrics, {"evaluation": path}, key=digest[:32])


def trial_count(settings: Settings, n_variants: int) -> tuple[int | None, str, list[str]]:
    """The DSR's number of trials from the tracking store, when it can say.

    Returns ``(n, source, notes)``; ``n`` is ``None`` (use the number of variants) when
    ``finmlops.tracking.count_trials`` is missing or fails.
    """
    try:
        from finmlops.tracking import count_trials  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None, "variants", []
    try:
        n = int(count_trials(settings))
    except FinmlopsError as exc:
        return None, "variants", [f"tracking store could not count trials ({exc})"]
    if n < n_variants:
        return n_variants, "variants", [
            f"tracking store counted {n} trials, fewer than the {n_variants} variants evaluated"]
    return n, "tracking", [f"DSR trials = {n}, counted in the tracking store"]


def _one_day_returns(ctx: RunContext, frames: dict[str, Any]) -> dict[str, Any]:
    """The predictions with ``forward_return`` replaced by the next bar's return.

    With a horizon h > 1 the OOS ``forward_return`` is the h-day return, but the backtest holds
    each position for one day (close t to close t+1): compounding overlapping h-day returns
    day after day would multiply the result. The one-day return comes from the stored bars.
    """
    import pandas as pd

    tickers = sorted({str(t) for f in frames.values() for t in f["ticker"].unique()})
    try:
        from finmlops.data import read_bars  # type: ignore[attr-defined,unused-ignore]

        bars = read_bars(ctx.settings, ctx.state.get("dataset_version"), tickers)
    except (ImportError, FinmlopsError) as exc:
        raise StageError(f"a {ctx.settings.features.horizon}-day horizon is backtested on "
                         f"one-day returns from the stored bars, which are unavailable ({exc})"
                         ) from exc
    bars = bars.sort_values(["ticker", "date"], kind="stable")
    nxt = bars.groupby("ticker", sort=False)["adj_close"].shift(-1) / bars["adj_close"] - 1.0
    one_day = pd.Series(nxt.to_numpy(), index=pd.MultiIndex.from_arrays(
        [bars["ticker"].astype(str), pd.to_datetime(bars["date"])]))
    out: dict[str, Any] = {}
    for v, f in frames.items():
        at = pd.MultiIndex.from_arrays([f["ticker"].astype(str), pd.to_datetime(f["date"])])
        out[v] = f.assign(forward_return=one_day.reindex(at).to_numpy())
    return out


def _impact_inputs(ctx: RunContext, frames: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """Per ticker trailing volatility and ADV from the stored bars, for the impact term."""
    import pandas as pd

    from finmlops.evaluation import impact_inputs

    tickers = sorted({str(t) for f in frames.values() for t in f["ticker"].unique()})
    try:
        from finmlops.data import read_bars  # type: ignore[attr-defined,unused-ignore]

        bars = read_bars(ctx.settings, ctx.state.get("dataset_version"), tickers)
    except (ImportError, FinmlopsError) as exc:
        return None, f"market impact not charged: bars unavailable ({exc})"
    out: dict[str, Any] = {}
    for t, g in bars.groupby("ticker"):
        sigma, adv = impact_inputs(g["adj_close"], g["close"], g["volume"])
        out[str(t)] = pd.DataFrame({"sigma": sigma, "adv_notional": adv},
                                   index=pd.DatetimeIndex(g["date"]))
    return out, "market impact charged with 20-day volatility and average traded notional"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str), "utf-8")
    os.replace(tmp, path)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"
