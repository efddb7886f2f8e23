"""Typed contracts: every payload one stage writes and another reads, defined once.

- :class:`ModelCard` — ``model.json`` of an exported model directory;
- :class:`TrainedVariant` — ``result.json``, the run state's ``trained[variant]`` entry and
  what training hands to tracking and evaluation;
- :class:`RunState` and its stage outputs — ``state.json``;
- :class:`EvaluationFile` and its parts — ``evaluation.json`` (:func:`read_evaluation`);
  :class:`EvaluationSummary` — its headline per variant;
- :class:`AbtestSummary`, :class:`DecisionRecord`, :class:`DecisionNumbers` —
  ``abtest.json`` and a decision's numbers.

Writers build these and write :meth:`Contract.to_json`; readers validate what they read, so
a file the program does not write is an error, never a shape to probe for.
"""

from finmlops.contracts._base import Contract
from finmlops.contracts.abtest import (
    AbtestSummary,
    Action,
    ArmCumulative,
    ArmNumbers,
    ArmSummary,
    DecisionNumbers,
    DecisionRecord,
    ReplaySummary,
    SequentialNumbers,
    SrmNumbers,
    StressWindowResult,
    TestNumbers,
    Timeline,
)
from finmlops.contracts.card import CARD, INPUT_NAME, MODEL_FORMAT, OUTPUT_NAME, ModelCard
from finmlops.contracts.evaluation import (
    ActiveStats,
    CostPoint,
    EvaluationFile,
    PerformanceMetrics,
    TrialsUsed,
    VariantEvaluation,
    read_evaluation,
)
from finmlops.contracts.state import (
    WRITER,
    AbtestOutput,
    EvaluationOutput,
    EvaluationSummary,
    FeaturesOutput,
    RegisteredEntry,
    ReportOutput,
    RunState,
    StageRecord,
)
from finmlops.contracts.trained import TrainedVariant

__all__ = [
    "CARD",
    "INPUT_NAME",
    "MODEL_FORMAT",
    "OUTPUT_NAME",
    "WRITER",
    "AbtestOutput",
    "AbtestSummary",
    "Action",
    "ActiveStats",
    "ArmCumulative",
    "ArmNumbers",
    "ArmSummary",
    "Contract",
    "CostPoint",
    "DecisionNumbers",
    "DecisionRecord",
    "EvaluationFile",
    "EvaluationOutput",
    "EvaluationSummary",
    "FeaturesOutput",
    "ModelCard",
    "PerformanceMetrics",
    "RegisteredEntry",
    "ReplaySummary",
    "ReportOutput",
    "RunState",
    "SequentialNumbers",
    "SrmNumbers",
    "StageRecord",
    "StressWindowResult",
    "TestNumbers",
    "Timeline",
    "TrainedVariant",
    "TrialsUsed",
    "VariantEvaluation",
    "read_evaluation",
]
