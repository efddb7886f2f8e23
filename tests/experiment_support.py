"""The experiment version a test's ledger holds in force (tests import it by module name)."""

from __future__ import annotations

from finmlops.config import Settings
from finmlops.ledger import open_ledger


def experiment_in_force(settings: Settings) -> tuple[int, dict[str, int], str]:
    """``(version, weights, source)`` of the experiment version in force."""
    ledger = open_ledger(settings.ledger_url, create=False)
    try:
        v = ledger.experiment(settings.experiment.name)
    finally:
        ledger.close()
    assert v is not None, f"no version of {settings.experiment.name!r} in the ledger"
    return v.version, v.config.weights, v.source
