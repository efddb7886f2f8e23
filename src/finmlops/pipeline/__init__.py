"""The stage graph and its local runner."""

from finmlops.pipeline._abtest import default_ledger, replay_to
from finmlops.pipeline._publish import publish_versions
from finmlops.pipeline._train import chosen_variants
from finmlops.pipeline.runner import (
    Reporter,
    RunContext,
    SilentReporter,
    Stage,
    StageResult,
    load_run_state,
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
    "chosen_variants",
    "default_ledger",
    "load_run_state",
    "load_state",
    "merge_outputs",
    "merge_state",
    "publish_versions",
    "relative_to_home",
    "replay_to",
    "resolve_in_home",
    "run_stages",
    "save_state",
    "select",
]
