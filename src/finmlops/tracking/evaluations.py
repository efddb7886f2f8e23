"""Evaluation figures on a training run: the evaluate stage's headline metrics, and from the
``evaluation.json`` it attaches, every stress window, the cost sweep and the break-even cost."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finmlops.config import Settings
from finmlops.tracking._client import configure, translate
from finmlops.tracking.runs import log_batch, metrics_of


def evaluation_figures(evaluation: Mapping[str, Any], variant: str) -> list[Any]:
    """The stress-window, cost-sweep and break-even figures of ``variant`` in an
    ``evaluation.json`` document, as MLflow metrics.

    ``stress.<window>.<line>.<metric>`` for every numeric figure of every line (strategy and
    benchmarks) in every stress window; ``cost_sweep.<metric>`` with step = the round-trip cost
    in basis points (the sweep's index when a cost is not a whole number of bps; the costs are
    the run's ``cost_sweep.bps`` tag); ``break_even_bps`` when there is one. A document without
    the variant gives none.
    """
    entry = (evaluation.get("variants") or {}).get(variant)
    if not isinstance(entry, Mapping):
        return []
    ts = int(time.time() * 1000)
    out: list[Any] = []
    for window, lines in (entry.get("stress") or {}).items():
        for line, figures in (lines or {}).items() if isinstance(lines, Mapping) else ():
            if isinstance(figures, Mapping):
                out += metrics_of(figures, f"stress.{window}.{line}.", ts=ts)
    sweep = [row for row in entry.get("cost_sweep") or [] if isinstance(row, Mapping)]
    costs = [row.get("cost_bps") for row in sweep]
    whole = all(isinstance(c, int | float) and float(c).is_integer() for c in costs)
    for i, row in enumerate(sweep):
        step = round(float(row["cost_bps"])) if whole else i
        out += metrics_of({k: v for k, v in row.items() if k != "cost_bps"}, "cost_sweep.",
                        step=step, ts=ts)
    if isinstance(entry.get("break_even_bps"), int | float):
        out += metrics_of({"break_even_bps": entry["break_even_bps"]}, ts=ts)
    return out


def _figures_from(path: Path, variant: str) -> tuple[list[Any], list[Any]]:
    """(metrics, sweep costs) of ``variant`` when ``path`` is an evaluation JSON document."""
    if path.suffix != ".json" or not path.is_file():
        return [], []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [], []
    if not isinstance(data, Mapping):
        return [], []
    entry = (data.get("variants") or {}).get(variant)
    sweep = entry.get("cost_sweep") if isinstance(entry, Mapping) else None
    costs = [row.get("cost_bps") for row in sweep or [] if isinstance(row, Mapping)]
    return evaluation_figures(data, variant), costs


@translate
def log_evaluation(settings: Settings, run_id: str, metrics: Mapping[str, float],
                   artifacts: Mapping[str, Path] | None = None, key: str | None = None) -> bool:
    """Add evaluation metrics to a training run; ``artifacts`` maps a run folder to a file or
    directory to put there (e.g. ``{"evaluation": Path("evaluation.json")}``).

    An artifact that is an evaluation JSON document (``variants.<variant>``, the variant being
    the run's ``variant`` tag) also gives its stress-window, cost-sweep and break-even figures
    as metrics (:func:`evaluation_figures`). With ``key`` (a digest of what was evaluated),
    logging the same evaluation twice is a no-op; returns whether anything was logged.
    """
    tracker = configure(settings)
    client = tracker.client
    run = client.get_run(run_id)  # a clear not-found error before logging anything
    if key is not None and run.data.tags.get("evaluation_key") == key:
        return False
    batch = metrics_of(metrics)
    variant = run.data.tags.get("variant", "")
    for path in (Path(p) for p in (artifacts or {}).values()):
        figures, costs = _figures_from(path, variant)
        batch += figures
        if costs:
            client.set_tag(run_id, "cost_sweep.bps", json.dumps(costs))
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
