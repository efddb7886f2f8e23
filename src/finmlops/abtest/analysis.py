"""One summary of an experiment: per-arm numbers, comparisons, decisions, and their history.

This is the content of ``abtest.json`` (written by the pipeline stage) and what
``finmlops abtest status`` prints; it is built from the ledger's evidence (outcomes with
day-by-day timelines and stress windows, assignments per experiment version).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from finmlops.abtest.decision import Decision, arms_of, decide, decide_paired
from finmlops.abtest.paired import PairedStats
from finmlops.abtest.sequential import N_PLAN
from finmlops.abtest.sources import Evidence, arm_stats, paired_daily
from finmlops.abtest.stats import ArmStats
from finmlops.abtest.timeline import paired_timeline, split_timeline, window_breakdown
from finmlops.config import Settings
from finmlops.files import json_safe


def _summary(arms: Mapping[str, ArmStats], served: Mapping[str, int],
             paired: PairedStats | None, daily: NDArray[np.float64] | None, settings: Settings,
             n_plan: int, challenger: str | None,
             daily_hit: NDArray[np.float64] | None = None,
             by_version: Versions | None = None) -> dict[str, Any]:
    chal, ref = arms_of(settings.experiment, challenger)
    if by_version is not None:
        decision = decide(arms, settings.abtest, settings.experiment,
                          served_by_version=by_version[0], weights_by_version=by_version[1],
                          challenger=chal, n_plan=n_plan)
    else:
        decision = decide(arms, settings.abtest, settings.experiment, served=served,
                          challenger=chal, n_plan=n_plan)
    total = sum(served.values())
    weights = settings.experiment.weights
    wsum = sum(weights.values())
    per_arm = dict(decision.numbers.get("arms", {}))
    for arm in sorted(set(weights) | set(per_arm) | set(served)):
        per_arm.setdefault(arm, {"n": 0, "hits": 0})
        per_arm[arm]["served"] = int(served.get(arm, 0))
        per_arm[arm]["share"] = served.get(arm, 0) / total if total else None
        per_arm[arm]["target_share"] = weights.get(arm, 0) / wsum
    paired_decision: Decision | None = None
    if paired is not None and paired.n:
        paired_decision = decide_paired(paired, settings.abtest, challenger=chal, reference=ref,
                                        daily_diff=daily, daily_hit_diff=daily_hit,
                                        n_plan=n_plan)
    return {
        "experiment": settings.experiment.name, "challenger": chal, "reference": ref,
        "metric": settings.abtest.metric, "alpha": settings.abtest.alpha, "n_plan": n_plan,
        "min_effect": settings.abtest.min_effect, "min_samples": settings.abtest.min_samples,
        "arms": per_arm, "decision": decision.to_dict(),
        "paired_decision": paired_decision.to_dict() if paired_decision else None,
    }


Versions = tuple[Mapping[int, Mapping[str, int]], Mapping[int, Mapping[str, float]]]
"""Randomised assignments and target weights per experiment version."""


def analyse_outcomes(outcomes: pd.DataFrame, served: Mapping[str, int], settings: Settings,
                     *, n_plan: int = N_PLAN, challenger: str | None = None,
                     by_version: Versions | None = None) -> dict[str, Any]:
    """The full summary from outcome rows (:meth:`finmlops.ledger.Ledger.outcomes`);
    ``by_version`` tests the sample ratio of each experiment version against its own
    weights (else ``served`` against the experiment's weights)."""
    chal, ref = arms_of(settings.experiment, challenger)
    arms = arm_stats(outcomes)
    paired, _, daily, daily_hit = paired_daily(outcomes, chal, ref)
    out = _summary(arms, served, paired, daily, settings, n_plan, chal, daily_hit,
                   by_version)
    split_t = split_timeline(outcomes, settings.abtest, settings.experiment, chal, ref, n_plan,
                             weights_by_version=by_version[1] if by_version else None)
    paired_t = (paired_timeline(outcomes, settings.abtest, chal, ref, n_plan)
                if paired.n else None)
    out["timeline"] = {"split": split_t, "paired": paired_t}
    out["days_to_decision"] = {"split": split_t["days_to_decision"],
                               "paired": paired_t["days_to_decision"] if paired_t else None}
    out["days"] = len(split_t["days"])
    stress = {}
    for name, w in settings.evaluation.stress_windows.items():
        part = window_breakdown(outcomes, w.start, w.end, chal, ref)
        if part is not None:
            stress[name] = part
    out["stress_windows"] = stress
    return dict(json_safe(out))


def analyse_evidence(evidence: Evidence, settings: Settings, *, n_plan: int = N_PLAN,
                     challenger: str | None = None) -> dict[str, Any]:
    """The full summary of what the ledger holds: the arms and weights are the version in
    force (not the configuration file's); the sample-ratio check tests every version's
    randomised assignments against that version's weights."""
    current = settings.model_copy(update={"experiment": evidence.experiment})
    by_version = (evidence.assignments, evidence.weights) if evidence.assignments else None
    out = analyse_outcomes(evidence.outcomes, evidence.served_in_force, current,
                           n_plan=n_plan, challenger=challenger, by_version=by_version)
    out["experiment_version"] = evidence.version
    out["assignments"] = {str(v): dict(sorted(c.items()))
                          for v, c in sorted(evidence.assignments.items())}
    out["weights"] = {str(v): w for v, w in sorted(evidence.weights.items())}
    return out


def analyse_ledger(settings: Settings, ledger_url: str) -> dict[str, Any]:
    """The summary of everything the ledger at ``ledger_url`` holds for the experiment."""
    from finmlops.abtest.sources import read_evidence
    from finmlops.ledger import open_ledger

    ledger = open_ledger(ledger_url, create=False)
    try:
        return analyse_evidence(read_evidence(ledger, settings), settings)
    finally:
        ledger.close()
