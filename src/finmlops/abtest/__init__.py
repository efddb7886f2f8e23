"""A/B statistics from sufficient statistics, always-valid sequential tests, paired (shadow)
statistics, the decision, a traffic replay against any V2 endpoint, and the realised outcomes
a scheduled job posts as feedback. The evidence comes from the experiment ledger."""

from finmlops.abtest.analysis import analyse_evidence, analyse_outcomes
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
    Evidence,
    arm_stats,
    paired_daily,
    paired_frame,
    read_evidence,
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
    "Evidence",
    "PairedStats",
    "RealisedOutcome",
    "ReplayInput",
    "ReplayResult",
    "SRMResult",
    "SequentialResult",
    "TestResult",
    "action_codes",
    "analyse_evidence",
    "analyse_outcomes",
    "arm_stats",
    "arms_of",
    "daily_diff_test",
    "decide",
    "decide_paired",
    "fixed_n_power",
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
    "paired_daily",
    "paired_frame",
    "paired_sequential",
    "paired_timeline",
    "read_evidence",
    "realised_outcomes",
    "replay",
    "routing_key",
    "running_min",
    "split_estimate",
    "split_timeline",
    "srm_test",
    "weights_after",
    "window_breakdown",
]
