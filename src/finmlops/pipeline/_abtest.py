"""Pipeline stage ``abtest``: replay the held-out days through the real service, then decide.

The service runs in-process on a free loopback port with a fresh experiment ledger under
``<home>/abtest/<run-id>/ledger.db``; the replay talks to it over HTTP exactly as a live client
would, and the decision reads that ledger. The stage never promotes:
``finmlops abtest decide --apply`` does, when asked.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

from finmlops.config import Settings
from finmlops.errors import StageError
from finmlops.files import write_json
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
    out: dict[str, Path] = {}
    for arm in settings.experiment.arms:
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
    from finmlops.evaluation import execution_returns
    from finmlops.features import build_features, make_windows, window_ends

    f = settings.features
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
    # Each served signal is a one-day position filled as the backtest fills it
    # (evaluation.execution), whatever the label horizon.
    realised = execution_returns(bars[bars["ticker"].isin(f.target)],
                                 settings.evaluation.execution)
    at = frame[["ticker", "date"]].iloc[ends].merge(realised, on=["ticker", "date"],
                                                   how="left")
    fwd = at["return"].to_numpy(dtype="float64")
    return ReplayInput(windows=windows,
                       dates=[d.date() for d in frame["date"].iloc[ends]],
                       tickers=[str(t) for t in frame["ticker"].iloc[ends]],
                       forward_returns=fwd)


def run_ledger(run_dir: Path) -> str:
    """The ledger URL of one replay run."""
    return f"sqlite:///{run_dir.resolve() / 'ledger.db'}"


def serve_and_replay(settings: Settings, models: dict[str, Path], data: Any, ledger_url: str,
                     run_id: str, progress: Any = None) -> dict[str, Any]:
    """Start the service on a free loopback port, replay ``data`` through it, stop it."""
    from pydantic import SecretStr

    from finmlops.abtest import replay
    from finmlops.serving import create_app, run_in_thread

    serve = settings.serve.model_copy(update={"host": "127.0.0.1", "port": 0,
                                              "grpc_port": None})
    ledger = settings.ledger.model_copy(update={"url": SecretStr(ledger_url)})
    local = settings.model_copy(update={"serve": serve, "ledger": ledger})
    app = create_app(local, models)
    handle = run_in_thread(app, "127.0.0.1", 0)
    tokens = settings.serve.tokens
    try:
        result = replay(handle.url, data, experiment=settings.experiment.name,
                        inference_token=_secret(tokens.inference),
                        feedback_token=_secret(tokens.feedback),
                        id_prefix=run_id, on_progress=progress)
    finally:
        handle.stop()  # the lifespan shutdown commits what is queued and closes the ledger
    return result.summary()


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def analyse_ledger(settings: Settings, ledger_url: str) -> dict[str, Any]:
    """The A/B summary of everything the ledger at ``ledger_url`` holds."""
    from finmlops.abtest import analyse_evidence, read_evidence
    from finmlops.ledger import open_ledger

    ledger = open_ledger(ledger_url, create=False)
    try:
        return analyse_evidence(read_evidence(ledger, settings), settings)
    finally:
        ledger.close()


def run(ctx: RunContext) -> StageResult:
    """Replay, decide, write ``abtest.json``; outputs ``abtest: {decision, path}``."""
    from finmlops.data import read_bars

    s = ctx.settings
    models = model_dirs(s, ctx.state)
    window, names = input_signature(models[s.experiment.reference])
    start, end = replay_period(s)
    ctx.progress("building replay requests")
    bars = read_bars(s, version=ctx.state.get("dataset_version"))
    data = build_replay_input(s, bars, window, names, start, end)
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    run_dir = s.home.resolve() / "abtest" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    ledger_url = run_ledger(run_dir)

    def progress(done: int, total: int, day: str) -> None:
        if done == total or done % 20 == 0:
            ctx.progress(f"replaying {day}", done, total)

    t0 = time.perf_counter()
    summary = serve_and_replay(s, models, data, ledger_url, run_id, progress)
    ctx.progress("deciding")
    result = analyse_ledger(s, ledger_url)
    result["replay"] = {**summary, "start": start.isoformat(),
                        "end": (end.isoformat() if end else None), "ledger": ledger_url,
                        "run_id": run_id, "seconds_total": round(time.perf_counter() - t0, 3)}
    path = run_dir / "abtest.json"
    write_json(path, result, sort_keys=True)
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
