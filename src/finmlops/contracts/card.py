"""``model.json``: the card of an exported model directory (docs/CONTRACTS.md, "Exported model
directory"). Train writes it; serving, tracking, the A/B stage, drift and publishing read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError

from finmlops.contracts._base import Contract, first_problem
from finmlops.errors import ConfigError, ModelNotFoundError
from finmlops.files import write_text

CARD = "model.json"
MODEL_FORMAT = 1
INPUT_NAME = "features"
OUTPUT_NAME = "probability"


class ModelCard(Contract):
    """What a model is and what its input means. ``registered_model``, ``model_version``,
    ``aliases`` and ``run_id`` are added by :func:`finmlops.tracking.download_model` to a
    registered version's card."""

    # Cards written by older versions may carry keys this one no longer writes.
    model_config = ConfigDict(extra="ignore")

    format: int = MODEL_FORMAT
    variant: str
    target: list[str]
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    window: int
    feature_names: list[str]
    data_version: str
    weights_hash: str
    trained_until: str | None
    horizon: int
    reference: dict[str, Any] | None = None
    """The drift reference (:func:`finmlops.monitoring.build_reference`), or ``None``."""
    kind: str | None = None
    """The model family of a universe study's export (``neural`` or ``gbm``)."""
    study: str | None = None
    """The universe study an export belongs to."""
    registered_model: str | None = None
    model_version: str | None = None
    aliases: list[str] | None = None
    run_id: str | None = None

    @property
    def version(self) -> str:
        """The registry version this card describes (``"1"`` for a model never registered)."""
        return self.model_version or "1"

    def text(self) -> str:
        """The file's text: sorted keys, as every card has been written."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    def write(self, directory: Path) -> Path:
        """``directory/model.json``, atomically."""
        return write_text(Path(directory) / CARD, self.text())

    @classmethod
    def read(cls, directory: Path) -> ModelCard:
        """The card of an exported model directory; one readable error when it is missing
        or is not a card."""
        path = Path(directory) / CARD
        if not path.is_file():
            raise ModelNotFoundError(f"no {CARD} in {directory}")
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise ConfigError(f"{path} is not a model card ({first_problem(exc)})") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
