"""The stage graph and its local runner, and the promotion policy that joins the registry,
the ledger's weights and GitOps."""

from finmlops.pipeline._abtest import default_ledger, replay_to
from finmlops.pipeline._promotion import (
    Applied,
    Chosen,
    InForce,
    Proposed,
    RecordApplied,
    apply_decision,
    apply_record,
    choose_decision,
    propose_decision,
    put_experiment_in_force,
)
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
    "Applied",
    "Chosen",
    "InForce",
    "Proposed",
    "RecordApplied",
    "Reporter",
    "RunContext",
    "SilentReporter",
    "Stage",
    "StageResult",
    "apply_decision",
    "apply_record",
    "choose_decision",
    "chosen_variants",
    "default_ledger",
    "load_run_state",
    "load_state",
    "merge_outputs",
    "merge_state",
    "propose_decision",
    "publish_versions",
    "put_experiment_in_force",
    "relative_to_home",
    "replay_to",
    "resolve_in_home",
    "run_stages",
    "save_state",
    "select",
]
