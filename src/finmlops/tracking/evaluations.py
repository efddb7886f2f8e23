"""Evaluation figures on a training run: the evaluate stage's headline metrics, and from the
``evaluation.json`` it evaluated, every stress window, the cost sweep and the break-even cost."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finmlops.config import Settings
from finmlops.contracts import EvaluationFile
from finmlops.tracking._client import configure, translate
from finmlops.tracking.runs import log_batch, metrics_of


def evaluation_figures(evaluation: EvaluationFile, variant: str) -> list[Any]:
    """The stress-window, cost-sweep and break-even figures of ``variant`` in an
    ``evaluation.json`` document, as MLflow metrics.

    ``stress.<window>.<line>.<metric>`` for every numeric figure of every line (strategy and
    benchmarks) in every stress window; ``cost_sweep.<metric>`` with step = the round-trip cost
    in basis points (the sweep's index when a cost is not a whole number of bps; the costs are
    the run's ``cost_sweep.bps`` tag); ``break_even_bps`` when there is one. A document without
    the variant gives none.
    """
    entry = evaluation.variants.get(variant)
    if entry is None:
        return []
    ts = int(time.time() * 1000)
    out: list[Any] = []
    for window, lines in entry.stress.items():
        for line, figures in lines.items():
            if figures is not None:
                out += metrics_of(figures.as_dict(), f"stress.{window}.{line}.", ts=ts)
    whole = all(row.cost_bps.is_integer() for row in entry.cost_sweep)
    for i, row in enumerate(entry.cost_sweep):
        step = round(row.cost_bps) if whole else i
        out += metrics_of({k: v for k, v in row.as_dict().items() if k != "cost_bps"},
                          "cost_sweep.", step=step, ts=ts)
    if entry.break_even_bps is not None:
        out += metrics_of({"break_even_bps": entry.break_even_bps}, ts=ts)
    return out


@translate
def log_evaluation(settings: Settings, run_id: str, metrics: Mapping[str, float],
                   artifacts: Mapping[str, Path] | None = None, key: str | None = None,
                   evaluation: EvaluationFile | None = None) -> bool:
    """Add evaluation metrics to a training run; ``artifacts`` maps a run folder to a file or
    directory to put there (e.g. ``{"evaluation": Path("evaluation.json")}``).

    ``evaluation`` (the document behind the metrics) also gives the stress-window, cost-sweep
    and break-even figures of the run's variant (its ``variant`` tag) as metrics
    (:func:`evaluation_figures`). With ``key`` (a digest of what was evaluated),
    logging the same evaluation twice is a no-op; returns whether anything was logged.
    """
    tracker = configure(settings)
    client = tracker.client
    run = client.get_run(run_id)  # a clear not-found error before logging anything
    if key is not None and run.data.tags.get("evaluation_key") == key:
        return False
    batch = metrics_of(metrics)
    if evaluation is not None:
        variant = run.data.tags.get("variant", "")
        batch += evaluation_figures(evaluation, variant)
        entry = evaluation.variants.get(variant)
        if entry is not None and entry.cost_sweep:
            client.set_tag(run_id, "cost_sweep.bps",
                           json.dumps([row.cost_bps for row in entry.cost_sweep]))
    log_batch(client, run_id, metrics=batch)
    for folder, path in (artifacts or {}).items():
        path = Path(path)
        if path.is_dir():
            client.log_artifacts(run_id, str(path), folder or None)
        else:
            client.log_artifact(run_id, str(path), folder or None)
    client.set_tag(run_id, "evaluated", "true")
    if key is not None:
        client.set_tag(run_id, "evaluation_key", key)
    return True
