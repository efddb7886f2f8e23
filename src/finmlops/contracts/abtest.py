"""``abtest.json`` and a decision's numbers: what the A/B analysis writes and the CLI, the
report and the cluster's daily job read (docs/CONTRACTS.md, "abtest.json")."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from finmlops.contracts._base import Contract

Action = Literal["promote", "rollback", "continue", "invalid"]


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


Number = Annotated[float | None, AfterValidator(_finite)]
"""A figure that is ``null`` in JSON when it is not finite (or not defined yet): the analysis
hands in NaN and infinities as they come out of the statistics, and the model holds ``None``."""


class TestNumbers(Contract):
    """A fixed-n test of a difference (challenger minus reference)."""

    __test__ = False  # not a pytest class

    estimate: Number
    std_error: Number
    statistic: Number
    p_value: Number
    lower: Number
    upper: Number
    df: Number = None


class DailyDiffNumbers(TestNumbers):
    days: int


class SequentialNumbers(Contract):
    """The always-valid test now: estimate, p-value and confidence sequence."""

    estimate: Number
    p_value: Number
    lower: Number
    upper: Number
    n_plan: int
    variance: Number = None
    tau2: Number = None
    basis: str | None = None
    """Paired decisions only: what one observation is (days, requests)."""


class SrmVersion(Contract):
    counts: dict[str, int]
    expected_share: dict[str, Number]
    log_bayes_factor: Number
    p_value: Number
    chi2_p_value: Number


class SrmNumbers(Contract):
    """The always-valid sample-ratio test (per experiment version in ``versions``)."""

    counts: dict[str, int]
    expected_share: dict[str, Number]
    log_bayes_factor: Number
    p_value: Number
    mismatch: bool
    chi2: Number
    chi2_p_value: Number
    versions: dict[str, SrmVersion] = Field(default_factory=dict)


class ArmNumbers(Contract):
    """One arm's served outcomes (``n = 0``: only the counts)."""

    n: int
    hits: int
    hit_rate: Number = None
    hit_rate_ci: list[Number] | None = None
    mean_return: Number = None
    mean_return_ci: list[Number] | None = None
    sd_return: Number = None


class ArmSummary(ArmNumbers):
    """An arm in the summary: its numbers plus traffic against the version in force."""

    served: int
    share: Number
    target_share: Number


class MdeAtPlan(Contract):
    n: int
    fixed_n: dict[str, Number]
    always_valid: dict[str, Number]


class PairedNumbers(Contract):
    n: int
    b: int
    c: int
    sum_diff: float
    sum_sq_diff: float
    mean_diff: Number
    hit_diff: Number


class HacNumbers(Contract):
    method: str
    lrv: Number
    rho: Number
    bandwidth: Number
    days: int


class DecisionNumbers(Contract):
    """Everything a decision rests on. The split test fills ``arms`` .. ``sequential`` (an
    ``invalid`` decision stops after ``srm``); the paired test ``paired`` .. ``hac``.
    :func:`finmlops.abtest.decide` gives each arm's outcomes (:class:`ArmNumbers`); the
    summary adds their traffic (:class:`ArmSummary`)."""

    metric: str
    alpha: float
    min_effect: float
    challenger: str
    reference: str
    arms: dict[str, ArmSummary | ArmNumbers] | None = None
    srm: SrmNumbers | None = None
    hit_rate: TestNumbers | None = None
    net_return: TestNumbers | None = None
    paired: PairedNumbers | None = None
    mcnemar: TestNumbers | None = None
    iid_diff: TestNumbers | None = None
    daily_diff: DailyDiffNumbers | None = None
    hac: HacNumbers | None = None
    mde: dict[str, Number] | None = None
    mde_always_valid: dict[str, Number] | None = None
    mde_at_plan: MdeAtPlan | None = None
    sequential: SequentialNumbers | None = None


class DecisionRecord(Contract):
    action: Action
    reason: str
    numbers: DecisionNumbers


class ArmCumulative(Contract):
    """One arm's running totals after each day."""

    n: list[int]
    hits: list[int]
    sum_return: list[Number]
    sum_sq: list[Number]


class Timeline(Contract):
    """A sequential test after each day (``days`` empty: no outcome yet). The split view has
    ``n_challenger``, ``n_reference`` and ``srm_p``; the paired one ``n`` and
    ``daily_diff``."""

    days: list[str]
    days_to_decision: int | None
    estimate: list[Number] = Field(default_factory=list)
    p_value: list[Number] = Field(default_factory=list)
    lower: list[Number] = Field(default_factory=list)
    upper: list[Number] = Field(default_factory=list)
    action: list[Action] = Field(default_factory=list)
    arms: dict[str, ArmCumulative] = Field(default_factory=dict)
    n_challenger: list[int] | None = None
    n_reference: list[int] | None = None
    srm_p: list[Number] | None = None
    n: list[int] | None = None
    daily_diff: list[Number] | None = None


class Timelines(Contract):
    split: Timeline
    paired: Timeline | None


class DaysToDecision(Contract):
    split: int | None
    paired: int | None


class StressArm(Contract):
    n: int
    hit_rate: Number
    mean_return: Number
    total_return: Number


class StressPaired(Contract):
    n: int
    mean_diff: Number
    total_diff: Number
    hit_rate: Number
    hit_rate_reference: Number
    total_return: Number
    total_return_reference: Number


class StressWindowResult(Contract):
    start: str
    end: str
    days: int
    served: dict[str, StressArm]
    paired: StressPaired | None = None


class ReplaySummary(Contract):
    """What the abtest stage's replay sent (``replay`` in ``abtest.json``)."""

    requests: int
    feedback: int
    days: int
    served: dict[str, int]
    seconds: float
    start: str | None = None
    end: str | None = None
    ledger: str | None = None
    run_id: str | None = None
    seconds_total: float | None = None


class LedgerSource(Contract):
    kind: Literal["ledger"]
    url: str


class AbtestSummary(Contract):
    """The experiment: per-arm numbers, both decisions, their timelines and stress windows."""

    experiment: str
    challenger: str
    reference: str
    metric: str
    alpha: float
    n_plan: int
    min_effect: float
    min_samples: int
    arms: dict[str, ArmSummary]
    decision: DecisionRecord
    paired_decision: DecisionRecord | None
    timeline: Timelines
    days_to_decision: DaysToDecision
    days: int
    stress_windows: dict[str, StressWindowResult]
    experiment_version: int | None = None
    assignments: dict[str, dict[str, int]] | None = None
    weights: dict[str, dict[str, float]] | None = None
    replay: ReplaySummary | None = None
    source: LedgerSource | None = None
