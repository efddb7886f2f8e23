"""One summary of an experiment: per-arm numbers, comparisons, decisions, and their history.

This is the content of ``abtest.json`` (written by the pipeline stage) and what
``finmlops abtest status`` prints; it is built from the ledger's evidence (outcomes with
day-by-day timelines and stress windows, assignments per experiment version).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from finmlops.abtest.decision import arms_of, decide, decide_paired
from finmlops.abtest.paired import PairedStats
from finmlops.abtest.sequential import N_PLAN
from finmlops.abtest.sources import Evidence, arm_stats, paired_daily
from finmlops.abtest.stats import ArmStats
from finmlops.abtest.timeline import paired_timeline, split_timeline, window_breakdown
from finmlops.config import Settings
from finmlops.contracts.abtest import (
    AbtestSummary,
    ArmNumbers,
    ArmSummary,
    DaysToDecision,
    DecisionRecord,
    Timelines,
)

Versions = tuple[Mapping[int, Mapping[str, int]], Mapping[int, Mapping[str, float]]]
"""Randomised assignments and target weights per experiment version."""


class _Versioned(TypedDict, total=False):
    """What a summary of the ledger's evidence adds: the version in force and every
    version's assignments and weights."""

    experiment_version: int
    assignments: dict[str, dict[str, int]]
    weights: dict[str, dict[str, float]]


def _with_traffic(arms: Mapping[str, ArmNumbers], served: Mapping[str, int],
                  weights: Mapping[str, float]) -> dict[str, ArmSummary]:
    """Every arm with outcomes, traffic or a weight: its outcomes (only the counts when it
    has none) and its served count, share and target share."""
    total = sum(served.values())
    wsum = sum(weights.values())
    return {arm: ArmSummary(**arms.get(arm, ArmNumbers(n=0, hits=0)).to_json(),
                            served=int(served.get(arm, 0)),
                            share=served.get(arm, 0) / total if total else None,
                            target_share=weights.get(arm, 0) / wsum)
            for arm in sorted(set(weights) | set(arms) | set(served))}


def _decisions(arms: Mapping[str, ArmStats], served: Mapping[str, int],
               paired: PairedStats | None, daily: NDArray[np.float64] | None,
               settings: Settings, n_plan: int, challenger: str | None,
               daily_hit: NDArray[np.float64] | None, by_version: Versions | None
               ) -> tuple[dict[str, ArmSummary], DecisionRecord, DecisionRecord | None]:
    """The arms with their traffic, the split decision (its arms carry their traffic too)
    and the paired decision (``None`` without paired outcomes)."""
    chal, ref = arms_of(settings.experiment, challenger)
    if by_version is not None:
        decision = decide(arms, settings.abtest, settings.experiment,
                          served_by_version=by_version[0], weights_by_version=by_version[1],
                          challenger=chal, n_plan=n_plan)
    else:
        decision = decide(arms, settings.abtest, settings.experiment, served=served,
                          challenger=chal, n_plan=n_plan)
    decided = decision.numbers.arms or {}
    per_arm = _with_traffic(decided, served, settings.experiment.weights)
    decision = decision.model_copy(update={"numbers": decision.numbers.model_copy(
        update={"arms": {a: per_arm[a] for a in decided}})})
    paired_decision: DecisionRecord | None = None
    if paired is not None and paired.n:
        paired_decision = decide_paired(paired, settings.abtest, challenger=chal, reference=ref,
                                        daily_diff=daily, daily_hit_diff=daily_hit,
                                        n_plan=n_plan)
    return per_arm, decision, paired_decision


def _analyse(outcomes: pd.DataFrame, served: Mapping[str, int], settings: Settings,
             n_plan: int, challenger: str | None, by_version: Versions | None,
             versioned: _Versioned) -> AbtestSummary:
    chal, ref = arms_of(settings.experiment, challenger)
    paired, _, daily, daily_hit = paired_daily(outcomes, chal, ref)
    per_arm, decision, paired_decision = _decisions(
        arm_stats(outcomes), served, paired, daily, settings, n_plan, chal, daily_hit,
        by_version)
    split_t = split_timeline(outcomes, settings.abtest, settings.experiment, chal, ref, n_plan,
                             weights_by_version=by_version[1] if by_version else None)
    paired_t = (paired_timeline(outcomes, settings.abtest, chal, ref, n_plan)
                if paired.n else None)
    stress = {}
    for name, w in settings.evaluation.stress_windows.items():
        part = window_breakdown(outcomes, w.start, w.end, chal, ref)
        if part is not None:
            stress[name] = part
    return AbtestSummary(
        experiment=settings.experiment.name, challenger=chal, reference=ref,
        metric=settings.abtest.metric, alpha=settings.abtest.alpha, n_plan=n_plan,
        min_effect=settings.abtest.min_effect, min_samples=settings.abtest.min_samples,
        arms=per_arm, decision=decision, paired_decision=paired_decision,
        timeline=Timelines(split=split_t, paired=paired_t),
        days_to_decision=DaysToDecision(
            split=split_t.days_to_decision,
            paired=paired_t.days_to_decision if paired_t else None),
        days=len(split_t.days), stress_windows=stress, **versioned)


def analyse_outcomes(outcomes: pd.DataFrame, served: Mapping[str, int], settings: Settings,
                     *, n_plan: int = N_PLAN, challenger: str | None = None,
                     by_version: Versions | None = None) -> AbtestSummary:
    """The full summary from outcome rows (:meth:`finmlops.ledger.Ledger.outcomes`);
    ``by_version`` tests the sample ratio of each experiment version against its own
    weights (else ``served`` against the experiment's weights)."""
    return _analyse(outcomes, served, settings, n_plan, challenger, by_version, {})


def analyse_evidence(evidence: Evidence, settings: Settings, *, n_plan: int = N_PLAN,
                     challenger: str | None = None) -> AbtestSummary:
    """The full summary of what the ledger holds: the arms and weights are the version in
    force (not the configuration file's); the sample-ratio check tests every version's
    randomised assignments against that version's weights."""
    current = settings.model_copy(update={"experiment": evidence.experiment})
    by_version = (evidence.assignments, evidence.weights) if evidence.assignments else None
    versioned = _Versioned(
        experiment_version=evidence.version,
        assignments={str(v): dict(sorted(c.items()))
                     for v, c in sorted(evidence.assignments.items())},
        weights={str(v): w for v, w in sorted(evidence.weights.items())})
    return _analyse(evidence.outcomes, evidence.served_in_force, current, n_plan, challenger,
                    by_version, versioned)


def analyse_ledger(settings: Settings, ledger_url: str) -> AbtestSummary:
    """The summary of everything the ledger at ``ledger_url`` holds for the experiment."""
    from finmlops.abtest.sources import read_evidence
    from finmlops.ledger import open_ledger

    ledger = open_ledger(ledger_url, create=False)
    try:
        return analyse_evidence(read_evidence(ledger, settings), settings)
    finally:
        ledger.close()
