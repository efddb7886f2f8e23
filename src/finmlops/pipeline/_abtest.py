"""Pipeline stage ``abtest``: replay the held-out days through the real service, then decide.

The service runs in-process on a free loopback port with a fresh experiment ledger under
``<home>/abtest/<run-id>/ledger.db``, serving the registry versions the register stage created
(downloaded into the run's directory, as ``finmlops serve`` downloads them), so the ledger
records each prediction under the version that made it. The replay talks to the service over
HTTP exactly as a live client would, and the decision reads that ledger. The stage never
promotes: ``finmlops abtest decide --apply`` does, when asked.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

from finmlops.config import Settings
from finmlops.contracts import ModelCard, ReplaySummary, RunState
from finmlops.errors import StageError
from finmlops.files import write_json
from finmlops.pipeline.runner import RunContext, StageResult

LEDGER = "ledger.db"
"""A replay run's ledger, beside its ``abtest.json``."""


def registered_models(settings: Settings, state: RunState, dest: Path) -> dict[str, Path]:
    """Every arm (and the mirror) as the registry version ``register`` created for it,
    downloaded into ``dest/<arm>``."""
    from finmlops.tracking import download_arms

    registered = state.need_registered()
    missing = [arm for arm in settings.experiment.arms if arm not in registered]
    if missing:
        raise StageError(f"no registered version of arm(s) {', '.join(missing)}: run "
                         "`finmlops run --until register` first")
    return download_arms(settings, dest, {arm: registered[arm].version
                                          for arm in settings.experiment.arms})


def run_ledger(run_dir: Path) -> str:
    """The ledger URL of one replay run."""
    return f"sqlite:///{run_dir.resolve() / LEDGER}"


def serve_and_replay(settings: Settings, models: dict[str, Path], data: Any, ledger_url: str,
                     run_id: str, progress: Any = None) -> dict[str, Any]:
    """Start the service on a free loopback port, replay ``data`` through it, stop it."""
    from pydantic import SecretStr

    from finmlops.abtest import replay
    from finmlops.abtest.client import ServiceClient
    from finmlops.serving import create_app, run_in_thread

    serve = settings.serve.model_copy(update={"host": "127.0.0.1", "port": 0,
                                              "grpc_port": None})
    ledger = settings.ledger.model_copy(update={"url": SecretStr(ledger_url)})
    local = settings.model_copy(update={"serve": serve, "ledger": ledger})
    app = create_app(local, models)
    handle = run_in_thread(app, "127.0.0.1", 0)
    try:
        with ServiceClient.of(settings, handle.url) as client:
            result = replay(client, data, experiment=settings.experiment.name,
                            id_prefix=run_id, on_progress=progress, per_row=True)
    finally:
        handle.stop()  # the lifespan shutdown commits what is queued and closes the ledger
    return result.summary()


def run(ctx: RunContext) -> StageResult:
    """Replay, decide, write ``abtest.json``; outputs ``abtest: {decision, path}``."""
    from finmlops.abtest import analyse_ledger, build_replay_input, replay_period
    from finmlops.data import read_bars

    s = ctx.settings
    state = ctx.run_state("registered", "dataset_version")
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    run_dir = s.home.resolve() / "abtest" / run_id
    ctx.progress("downloading the registered versions")
    models = registered_models(s, state, run_dir / "models")
    card = ModelCard.read(models[s.experiment.reference])
    start, end = replay_period(s)
    ctx.progress("building replay requests")
    bars = read_bars(s, version=state.dataset_version)
    data = build_replay_input(s, bars, card.window, card.feature_names, start, end)
    ledger_url = run_ledger(run_dir)

    def progress(done: int, total: int, day: str) -> None:
        if done == total or done % 20 == 0:
            ctx.progress(f"replaying {day}", done, total)

    t0 = time.perf_counter()
    summary = serve_and_replay(s, models, data, ledger_url, run_id, progress)
    ctx.progress("deciding")
    replayed = ReplaySummary(**summary, start=start.isoformat(),
                             end=end.isoformat() if end else None, ledger=ledger_url,
                             run_id=run_id, seconds_total=round(time.perf_counter() - t0, 3))
    result = analyse_ledger(s, ledger_url).model_copy(update={"replay": replayed})
    path = run_dir / "abtest.json"
    write_json(path, result.to_json(), sort_keys=True)
    decision = result.decision.action
    days = result.days_to_decision
    line = (f"{decision} after {replayed.requests} requests over {replayed.days} days: "
            f"{result.decision.reason}")
    if result.paired_decision:
        def reached(n: int | None) -> str:
            return "not reached" if n is None else f"{n} days"

        line += (f"; paired: {result.paired_decision.action} (decision: split "
                 f"{reached(days.split)}, paired {reached(days.paired)})")
    return StageResult(summary=line, outputs={"abtest": {"decision": decision,
                                                         "path": str(path)}})


def default_ledger(settings: Settings) -> str:
    """The ledger ``abtest status`` and ``decide`` read: the latest replay's (from the run
    state) when ``ledger.url`` is not set and a replay ran, else ``ledger.url`` (default
    ``<home>/ledger.db``)."""
    from finmlops.pipeline.runner import load_run_state

    if settings.ledger.url is None:
        ab = load_run_state(settings, "abtest").abtest
        if ab is not None and (Path(ab.path).parent / LEDGER).is_file():
            return run_ledger(Path(ab.path).parent)
    return str(settings.ledger_url)


def replay_to(settings: Settings, url: str, on_progress: Any = None,
              seldon: bool = False, per_row: bool = False) -> dict[str, Any]:
    """Replay the held-out days against the running service at ``url``: windows of the
    trained reference arm's input signature (run state), else of the configured variants'.
    ``seldon``: address a Seldon Core v2 Experiment (``seldon-model: <experiment>.experiment``).
    ``per_row``: a day's tickers in one request, one routing key per row (a finmlops service).
    """
    from finmlops.abtest import build_replay_input, configured_signature, replay, replay_period
    from finmlops.abtest.client import ServiceClient
    from finmlops.data import read_bars
    from finmlops.pipeline.runner import load_run_state

    state = load_run_state(settings, "trained", "dataset_version")
    reference = state.trained.get(settings.experiment.reference)
    if reference is not None:
        card = ModelCard.read(reference.model_dir)
        window, names = card.window, card.feature_names
    else:
        window, names = configured_signature(settings)
    start, end = replay_period(settings)
    data = build_replay_input(settings, read_bars(settings, state.dataset_version), window,
                              names, start, end)
    with ServiceClient.of(settings, url, seldon=seldon) as client:
        result = replay(client, data, experiment=settings.experiment.name,
                        id_prefix=f"replay-{uuid.uuid4().hex[:8]}", on_progress=on_progress,
                        per_row=per_row)
    return result.summary()
