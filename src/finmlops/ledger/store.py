"""The experiment ledger: every statement the experiment's evidence is written or read with.

Nothing else in finmlops holds SQL for predictions, scores, feedback or experiment versions;
the service, ``finmlops abtest`` and the tests all go through :class:`Ledger`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from finmlops.config import EvaluationSettings, ExperimentSettings
from finmlops.errors import ConflictError, LedgerUnavailableError, StoreError
from finmlops.ledger import pnl
from finmlops.ledger._db import Cursor, Database, connect
from finmlops.ledger.records import (
    RANDOMISED,
    ExperimentVersion,
    Feedback,
    FeedbackResult,
    Outcome,
    Served,
    config_hash,
    config_json,
    entity_and_day,
)
from finmlops.ledger.schema import SCHEMA_VERSION, current_version, migrate

SAME_RETURN = 1e-9
"""Two realised returns of one prediction closer than this are the same outcome (a re-post);
further apart, the second is a conflicting correction and is refused."""
MAX_LISTED = 20
"""Conflicts named in a refusal's message."""

ScoreMap = Mapping[tuple[int, str], tuple[str, np.ndarray]]
"""``(index of the Served in the batch, arm) -> (model_version, probabilities)``."""


_INSERT_PREDICTIONS = (
    "INSERT INTO predictions(prediction_id, client_id, ts, experiment, config_version, arm, "
    "model_version, routing_key, entity, day, assignment, propensity, inputs_digest, "
    "probability, server) ")
_INSERT_SCORES = ("INSERT INTO scores(prediction_id, arm, model_version, probability, served, "
                  "experiment, entity, day, ts, pinned) ")
_PG_RECORD = "".join((  # constant text only
    "WITH p AS (", _INSERT_PREDICTIONS, "SELECT * FROM unnest("
    "?::text[], ?::text[], ?::float8[], ?::text[], ?::int[], ?::text[], ?::text[], ?::text[], "
    "?::text[], ?::text[], ?::text[], ?::float8[], ?::text[], ?::float8[], ?::text[])) ",
    _INSERT_SCORES, "SELECT * FROM unnest(?::text[], ?::text[], "
    "?::text[], ?::float8[], ?::int[], ?::text[], ?::text[], ?::text[], ?::float8[], ?::int[])"))
"""PostgreSQL: a batch's predictions and scores in one statement (a data-modifying WITH runs
whether or not the outer statement reads it)."""


def _digest(row: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=8).hexdigest()


def server_name() -> str:
    """Which process wrote a row: host (the pod's name on Kubernetes) and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Ledger:
    """The ledger on one database (see :func:`open_ledger`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.server = server_name()

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def describe(self) -> str:
        return self.db.describe()

    def close(self) -> None:
        self.db.close()

    # -- writes: predictions ---------------------------------------------------------------

    def record(self, batch: Sequence[Served], extra: ScoreMap | None = None, *,
               wait: bool = True) -> int:
        """Commit the predictions of ``batch`` and every score (served and ``extra``) in one
        transaction; returns the number of prediction rows. ``wait=False`` fails at once
        when another writer holds the lock (SQLite) instead of waiting for it."""
        preds: list[tuple[Any, ...]] = []
        scores: list[tuple[Any, ...]] = []
        extra = extra or {}
        server = self.server
        for i, item in enumerate(batch):
            probs = item.probabilities.tolist()
            pinned = int(item.assignment == "pinned")
            for j, pid in enumerate(item.prediction_ids):
                key = item.key(j)
                entity, day = entity_and_day(key, pid, item.ts)
                p = probs[j]
                preds.append((pid, item.client_id, item.ts, item.experiment,
                              item.config_version, item.arm, item.model_version,
                              key, entity, day, item.assignment, item.propensity,
                              _digest(item.x[j]), p, server))
                scores.append((pid, item.arm, item.model_version, p, 1, item.experiment,
                               entity, day, item.ts, pinned))
                for arm in item.also_score:
                    got = extra.get((i, arm))
                    if got is not None:
                        scores.append((pid, arm, got[0], float(got[1][j]), 0, item.experiment,
                                       entity, day, item.ts, pinned))
        with self.db.transaction(wait=wait) as cur:
            if self.db.dialect == "postgresql":
                # one statement, one round trip: both tables from column arrays
                cur.execute(_PG_RECORD, [list(c) for c in zip(*preds, strict=True)]
                            + [list(c) for c in zip(*scores, strict=True)])
            else:
                cur.executemany(_INSERT_PREDICTIONS + "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                preds)
                cur.executemany(_INSERT_SCORES + "VALUES (?,?,?,?,?,?,?,?,?,?)", scores)
        return len(preds)

    def ping(self) -> None:
        """A read that fails when the database cannot be reached."""
        with self.db.reading() as cur:
            cur.execute("SELECT value FROM ledger_meta WHERE key = 'schema_version'").fetchone()

    def probe(self) -> None:
        """A tiny write that fails the way a real one would (locked, full, unreachable);
        after a failure the database may start afresh (a new pool) and the write is tried
        once more."""
        try:
            self._heartbeat()
        except LedgerUnavailableError:
            if not self.db.recover():
                raise
            self._heartbeat()

    def _heartbeat(self) -> None:
        with self.db.transaction() as cur:
            cur.execute("UPDATE ledger_meta SET value = ? WHERE key = 'heartbeat'",
                        (repr(time.time()),))

    # -- writes: feedback ------------------------------------------------------------------

    def apply_feedback(self, items: Iterable[Feedback], caller: str,
                       evaluation: EvaluationSettings, now: float | None = None
                       ) -> FeedbackResult:
        """Join realised returns to predictions, once each, in one transaction.

        A prediction's outcome is recorded once, ever: the same value again is a duplicate;
        a different value is a conflict and the whole batch is refused
        (:class:`~finmlops.errors.ConflictError`, nothing written). Concurrent posts of the
        same outcome (several replicas, a retry after a timeout) count once: each
        prediction's row is inserted by exactly one transaction, in prediction-id order (so
        concurrent batches cannot deadlock)."""
        now = time.time() if now is None else now
        result = FeedbackResult()
        with self.db.transaction() as cur:
            targets: dict[str, Feedback] = {}
            for fb in items:
                if fb.routing_key is not None:
                    pids = [r[0] for r in cur.execute(
                        "SELECT prediction_id FROM predictions WHERE routing_key = ?",
                        (fb.routing_key,)).fetchall()]
                    if not pids:
                        result.unknown.append(fb.routing_key)
                    for pid in pids:
                        targets.setdefault(pid, fb)
                elif fb.prediction_id is not None:
                    if cur.execute("SELECT 1 FROM predictions WHERE prediction_id = ?",
                                   (fb.prediction_id,)).fetchone() is None:
                        result.unknown.append(fb.prediction_id)
                    else:
                        targets.setdefault(fb.prediction_id, fb)
            conflicts: list[str] = []
            inserted: list[tuple[str, Feedback]] = []
            for pid in sorted(targets):
                fb = targets[pid]
                via = "routing_key" if fb.routing_key is not None else "prediction_id"
                cur.execute("INSERT INTO feedback(prediction_id, ts, realized_return, "
                            "direction, caller, via) VALUES (?,?,?,?,?,?) "
                            "ON CONFLICT (prediction_id) DO NOTHING",
                            (pid, now, fb.realized_return, fb.direction, caller, via))
                if cur.rowcount == 1:
                    inserted.append((pid, fb))
                    continue
                row = cur.execute("SELECT realized_return, direction FROM feedback "
                                  "WHERE prediction_id = ?", (pid,)).fetchone()
                if row is not None and (abs(float(row[0]) - fb.realized_return) > SAME_RETURN
                                        or int(row[1]) != fb.direction):
                    conflicts.append(f"{pid} (recorded {float(row[0]):+.6g}, posted "
                                     f"{fb.realized_return:+.6g})")
                else:
                    result.duplicates += 1
            if conflicts:
                shown = ", ".join(conflicts[:MAX_LISTED])
                more = f" and {len(conflicts) - MAX_LISTED} more" if len(conflicts) > MAX_LISTED \
                    else ""
                raise ConflictError(
                    f"{len(conflicts)} outcome(s) differ from the ones already recorded; "
                    f"nothing was applied (an outcome is recorded once): {shown}{more}",
                    conflicts)
            result.accepted = len(inserted)
            for pid, fb in inserted:
                result.outcomes.extend(self._outcomes(cur, pid, fb, evaluation))
        return result

    def _outcomes(self, cur: Cursor, pid: str, fb: Feedback, evaluation: EvaluationSettings
                  ) -> list[Outcome]:
        """Each scoring arm's hit and net return on a just-joined prediction, for the
        counters; nothing for pinned predictions or a key's repeat on the same day."""
        rows = cur.execute(
            "SELECT arm, probability, served, experiment, entity, day, ts, pinned "
            "FROM scores WHERE prediction_id = ? ORDER BY arm", (pid,)).fetchall()
        low, high = pnl.decided_bounds(evaluation)
        out: list[Outcome] = []
        for arm, prob, served, experiment, entity, day, ts, pinned in rows:
            if pinned or experiment is None:
                continue
            earlier = cur.execute(
                "SELECT 1 FROM scores WHERE experiment = ? AND arm = ? AND entity = ? "
                "AND day = ? AND pinned = 0 AND (ts < ? OR (ts = ? AND prediction_id < ?)) "
                "LIMIT 1", (experiment, arm, entity, day, ts, ts, pid)).fetchone()
            if earlier is not None:
                continue
            prev = cur.execute(
                "SELECT probability FROM scores WHERE experiment = ? AND arm = ? "
                "AND entity = ? AND day < ? AND pinned = 0 AND (probability > ? OR "
                "probability <= ?) ORDER BY day DESC, ts DESC LIMIT 1",
                (experiment, arm, entity, day, high, low)).fetchone()
            p = float(prob)
            net = pnl.next_outcome(None if prev is None else float(prev[0]), p,
                                   fb.realized_return, evaluation)
            hit = int((p > evaluation.threshold) == (fb.direction == 1))
            out.append(Outcome(pid, str(experiment), str(arm), bool(served), hit, net))
        return out

    # -- experiment versions ---------------------------------------------------------------

    def experiment(self, name: str) -> ExperimentVersion | None:
        """The version in force (the highest), or None before the first."""
        with self.db.reading() as cur:
            row = cur.execute(
                "SELECT experiment, version, config, source, actor, reason, created_at "
                "FROM experiment_versions WHERE experiment = ? ORDER BY version DESC LIMIT 1",
                (name,)).fetchone()
        return None if row is None else _version(row)

    def latest_version(self, name: str) -> int:
        """The version in force, 0 before the first (what every replica polls)."""
        with self.db.reading() as cur:
            row = cur.execute("SELECT MAX(version) FROM experiment_versions "
                              "WHERE experiment = ?", (name,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def experiment_versions(self, name: str) -> list[ExperimentVersion]:
        with self.db.reading() as cur:
            rows = cur.execute(
                "SELECT experiment, version, config, source, actor, reason, created_at "
                "FROM experiment_versions WHERE experiment = ? ORDER BY version",
                (name,)).fetchall()
        return [_version(r) for r in rows]

    def publish_experiment(self, config: ExperimentSettings, *, source: str, actor: str,
                           reason: str) -> ExperimentVersion:
        """Put ``config`` in force as the next version (every replica picks it up)."""
        now = time.time()
        for _ in range(5):
            with self.db.transaction() as cur:
                row = cur.execute("SELECT MAX(version) FROM experiment_versions "
                                  "WHERE experiment = ?", (config.name,)).fetchone()
                version = (int(row[0]) if row and row[0] is not None else 0) + 1
                cur.execute(
                    "INSERT INTO experiment_versions(experiment, version, config, config_hash, "
                    "source, actor, reason, created_at) VALUES (?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (experiment, version) DO NOTHING",
                    (config.name, version, config_json(config), config_hash(config), source,
                     actor, reason, now))
                if cur.rowcount == 1:
                    return ExperimentVersion(config.name, version, config, source, actor,
                                             reason, now)
        raise ConflictError(f"experiment {config.name!r}: could not take a new version "
                            "(too many concurrent changes); try again")

    def ensure_experiment(self, config: ExperimentSettings) -> ExperimentVersion:
        """The version in force, after seeding it from ``config`` (finmlops.yaml) when the
        ledger has none or when the file changed since it was last seeded; changes made
        through the admin endpoint or ``abtest decide --apply`` stay in force otherwise."""
        digest = config_hash(config)
        with self.db.reading() as cur:
            seeded = cur.execute(
                "SELECT config_hash FROM experiment_versions WHERE experiment = ? AND "
                "source = 'config' ORDER BY version DESC LIMIT 1", (config.name,)).fetchone()
        current = self.experiment(config.name)
        if current is not None and seeded is not None and seeded[0] == digest:
            return current
        if current is not None and config_hash(current.config) == digest:
            return current
        return self.publish_experiment(config, source="config", actor="finmlops.yaml",
                                       reason="experiment section of the configuration")

    # -- reads -----------------------------------------------------------------------------

    def score_rows(self, experiment: str) -> pd.DataFrame:
        """Every non-pinned score of ``experiment`` with its prediction's assignment and its
        realised return (NaN until feedback): the input of :func:`pnl.outcome_frame`."""
        with self.db.reading() as cur:
            rows = cur.execute(
                "SELECT s.prediction_id, s.ts, s.day, s.entity, "
                "CASE WHEN p.routing_key IS NULL THEN 0 ELSE 1 END, p.config_version, "
                "p.assignment, s.arm, s.served, s.model_version, s.probability, "
                "f.realized_return, f.direction "
                "FROM scores s JOIN predictions p ON p.prediction_id = s.prediction_id "
                "LEFT JOIN feedback f ON f.prediction_id = s.prediction_id "
                "WHERE s.experiment = ? AND s.pinned = 0", (experiment,)).fetchall()
        df = pd.DataFrame(rows, columns=pnl.ROW_COLUMNS)
        for col in ("realized_return", "direction", "probability", "ts"):
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
        return df

    def outcomes(self, experiment: str, evaluation: EvaluationSettings) -> pd.DataFrame:
        """Every (prediction, arm) outcome of ``experiment`` with its net return by the
        backtest's rule (:mod:`finmlops.ledger.pnl`); pinned predictions excluded."""
        return pnl.outcome_frame(self.score_rows(experiment), evaluation)

    def assignment_counts(self, experiment: str) -> dict[int, dict[str, int]]:
        """Randomised assignments per experiment version and arm (the sample-ratio check's
        input): a routing key counts once per version (its hash is the unit randomised),
        a keyless request once each; pinned and direct calls not at all."""
        with self.db.reading() as cur:
            rows = cur.execute(
                "SELECT config_version, arm, COUNT(DISTINCT routing_key) + "
                "SUM(CASE WHEN routing_key IS NULL THEN 1 ELSE 0 END) FROM predictions "
                "WHERE experiment = ? AND assignment IN (?, ?) "
                "GROUP BY config_version, arm", (experiment, *RANDOMISED)).fetchall()
        out: dict[int, dict[str, int]] = {}
        for version, arm, n in rows:
            out.setdefault(int(version or 0), {})[str(arm)] = int(n)
        return out

    def last_outcome_time(self, experiment: str) -> float | None:
        """When the newest outcome of ``experiment`` was recorded (None before the first)."""
        with self.db.reading() as cur:
            row = cur.execute(
                "SELECT MAX(f.ts) FROM feedback f JOIN predictions p "
                "ON p.prediction_id = f.prediction_id WHERE p.experiment = ?",
                (experiment,)).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def predictions(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """Prediction rows (oldest first), all or one experiment's."""
        sql = ("SELECT prediction_id, client_id, ts, experiment, config_version, arm, "
               "model_version, routing_key, entity, day, assignment, propensity, "
               "inputs_digest, probability, server FROM predictions")
        params: tuple[Any, ...] = ()
        if experiment is not None:
            sql += " WHERE experiment = ?"
            params = (experiment,)
        return self._dicts(sql + " ORDER BY ts, prediction_id", params)

    def scores(self, prediction_id: str) -> list[dict[str, Any]]:
        return self._dicts(
            "SELECT prediction_id, arm, model_version, probability, served, pinned "
            "FROM scores WHERE prediction_id = ? ORDER BY arm", (prediction_id,))

    def feedback(self, prediction_id: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT prediction_id, ts, realized_return, direction, caller, via "
               "FROM feedback")
        params: tuple[Any, ...] = ()
        if prediction_id is not None:
            sql += " WHERE prediction_id = ?"
            params = (prediction_id,)
        return self._dicts(sql + " ORDER BY prediction_id", params)

    def counts(self) -> dict[str, int]:
        with self.db.reading() as cur:
            row = cur.execute(
                "SELECT (SELECT COUNT(*) FROM predictions), (SELECT COUNT(*) FROM scores), "
                "(SELECT COUNT(*) FROM feedback)").fetchone()
        if row is None:  # pragma: no cover - an aggregate always returns a row
            raise StoreError("ledger counts returned nothing")
        return {"predictions": int(row[0]), "scores": int(row[1]), "feedback": int(row[2])}

    def tables(self) -> dict[str, list[str]]:
        """Each table's columns in order (for schema checks against docs/CONTRACTS.md)."""
        with self.db.reading() as cur:
            if self.dialect == "sqlite":
                names = [r[0] for r in cur.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]
                return {n: [r[1] for r in cur.execute(
                    "SELECT * FROM pragma_table_info(?)", (n,)).fetchall()] for n in names}
            rows = cur.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
            ).fetchall()
        out: dict[str, list[str]] = {}
        for table, column in rows:
            out.setdefault(str(table), []).append(str(column))
        return out

    def _dicts(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        with self.db.reading() as cur:
            rows = cur.execute(sql, params).fetchall()
            names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in rows]


def _version(row: Sequence[Any]) -> ExperimentVersion:
    experiment, version, config, source, actor, reason, created = row
    return ExperimentVersion(str(experiment), int(version),
                             ExperimentSettings(**json.loads(config)), str(source), str(actor),
                             str(reason), float(created))


def open_ledger(url: str, *, create: bool = True, timeout_s: float = 2.0,
                pool_size: int = 4) -> Ledger:
    """The ledger at ``url`` (``sqlite:///...`` or ``postgresql://...``).

    ``create=True`` (the service) creates and migrates it; ``create=False`` (readers such as
    ``finmlops abtest status``) opens an existing ledger of this schema version only."""
    db = connect(url, timeout_s=timeout_s, pool_size=pool_size, create=create)
    try:
        if create:
            migrate(db)
        else:
            try:  # a database without our tables fails the read itself
                with db.reading() as cur:
                    version = current_version(cur)
            except StoreError:
                version = 0
            if version != SCHEMA_VERSION:
                raise StoreError(f"{db.describe()} is not a finmlops ledger of schema version "
                                 f"{SCHEMA_VERSION} (found {version or 'none'})")
    except BaseException:
        db.close()
        raise
    return Ledger(db)

