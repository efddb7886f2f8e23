"""``finmlops universe``: train every universe variant, book it, record it, deflate it.

Results go to ``<home>/universe/<universe key>/``: ``universe.json`` (figures per variant,
the trials and PBO) and ``models/<variant>/`` (``model.onnx`` + ``model.json``, the exported
model directory contract, servable with ``finmlops serve`` and ``serve.model_dir``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finmlops.config import Settings
from finmlops.errors import ConfigError
from finmlops.files import write_json
from finmlops.research.study import (
    RESULT_FORMAT,
    Prepared,
    Progress,
    book,
    prepare,
    quiet,
    train_one,
    trial_config,
    universe_trials,
)


def study_dir(settings: Settings, key: str) -> Path:
    return (settings.home / "universe" / key).resolve()


def sharpe_histogram(sharpes: Sequence[float], bins: int = 12) -> dict[str, list[float]]:
    """Counts of the trials' annualised net Sharpe ratios."""
    x = np.asarray([s for s in sharpes if math.isfinite(s)], dtype=np.float64)
    if x.size == 0:
        return {"edges": [], "counts": []}
    lo, hi = float(x.min()), float(x.max())
    if math.isclose(lo, hi):
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def trials_block(trials: Any, sharpes: Sequence[float]) -> dict[str, Any]:
    s = trials.stats
    return {"n": s.n_trials, "recorded": s.recorded, "prior": s.prior,
            "sr_variance": s.sr_variance, "active_sr_variance": s.active_sr_variance,
            "counted": trials.counted, "pbo": trials.pbo, "pbo_note": trials.pbo_note,
            "sharpes": [x if math.isfinite(x) else None for x in sharpes],
            "sharpe_histogram": sharpe_histogram(sharpes)}


def _export(settings: Settings, prep: Prepared, outcome: Any, directory: Path) -> Path:
    from finmlops.models.export import model_card, write_model_json

    target = directory / outcome.name
    target.mkdir(parents=True, exist_ok=True)
    outcome.export(target)
    card = model_card(variant=outcome.name, target=prep.tickers, window=prep.window,
                      feature_names=prep.input_names, data_version=prep.version,
                      weights_hash="", trained_until=outcome.trained_until, horizon=1,
                      reference=None).model_copy(update={"kind": outcome.kind,
                                                         "study": prep.universe_key})
    write_model_json(target / "model.json", card)
    out: Path = target
    return out


def run_universe(settings: Settings, *, variants: Sequence[str] | None = None,
                 progress: Progress = quiet, record: bool = True,
                 export: bool = True) -> dict[str, Any]:
    """Train, book, record and deflate each (chosen) universe variant; the result is also
    written to ``universe.json``."""
    from finmlops.tracking import record_trial

    u = settings.universe
    chosen = list(variants or u.variants)
    unknown = [v for v in chosen if v not in u.variants]
    if unknown:
        raise ConfigError(f"unknown universe variant(s) {', '.join(unknown)}; "
                          f"universe.variants has: {', '.join(u.variants)}")
    t0 = time.perf_counter()
    prep = prepare(settings, progress)
    out_dir = study_dir(settings, prep.universe_key)
    outcomes = {}
    for name in chosen:
        progress(f"training {name} on {len(prep.tickers)} tickers")
        outcome = train_one(settings, prep, name, u.variants[name], progress)
        outcomes[name] = outcome
        if record:
            first = book(settings, prep, outcome.oos, capacity=False)
            record_trial(settings, trial_config(settings, prep, u.variants[name]),
                         first.trial_returns(), name=f"universe/{name}",
                         data_version=prep.version)
        if export:
            _export(settings, prep, outcome, out_dir / "models")
    trials, sharpes = universe_trials(settings, prep.universe_key) if record else (None, [])
    result: dict[str, Any] = {
        "format": RESULT_FORMAT, "universe": prep.universe_key, "dataset_version": prep.version,
        "tickers": len(prep.tickers), "context": prep.context,
        "survivorship": _survivorship(settings),
        "dropped_bars": prep.dropped, "calendar": {"days": prep.gaps["calendar_days"],
                                                    "tickers_with_gaps": len(prep.gaps["gaps"])},
        "label": u.label, "cross_section": u.cross_section,
        "execution": settings.evaluation.execution,
        "feature_seconds": prep.feature_seconds, "variants": {},
        "trials": trials_block(trials, sharpes) if trials is not None else None,
    }
    for name, outcome in outcomes.items():
        rep = book(settings, prep, outcome.oos, stats=None if trials is None else trials.stats)
        result["variants"][name] = {
            "kind": outcome.kind, "features": u.variants[name].features,
            "train_seconds": outcome.seconds, "classification": outcome.metrics,
            "baselines": outcome.baselines, "trained_until": outcome.trained_until,
            "book": rep.figures,
        }
    result["seconds"] = time.perf_counter() - t0
    write_json(out_dir / "universe.json", result, indent=1, trailing_newline=True)
    result["path"] = str(out_dir / "universe.json")
    return result


def _survivorship(settings: Settings) -> str:
    from finmlops.data.universe import SURVIVORSHIP_NOTE

    return SURVIVORSHIP_NOTE
