"""The trial ledger: every configuration ever backtested, recorded once in the tracking store.

A deflated Sharpe ratio is only as honest as its count of trials. Each trial is one MLflow
run (tag ``finmlops.kind = trial``) holding the configuration as params, its identity
``trial_id`` (a hash of that configuration) and the dataset version as tags, headline
metrics, and its daily returns as the artifact ``trial/returns.json`` (date, strategy net
return, buy-and-hold return on the same days, risk-free return), so the deflation can use
the variance of every trial's Sharpe ratio and PBO can be computed on common days.

The same configuration on the same dataset version is recorded once, whoever runs it; a
hyper-parameter search adds its trials through :func:`record_trial` too, one child run per
trial (``parent_run_id``).
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finmlops.config import Settings
from finmlops.errors import DataValidationError
from finmlops.evaluation import TRIAL_COLUMNS
from finmlops.tracking._client import configure, translate
from finmlops.tracking.runs import KIND_TAG, git_commit

if TYPE_CHECKING:
    import pandas as pd

TRIAL = "trial"
RETURNS_ARTIFACT = "trial/returns.json"


@dataclass(frozen=True)
class TrialRecord:
    """One recorded trial, as :func:`read_trials` returns it."""

    trial_id: str
    run_id: str
    name: str
    config: dict[str, Any]
    data_version: str
    recorded_at: float
    """Seconds since the epoch (the run's start time)."""
    returns: pd.DataFrame
    """Columns ``date, net, benchmark, rf`` (:data:`finmlops.evaluation.TRIAL_COLUMNS`)."""


def trial_id(config: Mapping[str, Any]) -> str:
    """The identity of a configuration: the hash of its canonical JSON."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@translate
def record_trial(settings: Settings, config: Mapping[str, Any], daily_returns: pd.DataFrame,
                 *, name: str = "", data_version: str = "",
                 parent_run_id: str | None = None) -> str:
    """Record one backtested configuration unless the same one (same ``trial_id`` and
    ``data_version``) is already in the ledger; returns the trial's run id either way.

    ``daily_returns`` has the columns ``date, net, benchmark, rf`` (finite, one row a day).
    """
    frame = _checked(daily_returns)
    tid = trial_id(config)
    tracker = configure(settings)
    client = tracker.client
    found = client.search_runs(
        [tracker.experiment_id],
        filter_string=(f"tags.`{KIND_TAG}` = '{TRIAL}' and attributes.status = 'FINISHED'"
                       f" and tags.trial_id = '{tid}' and tags.data_version = '{data_version}'"),
        max_results=1)
    if found:
        return str(found[0].info.run_id)
    tags = {"mlflow.runName": name or tid, KIND_TAG: TRIAL, "trial_id": tid,
            "data_version": data_version, "git_commit": git_commit(), "trial_name": name}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(tracker.experiment_id, run_name=name or tid, tags=tags)
    run_id: str = run.info.run_id
    try:
        _log_params_and_metrics(client, run_id, config, _headline(frame))
        with tempfile.TemporaryDirectory(prefix="finmlops-trial-") as tmp:
            path = Path(tmp) / Path(RETURNS_ARTIFACT).name
            path.write_text(json.dumps(_to_json(frame, config)), "utf-8")
            client.log_artifact(run_id, str(path), str(Path(RETURNS_ARTIFACT).parent))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


@translate
def read_trials(settings: Settings) -> list[TrialRecord]:
    """Every trial in the ledger, one per ``trial_id`` (the newest record of each), oldest
    first, with its daily returns."""
    import pandas as pd

    tracker = configure(settings)
    client = tracker.client
    newest: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs(
            [tracker.experiment_id],
            filter_string=f"tags.`{KIND_TAG}` = '{TRIAL}' and attributes.status = 'FINISHED'",
            max_results=1000, page_token=token)
        for run in page:
            tid = run.data.tags.get("trial_id") or run.info.run_id
            if tid not in newest or run.info.start_time > newest[tid].info.start_time:
                newest[tid] = run
        token = page.token
        if not token:
            break
    out: list[TrialRecord] = []
    with tempfile.TemporaryDirectory(prefix="finmlops-trials-") as tmp:
        for tid, run in sorted(newest.items(), key=lambda kv: kv[1].info.start_time):
            local = client.download_artifacts(run.info.run_id, RETURNS_ARTIFACT, tmp)
            data = json.loads(Path(local).read_text("utf-8"))
            frame = pd.DataFrame({c: data[c] for c in TRIAL_COLUMNS})
            frame["date"] = pd.to_datetime(frame["date"])
            out.append(TrialRecord(
                trial_id=tid, run_id=run.info.run_id,
                name=run.data.tags.get("trial_name", ""), config=data.get("config", {}),
                data_version=run.data.tags.get("data_version", ""),
                recorded_at=run.info.start_time / 1000.0, returns=frame))
    return out


def _log_params_and_metrics(client: Any, run_id: str, config: Mapping[str, Any],
                            metrics: Mapping[str, float]) -> None:
    """The configuration as dotted params (values as JSON, at most 6000 characters) and the
    headline metrics, in batches MLflow accepts."""
    from mlflow.entities import Metric, Param

    params = [Param(k[:250], v[:6000]) for k, v in _flatten(config).items()]
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(
                value, sort_keys=True, default=str)
    return out


def _checked(frame: pd.DataFrame) -> pd.DataFrame:
    import numpy as np

    missing = [c for c in TRIAL_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(f"trial returns lack columns: {', '.join(missing)}")
    out = frame.loc[:, list(TRIAL_COLUMNS)].reset_index(drop=True)
    values = out[["net", "benchmark", "rf"]].to_numpy(np.float64)
    if out.empty or not np.isfinite(values).all():
        raise DataValidationError("trial returns must be finite and not empty")
    if out["date"].duplicated().any():
        raise DataValidationError("trial returns repeat a date")
    return out


def _headline(frame: pd.DataFrame) -> dict[str, float]:
    net = frame["net"].to_numpy()
    excess = net - frame["rf"].to_numpy()
    active = net - frame["benchmark"].to_numpy()
    out = {"days": float(net.size), "total_return": float((1 + net).prod() - 1)}
    for key, x in (("sharpe_per_period", excess), ("active_sharpe_per_period", active)):
        sd = float(x.std(ddof=1)) if x.size > 1 else 0.0
        out[key] = float(x.mean()) / sd if sd > 0 else math.nan
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _to_json(frame: pd.DataFrame, config: Mapping[str, Any]) -> dict[str, Any]:
    import pandas as pd

    dates = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d").tolist()
    return {"format": 1, "config": json.loads(json.dumps(config, default=str)),
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "date": dates,
            **{c: [float(x) for x in frame[c]] for c in ("net", "benchmark", "rf")}}
