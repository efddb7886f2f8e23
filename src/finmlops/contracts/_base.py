"""The base of every contract: strict (unknown keys are an error), immutable, and written as
the program always wrote it (keys a producer left out stay out)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """A payload one stage writes and another reads (docs/CONTRACTS.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        """JSON-able data with exactly the keys that were given (NaN stays a float: the
        writer decides whether it becomes ``null``)."""
        return self.model_dump(mode="json", exclude_unset=True)
