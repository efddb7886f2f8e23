"""The experiment ledger: every answered prediction, every arm's score, every outcome and every
version of the experiment, on SQLite (one host) or PostgreSQL (several pods).

- :func:`open_ledger` / :class:`Ledger`: the only code that holds the experiment's SQL;
- :class:`GroupCommitWriter`: the service's commit-before-answer path;
- :mod:`finmlops.ledger.pnl`: positions and net returns by the backtest's rule.
"""

from finmlops.ledger._db import redact
from finmlops.ledger.pnl import OUTCOME_COLUMNS, next_outcome, outcome_frame, series_pnl
from finmlops.ledger.records import (
    ASSIGNMENTS,
    RANDOMISED,
    Assignment,
    ExperimentVersion,
    Feedback,
    FeedbackResult,
    Outcome,
    Served,
    config_hash,
    entity_and_day,
)
from finmlops.ledger.schema import SCHEMA_VERSION
from finmlops.ledger.store import Ledger, open_ledger
from finmlops.ledger.writer import GroupCommitWriter, WriterEvents

__all__ = [
    "ASSIGNMENTS",
    "OUTCOME_COLUMNS",
    "RANDOMISED",
    "SCHEMA_VERSION",
    "Assignment",
    "ExperimentVersion",
    "Feedback",
    "FeedbackResult",
    "GroupCommitWriter",
    "Ledger",
    "Outcome",
    "Served",
    "WriterEvents",
    "config_hash",
    "entity_and_day",
    "next_outcome",
    "open_ledger",
    "outcome_frame",
    "redact",
    "series_pnl",
]
