"""Builders for ledger tests: served predictions with chosen keys, arms and probabilities."""

from __future__ import annotations

import numpy as np

from finmlops.ledger import Assignment, Served

EXPERIMENT = "direction-ab"


def served(pid: str, key: str | None, arm: str = "baseline", p: float = 0.8,
           shadow: dict[str, float] | None = None, assignment: Assignment = "hash",
           ts: float = 1.0e9, version: int = 1, experiment: str | None = EXPERIMENT
           ) -> tuple[Served, dict[str, float]]:
    """One single-row prediction; ``shadow`` maps other arms to their probabilities."""
    shadow = shadow or {}
    item = Served(ts, (pid,), f"client-{pid}", experiment, version, arm, "1", key, assignment,
                  0.5, np.zeros((1, 2, 3), np.float32), np.array([p], np.float32),
                  tuple(shadow))
    return item, shadow


def record(ledger: object, rows: list[tuple[Served, dict[str, float]]]) -> None:
    """Commit ``rows`` (as built by :func:`served`) in one transaction."""
    extra = {(i, arm): ("2", np.array([q], np.float32))
             for i, (_, sh) in enumerate(rows) for arm, q in sh.items()}
    ledger.record([item for item, _ in rows], extra)  # type: ignore[attr-defined]
