"""The run state (``<home>/state.json``): what each stage hands the stages after it.

:class:`RunState` is the typed view of the merged state; the ``need_*`` accessors name the
command to run when an earlier stage's output is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from finmlops.contracts._base import Contract
from finmlops.contracts.trained import TrainedVariant
from finmlops.errors import StageError


class FeaturesOutput(Contract):
    """``features``: the cached feature matrix and its calendar report."""

    path: str
    rows: int
    columns: list[str]
    calendar_days: int
    gaps: dict[str, list[str]]
    dropped_rows: dict[str, int]


class EvaluationSummary(Contract):
    """``evaluation.summary[variant]``: the headline numbers of one variant's evaluation."""

    sharpe: float | None
    total_return: float | None
    dsr: float | None
    max_drawdown: float | None
    break_even_bps: float | None
    accuracy: float | None
    buy_and_hold_sharpe: float | None
    buy_and_hold_total_return: float | None
    active_total_return: float | None
    information_ratio: float | None
    active_psr: float | None
    active_dsr: float | None
    sharpe_difference_p: float | None
    alpha_t: float | None
    beta: float | None
    n_trials: int | None


class EvaluationOutput(Contract):
    """``evaluation``: where ``evaluation.json`` is, and its headline per variant."""

    path: str
    summary: dict[str, EvaluationSummary]


class RegisteredEntry(Contract):
    """``registered[variant]``: the registry version the register stage created."""

    version: str
    aliases: list[str]
    run_id: str | None = None


class AbtestOutput(Contract):
    """``abtest``: the split decision and where ``abtest.json`` is."""

    decision: str
    path: str


class ReportOutput(Contract):
    path: str


class StageRecord(Contract):
    summary: str
    seconds: float


class RunState(Contract):
    """Every stage's outputs, as merged into ``state.json`` (docs/CONTRACTS.md)."""

    # A state written by a newer finmlops may carry outputs this one does not know.
    model_config = ConfigDict(extra="ignore")

    dataset_version: str | None = None
    features: FeaturesOutput | None = None
    trained: dict[str, TrainedVariant] = Field(default_factory=dict)
    evaluation: EvaluationOutput | None = None
    registered: dict[str, RegisteredEntry] = Field(default_factory=dict)
    abtest: AbtestOutput | None = None
    report: ReportOutput | None = None
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, state: Mapping[str, Any], *sections: str) -> RunState:
        """The typed view of a state mapping: only ``sections`` (every one when none are
        named), so a stage reads its inputs and nothing else. An entry this version cannot
        read is one line naming the stage that rewrites it (an older finmlops wrote it)."""
        chosen = {k: v for k, v in state.items() if not sections or k in sections}
        try:
            return cls.model_validate(chosen)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][:2])
            stage = WRITER.get(str(first["loc"][0]), "the stage that writes it")
            raise StageError(f"the run state's {where} cannot be read ({first['msg']}): run "
                             f"`finmlops run --only {stage}` again") from None

    def need_dataset_version(self) -> str:
        if not self.dataset_version:
            raise _missing("dataset_version", "ingest")
        return self.dataset_version

    def need_features(self) -> FeaturesOutput:
        if self.features is None:
            raise _missing("features", "features")
        return self.features

    def need_trained(self) -> dict[str, TrainedVariant]:
        if not self.trained:
            raise _missing("trained", "train")
        return self.trained

    def need_evaluation(self) -> EvaluationOutput:
        if self.evaluation is None:
            raise _missing("evaluation", "evaluate")
        return self.evaluation

    def need_registered(self) -> dict[str, RegisteredEntry]:
        if not self.registered:
            raise _missing("registered", "register")
        return self.registered


WRITER = {"dataset_version": "ingest", "features": "features", "trained": "train",
          "evaluation": "evaluate", "registered": "register", "abtest": "abtest",
          "report": "report"}
"""The stage that writes each section."""


def _missing(key: str, stage: str) -> StageError:
    return StageError(f"no {key!r} yet: run `finmlops run --until {stage}` first")
