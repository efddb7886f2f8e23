"""The base of every contract: strict (unknown keys are an error), immutable, and written as
the program always wrote it (keys a producer left out stay out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from finmlops.errors import StageError


class Contract(BaseModel):
    """A payload one stage writes and another reads (docs/CONTRACTS.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        """JSON-able data with exactly the keys that were given (NaN stays a float: the
        writer decides whether it becomes ``null``)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def read_stage_file(cls, path: Path, what: str, stage: str) -> Self:
        """``path`` as this contract, validated once; a missing file, or one this version
        does not write, is one line naming the ``stage`` that rewrites it."""
        rerun = f"run `finmlops run --only {stage}` again"
        if not path.is_file():
            raise StageError(f"{what} not found at {path}: {rerun}")
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise StageError(f"{path} is not {'an' if what[0] in 'AEIOUaeiou' else 'a'} "
                             f"{what} this finmlops reads ({first_problem(exc)}): "
                             f"{rerun}") from None


def first_problem(exc: ValidationError) -> str:
    """``where: what`` of a file's first validation problem (``where`` a dotted key)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the file"
    return f"{where}: {first['msg']}"
