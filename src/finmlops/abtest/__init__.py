"""A/B statistics from sufficient statistics, always-valid sequential tests, paired (shadow)
statistics, the decision, a traffic replay against any V2 endpoint, and the realised outcomes
a scheduled job posts as feedback."""

from finmlops.abtest.analysis import analyse_outcomes, analyse_snapshot
from finmlops.abtest.decision import (
    ACTIONS,
    Decision,
    action_codes,
    arms_of,
    decide,
    decide_paired,
    paired_sequential,
    split_estimate,
    weights_after,
)
from finmlops.abtest.feedback import RealisedOutcome, realised_outcomes
from finmlops.abtest.paired import (
    PairedStats,
    daily_diff_test,
    hac_prefix,
    iid_diff_test,
    mcnemar,
    newey_west_lrv,
    nw_lag,
)
from finmlops.abtest.replay import ReplayInput, ReplayResult, replay, routing_key
from finmlops.abtest.sequential import (
    N_PLAN,
    SequentialResult,
    mixture_arrays,
    mixture_tau2,
    mixture_test,
    running_min,
)
from finmlops.abtest.sources import (
    Snapshot,
    from_prediction_log,
    from_prometheus,
    paired_from_prediction_log,
    read_outcomes,
    served_counts,
    snapshot_from_log,
)
from finmlops.abtest.stats import (
    ArmStats,
    SRMResult,
    TestResult,
    fixed_n_power,
    hit_rate_test,
    mde,
    mean_return_test,
    srm_test,
)
from finmlops.abtest.timeline import paired_timeline, split_timeline, window_breakdown

__all__ = [
    "ACTIONS",
    "N_PLAN",
    "ArmStats",
    "Decision",
    "PairedStats",
    "RealisedOutcome",
    "ReplayInput",
    "ReplayResult",
    "SRMResult",
    "SequentialResult",
    "Snapshot",
    "TestResult",
    "action_codes",
    "analyse_outcomes",
    "analyse_snapshot",
    "arms_of",
    "daily_diff_test",
    "decide",
    "decide_paired",
    "fixed_n_power",
    "from_prediction_log",
    "from_prometheus",
    "hac_prefix",
    "hit_rate_test",
    "iid_diff_test",
    "mcnemar",
    "mde",
    "mean_return_test",
    "mixture_arrays",
    "mixture_tau2",
    "mixture_test",
    "newey_west_lrv",
    "nw_lag",
    "paired_from_prediction_log",
    "paired_sequential",
    "paired_timeline",
    "read_outcomes",
    "realised_outcomes",
    "replay",
    "routing_key",
    "running_min",
    "served_counts",
    "snapshot_from_log",
    "split_estimate",
    "split_timeline",
    "srm_test",
    "weights_after",
    "window_breakdown",
]
