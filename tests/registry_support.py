"""Exported model directories registered the way the pipeline registers them: a run state
with ``trained`` entries, then the real register stage (a module of its own: conftest and
test modules import it by name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from finmlops.config import Settings
from finmlops.contracts import ModelCard
from finmlops.pipeline import RunContext, SilentReporter, merge_outputs


def trained_entry(settings: Settings, arm: str, model_dir: Path) -> dict[str, Any]:
    """The ``trained[arm]`` entry of an exported model directory (a three-day OOS file)."""
    from trained_support import trained_entry as entry

    card = ModelCard.read(model_dir)
    oos = model_dir.parent / f"{model_dir.name}-oos.parquet"
    pd.DataFrame({"date": pd.date_range("2018-01-02", periods=3), "ticker": "IBB",
                  "probability": [0.4, 0.6, 0.7], "label": [0, 1, 1],
                  "forward_return": [-0.01, 0.02, 0.01], "fold": [0, 0, 1]}).to_parquet(oos)
    return entry(arm, oos, model_dir=model_dir, weights_hash=card.weights_hash,
                 data_version=card.data_version,
                 settings=settings.train.variants.get(arm))


def register_arms(settings: Settings, dirs: dict[str, Path],
                  earlier: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"trained", "registered"}`` after the register stage ran on ``dirs``."""
    from finmlops.pipeline._register import run

    for arm in earlier:
        ctx = RunContext(settings, SilentReporter(),
                         {"trained": {arm: trained_entry(settings, arm, dirs[arm])}})
        run(ctx)
    state = {"trained": {arm: trained_entry(settings, arm, d) for arm, d in dirs.items()}}
    result = run(RunContext(settings, SilentReporter(), dict(state)))
    merged = merge_outputs(state, result.outputs)
    return {"trained": merged["trained"], "registered": merged["registered"]}
