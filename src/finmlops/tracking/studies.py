"""Parent runs of a study or a search: the MLflow run each trial's run hangs under.

A search is one run of kind ``search`` (params: the study's settings; metrics: its
summary at the end); each trial of it is a child run recorded through
:func:`finmlops.tracking.record_trial` with ``parent_run_id``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from finmlops.config import Settings
from finmlops.tracking._client import configure, translate
from finmlops.tracking.runs import KIND_TAG, git_commit


@translate
def start_parent_run(settings: Settings, kind: str, name: str,
                     params: Mapping[str, Any] | None = None) -> str:
    """A running MLflow run of ``kind`` (e.g. ``search``); returns its id."""
    from mlflow.entities import Param

    tracker = configure(settings)
    run = tracker.client.create_run(tracker.experiment_id, run_name=name, tags={
        "mlflow.runName": name, KIND_TAG: kind, "git_commit": git_commit()})
    run_id: str = run.info.run_id
    if params:
        items = [Param(str(k)[:250], str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            tracker.client.log_batch(run_id, params=items[i:i + 100])
    return run_id


@translate
def end_parent_run(settings: Settings, run_id: str, metrics: Mapping[str, float],
                   status: str = "FINISHED") -> None:
    """Log the summary ``metrics`` (finite ones) and close the run."""
    import math

    from mlflow.entities import Metric

    client = configure(settings).client
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items()
             if v is not None and math.isfinite(float(v))]
    if items:
        client.log_batch(run_id, metrics=items)
    client.set_terminated(run_id, status)
