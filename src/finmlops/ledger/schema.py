"""The ledger's tables, and the migrations that take any older ledger to the current schema.

``ledger_meta.schema_version`` names the schema a ledger holds. :func:`migrate` applies every
migration above it in one transaction, serialised across processes (PostgreSQL: an advisory
lock; SQLite: the write lock), so several pods starting at once migrate once. A ledger newer
than this code is refused rather than written with the wrong rules.

Rows (docs/CONTRACTS.md "Experiment ledger"):

- ``experiment_versions``: every version of an experiment's arms and weights, who made it and
  why; the highest version is in force.
- ``predictions``: one per answered row, keyed by a server-issued ``prediction_id``; the
  client's id beside it; how it was assigned (``hash`` | ``random`` | ``pinned`` | ``direct``)
  and with what propensity, under which experiment version.
- ``scores``: every arm's probability for a prediction (the served arm's and, with shadow
  scoring or a mirror, the others'), with the prediction's entity and day copied so a
  position series reads from one index.
- ``feedback``: the realised one-day return of a prediction, once; who posted it and how it
  was addressed.
"""

from __future__ import annotations

from collections.abc import Callable

from finmlops.errors import StoreError
from finmlops.ledger._db import Cursor, Database

SCHEMA_VERSION = 1


def _v1(real: str) -> list[str]:
    return [
        "CREATE TABLE experiment_versions(experiment TEXT NOT NULL, version INTEGER NOT NULL, "
        f"config TEXT NOT NULL, config_hash TEXT NOT NULL, source TEXT NOT NULL, "
        f"actor TEXT NOT NULL, reason TEXT NOT NULL, created_at {real} NOT NULL, "
        "PRIMARY KEY (experiment, version))",
        "CREATE TABLE predictions(prediction_id TEXT PRIMARY KEY, client_id TEXT, "
        f"ts {real} NOT NULL, experiment TEXT, config_version INTEGER, arm TEXT NOT NULL, "
        "model_version TEXT NOT NULL, routing_key TEXT, entity TEXT NOT NULL, "
        f"day TEXT NOT NULL, assignment TEXT NOT NULL, propensity {real} NOT NULL, "
        f"inputs_digest TEXT NOT NULL, probability {real} NOT NULL, server TEXT NOT NULL)",
        "CREATE INDEX predictions_routing_key ON predictions(routing_key)",
        "CREATE INDEX predictions_experiment ON predictions(experiment, config_version)",
        "CREATE TABLE scores(prediction_id TEXT NOT NULL, arm TEXT NOT NULL, "
        f"model_version TEXT NOT NULL, probability {real} NOT NULL, served INTEGER NOT NULL, "
        f"experiment TEXT, entity TEXT NOT NULL, day TEXT NOT NULL, ts {real} NOT NULL, "
        "pinned INTEGER NOT NULL, PRIMARY KEY (prediction_id, arm))",
        "CREATE INDEX scores_series ON scores(experiment, arm, entity, day, ts)",
        f"CREATE TABLE feedback(prediction_id TEXT PRIMARY KEY, ts {real} NOT NULL, "
        f"realized_return {real} NOT NULL, direction INTEGER NOT NULL, caller TEXT NOT NULL, "
        "via TEXT NOT NULL)",
    ]


MIGRATIONS: dict[int, Callable[[str], list[str]]] = {1: _v1}
"""Schema version -> the statements that reach it from the one before."""


def migrate(db: Database) -> int:
    """Bring ``db`` to :data:`SCHEMA_VERSION`; returns the version it held before."""
    with db.transaction() as cur:
        db.lock_schema(cur)
        cur.execute("CREATE TABLE IF NOT EXISTS ledger_meta(key TEXT PRIMARY KEY, "
                    "value TEXT NOT NULL)")
        before = current_version(cur)
        if before > SCHEMA_VERSION:
            raise StoreError(f"ledger {db.describe()} has schema version {before}, newer than "
                             f"this finmlops ({SCHEMA_VERSION}): upgrade finmlops")
        for version in range(before + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version](db.real):
                cur.execute(statement)
        cur.execute("INSERT INTO ledger_meta(key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(SCHEMA_VERSION),))
        cur.execute("INSERT INTO ledger_meta(key, value) VALUES ('heartbeat', '0') "
                    "ON CONFLICT (key) DO NOTHING")
    return before


def current_version(cur: Cursor) -> int:
    row = cur.execute("SELECT value FROM ledger_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0
