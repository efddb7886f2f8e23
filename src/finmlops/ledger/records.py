"""What goes into the ledger and what comes out of it: plain, immutable records."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from finmlops.config import ExperimentSettings

Assignment = Literal["hash", "random", "pinned", "direct"]
"""How a prediction's arm was chosen: the routing key's salted hash, the process's random
draw, a client's ``x-seldon-route`` pin, or a direct call to one model (no experiment)."""
ASSIGNMENTS: tuple[Assignment, ...] = ("hash", "random", "pinned", "direct")
RANDOMISED: tuple[Assignment, ...] = ("hash", "random")
"""Assignments made by the experiment's weights: the only ones a decision may use."""


@dataclass(frozen=True, slots=True)
class Served:
    """One answered request (or the rows of it one arm served) as the service hands it over
    to be committed: one prediction per row, every row with this arm and assignment."""

    ts: float
    prediction_ids: tuple[str, ...]
    client_id: str | None
    experiment: str | None
    config_version: int | None
    arm: str
    model_version: str
    routing_key: str | None
    assignment: Assignment
    propensity: float
    x: np.ndarray
    """``[n, W, F]`` raw inputs (digested, not stored)."""
    probabilities: np.ndarray
    also_score: tuple[str, ...] = ()
    """Other arms to score before the commit (shadow candidates, the mirror)."""
    row_keys: tuple[str, ...] | None = None
    """Each row's own routing key (a request routed row by row); ``None``: every row has
    ``routing_key``."""

    def key(self, row: int) -> str | None:
        """The routing key of one row."""
        return self.routing_key if self.row_keys is None else self.row_keys[row]


@dataclass(frozen=True, slots=True)
class Feedback:
    """A realised one-day return addressed to one prediction or to every prediction under a
    routing key (``"TICKER:YYYY-MM-DD"``): exactly one of the two."""

    realized_return: float
    direction: int
    prediction_id: str | None = None
    routing_key: str | None = None

    def __post_init__(self) -> None:
        if (self.prediction_id is None) == (self.routing_key is None):
            raise ValueError("a Feedback needs exactly one of prediction_id or routing_key")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One arm's result on one newly joined prediction (for the service's counters)."""

    prediction_id: str
    experiment: str | None
    arm: str
    served: bool
    hit: int
    net_return: float


@dataclass
class FeedbackResult:
    """``accepted``/``duplicates`` count predictions newly answered and already answered with
    the same value; ``unknown`` lists what matched no prediction."""

    accepted: int = 0
    duplicates: int = 0
    unknown: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "unknown": self.unknown}


@dataclass(frozen=True)
class ExperimentVersion:
    """One version of an experiment's definition; the highest version is in force."""

    experiment: str
    version: int
    config: ExperimentSettings
    source: str
    """``config`` (seeded from finmlops.yaml), ``admin`` (the service's admin endpoint) or
    ``decide`` (``finmlops abtest decide --apply``)."""
    actor: str
    reason: str
    created_at: float

    @property
    def weights(self) -> dict[str, float]:
        return {name: float(w) for name, w in self.config.weights.items()}

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "version": self.version,
                "config": self.config.model_dump(mode="json"), "source": self.source,
                "actor": self.actor, "reason": self.reason, "created_at": self.created_at}


def config_json(config: ExperimentSettings) -> str:
    return json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def config_hash(config: ExperimentSettings) -> str:
    return hashlib.sha256(config_json(config).encode()).hexdigest()[:16]


def entity_and_day(routing_key: str | None, prediction_id: str, ts: float) -> tuple[str, str]:
    """The position a prediction belongs to and its market day.

    ``"TICKER:YYYY-MM-DD"`` -> (``TICKER``, that date): one position per ticker, one decision
    per day. Another key -> (the key, the UTC date served). No key -> the prediction is a
    position of its own."""
    served_day = dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()
    if routing_key is None:
        return prediction_id, served_day
    head, sep, tail = routing_key.rpartition(":")
    if sep and head:
        try:
            return head, dt.date.fromisoformat(tail).isoformat()
        except ValueError:
            pass
    return routing_key, served_day
