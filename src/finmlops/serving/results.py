"""What the data plane hands back: the addressed target, a committed answer, a route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finmlops.ledger import Assignment
from finmlops.serving.runtime import LoadedModel

ROWS_ARM = "per-row"
"""The ``arm`` label of a request whose rows were routed one by one (its rows are counted
under the arms that served them)."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a request addresses: the experiment (``model`` is any arm, for the signature) or
    one model."""

    experiment: str | None
    model: LoadedModel


@dataclass(frozen=True, slots=True)
class InferResult:
    """One answered request, committed."""

    model_name: str
    """The arm that served (the experiment's name when its rows were routed one by one)."""
    model_version: str
    request_id: str
    """The client's id when it sent one, else the prediction id (the V2 response ``id``)."""
    prediction_id: str
    output_name: str
    probabilities: list[float]
    experiment: str | None
    config_version: int | None
    assignment: str
    row_arms: tuple[str, ...] | None = None
    """Per row, the arm that served it (a request with per-row routing keys)."""
    row_ids: tuple[str, ...] | None = None
    """Per row, its prediction id (a request with per-row routing keys)."""

    def parameters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prediction_id": self.prediction_id}
        if self.row_arms is None:
            out |= {"arm": self.model_name, "assignment": self.assignment}
        if self.experiment is not None:
            out["experiment"] = self.experiment
            out["experiment_version"] = self.config_version
        return out

    @property
    def arm_label(self) -> str:
        """The ``arm`` label of the request's latency and count."""
        return self.model_name if self.row_arms is None else ROWS_ARM

    def rows(self) -> dict[str, tuple[str, ...]] | None:
        """The per-row outputs (``arm``, ``prediction_id``), or None for a whole request."""
        if self.row_arms is None or self.row_ids is None:
            return None
        return {"arm": self.row_arms, "prediction_id": self.row_ids}


@dataclass(frozen=True, slots=True)
class Route:
    """Where one request (or one row) goes: its arm, how it was chosen, and the other arms
    that also score it before the commit."""

    arm: str
    assignment: Assignment
    propensity: float
    also: tuple[str, ...]
