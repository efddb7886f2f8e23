"""The stage graph and its local runner."""

from finmlops.pipeline.runner import (
    Reporter,
    RunContext,
    SilentReporter,
    Stage,
    StageResult,
    load_state,
    merge_outputs,
    merge_state,
    relative_to_home,
    resolve_in_home,
    run_stages,
    save_state,
    select,
)
from finmlops.pipeline.stages import STAGES

__all__ = [
    "STAGES",
    "Reporter",
    "RunContext",
    "SilentReporter",
    "Stage",
    "StageResult",
    "load_state",
    "merge_outputs",
    "merge_state",
    "relative_to_home",
    "resolve_in_home",
    "run_stages",
    "save_state",
    "select",
]
