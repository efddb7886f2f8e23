"""Pipeline stage ``abtest``: replay the held-out days through the real service, then decide.

The service runs in-process on a free loopback port with a fresh prediction log under
``<home>/abtest/<run-id>/``; the replay talks to it over HTTP exactly as a live client would.
The stage never promotes: ``finmlops abtest decide --apply`` does, when asked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from finmlops.config import Settings
from finmlops.errors import StageError
from finmlops.pipeline.runner import RunContext, StageResult


def replay_period(settings: Settings, start: dt.date | None = None,
                  end: dt.date | None = None) -> tuple[dt.date, dt.date | None]:
    """``abtest.replay_start`` (default: the day after ``train.cutoff``) to ``replay_end``."""
    first = start or settings.abtest.replay_start
    if first is None:
        if settings.train.cutoff is None:
            raise StageError("no replay period: set abtest.replay_start (train.cutoff is None)")
        first = settings.train.cutoff + dt.timedelta(days=1)
    last = end or settings.abtest.replay_end
    if last is not None and last < first:
        raise StageError(f"replay period is empty: {first} > {last}")
    return first, last


def model_dirs(settings: Settings, state: dict[str, Any]) -> dict[str, Path]:
    """The local model directory of every experiment arm (and the mirror), from ``train``."""
    trained = state.get("trained")
    if not trained:
        raise StageError("no 'trained' yet: run `finmlops run --until train` first")
    arms = [c.name for c in settings.experiment.candidates]
    if settings.experiment.mirror is not None:
        arms.append(settings.experiment.mirror.name)
    out: dict[str, Path] = {}
    for arm in arms:
        entry = trained.get(arm)
        if not entry or not Path(entry.get("model_dir", "")).is_dir():
            raise StageError(f"no trained model directory for arm {arm!r}: run the train stage")
        out[arm] = Path(entry["model_dir"])
    return out


def input_signature(model_dir: Path) -> tuple[int, list[str]]:
    """``(W, feature names)`` of the experiment's shared input, from ``model.json``."""
    try:
        meta = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
        return int(meta["window"]), [str(n) for n in meta["feature_names"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StageError(f"{model_dir}/model.json is missing or invalid: {exc}") from None


def build_replay_input(settings: Settings, bars: Any, window: int, names: list[str],
                       start: dt.date, end: dt.date | None) -> Any:
    """Full-feature windows ``[n, W, F]``, dates, tickers and forward returns of the period."""
    import numpy as np

    from finmlops.abtest import ReplayInput
    from finmlops.features import build_features, make_windows, window_ends

    f = settings.features
    # Each served signal is held one day, so outcomes are next-day returns whatever the
    # label horizon (features do not depend on it); an h-day return here would overstate P&L.
    frame = build_features(bars, f.target, f.context, horizon=1)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise StageError(f"the models expect features the data lacks: {', '.join(missing)}")
    ends = window_ends(frame["ticker"], window, frame["session"])  # none across a gap
    dates = frame["date"].to_numpy()[ends]
    keep = dates >= np.datetime64(start)
    if end is not None:
        keep &= dates <= np.datetime64(end)
    ends = ends[keep]
    if ends.size == 0:
        raise StageError(f"no trading days to replay from {start} to {end or 'the end'}")
    windows = make_windows(frame[names].to_numpy(dtype="float64"), ends, window)
    fwd = frame["forward_return"].to_numpy(dtype="float64")[ends]
    return ReplayInput(windows=windows,
                       dates=[d.date() for d in frame["date"].iloc[ends]],
                       tickers=[str(t) for t in frame["ticker"].iloc[ends]],
                       forward_returns=fwd)


def serve_and_replay(settings: Settings, models: dict[str, Path], data: Any, log_path: Path,
                     run_id: str, progress: Any = None) -> dict[str, Any]:
    """Start the service on a free loopback port, replay ``data`` through it, stop it."""
    from finmlops.abtest import replay
    from finmlops.serving import create_app, run_in_thread

    serve = settings.serve.model_copy(update={"log_path": log_path, "host": "127.0.0.1",
                                              "port": 0})
    local = settings.model_copy(update={"serve": serve})
    app = create_app(local, models)
    handle = run_in_thread(app, "127.0.0.1", 0)
    token = settings.serve.api_token
    try:
        result = replay(handle.url, data, experiment=settings.experiment.name,
                        token=token.get_secret_value() if token is not None else None,
                        id_prefix=run_id, on_progress=progress)
    finally:
        handle.stop()  # the lifespan shutdown flushes and closes the prediction log
    return result.summary()


def analyse_log(settings: Settings, log_path: Path) -> dict[str, Any]:
    from finmlops.abtest import analyse_outcomes, read_outcomes, served_counts

    name = settings.experiment.name
    return analyse_outcomes(read_outcomes(log_path, name), served_counts(log_path, name),
                            settings)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False), "utf-8")
    os.replace(tmp, path)


def run(ctx: RunContext) -> StageResult:
    """Replay, decide, write ``abtest.json``; outputs ``abtest: {decision, path}``."""
    from finmlops.data import read_bars

    s = ctx.settings
    models = model_dirs(s, ctx.state)
    default = s.experiment.default or s.experiment.candidates[0].name
    window, names = input_signature(models[default])
    start, end = replay_period(s)
    ctx.progress("building replay requests")
    bars = read_bars(s, version=ctx.state.get("dataset_version"))
    data = build_replay_input(s, bars, window, names, start, end)
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    run_dir = s.home.resolve() / "abtest" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "predictions.db"

    def progress(done: int, total: int, day: str) -> None:
        if done == total or done % 20 == 0:
            ctx.progress(f"replaying {day}", done, total)

    t0 = time.perf_counter()
    summary = serve_and_replay(s, models, data, log_path, run_id, progress)
    ctx.progress("deciding")
    result = analyse_log(s, log_path)
    result["replay"] = {**summary, "start": start.isoformat(),
                        "end": (end.isoformat() if end else None), "log_path": str(log_path),
                        "run_id": run_id, "seconds_total": round(time.perf_counter() - t0, 3)}
    path = run_dir / "abtest.json"
    write_json(path, result)
    decision = result["decision"]["action"]
    days = result["days_to_decision"]
    line = (f"{decision} after {summary['requests']} requests over {summary['days']} days: "
            f"{result['decision']['reason']}")
    if result.get("paired_decision"):
        def reached(n: int | None) -> str:
            return "not reached" if n is None else f"{n} days"

        line += (f"; paired: {result['paired_decision']['action']} (decision: split "
                 f"{reached(days['split'])}, paired {reached(days['paired'])})")
    return StageResult(summary=line, outputs={"abtest": {"decision": decision,
                                                         "path": str(path)}})
