"""The durable prediction log (SQLite, WAL) and the feedback join, per docs/CONTRACTS.md.

The service only puts a tuple on a queue per request; a writer thread turns batches of them
into rows (input digests, positions, shadow/mirror scores) and writes them in one transaction.
Feedback first drains the queue, so an outcome for a just-served request always finds it.

The file grows with every served row (and every shadow/mirror score) and is never
pruned here: it is the experiment's evidence, read by ``finmlops abtest``. Size the volume for
the traffic, or archive and rotate the file between experiments. A request id is logged once:
a later request with the same client-chosen id is served but not logged (a warning says so).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from finmlops.errors import BadRequestError
from finmlops.serving.outcomes import Policy, direction_of

log = logging.getLogger("finmlops.serving")

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions(request_id TEXT PRIMARY KEY, ts REAL, experiment TEXT,
    arm TEXT, model_version TEXT, routing_key TEXT, inputs_digest TEXT, probability REAL,
    predicted_class INTEGER, position REAL);
CREATE TABLE IF NOT EXISTS scores(request_id TEXT, arm TEXT, model_version TEXT,
    probability REAL, predicted_class INTEGER, position REAL, served INTEGER,
    PRIMARY KEY (request_id, arm));
CREATE TABLE IF NOT EXISTS feedback(request_id TEXT PRIMARY KEY, ts REAL, direction INTEGER,
    realized_return REAL);
CREATE TABLE IF NOT EXISTS outcomes(request_id TEXT, arm TEXT, served INTEGER, hit INTEGER,
    net_return REAL, ts REAL, PRIMARY KEY (request_id, arm));
CREATE INDEX IF NOT EXISTS predictions_experiment ON predictions(experiment);
CREATE INDEX IF NOT EXISTS predictions_routing_key ON predictions(routing_key);
"""

MAX_FEEDBACK = 1000
"""Outcomes per feedback request."""
MIN_RETURN, MAX_RETURN = -1.0, 10.0
"""A one-day simple return: a price cannot fall more than 100%; the upper bound keeps one
absurd outcome (a client's 1e200) from turning the sum-of-squares gauges, and with them
every later A/B decision, into infinity."""

Scorer = Callable[[str, np.ndarray], tuple[str, np.ndarray]]
"""``(arm, x) -> (model_version, probabilities)`` for shadow and mirror scoring."""


class Served(NamedTuple):
    """What the hot path enqueues for one request (rows are derived in the writer thread)."""

    ts: float
    request_ids: Sequence[str]
    experiment: str | None
    arm: str
    version: str
    routing_key: str | None
    x: np.ndarray
    probabilities: np.ndarray
    also_score: tuple[str, ...] = ()
    """Other arms to score off the hot path (shadow candidates, the mirror)."""


@dataclass(frozen=True)
class Outcome:
    request_id: str
    experiment: str | None
    arm: str
    served: bool
    hit: int
    net_return: float


@dataclass
class FeedbackResult:
    accepted: int = 0
    duplicates: int = 0
    unknown: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "unknown": self.unknown}


@dataclass(frozen=True)
class Feedback:
    """One realised outcome, addressed to a request id or to every prediction logged under a
    routing key (``"TICKER:YYYY-MM-DD"``): exactly one of the two."""

    request_id: str | None
    realized_return: float
    direction: int | None = None
    routing_key: str | None = None

    def __post_init__(self) -> None:
        if (self.request_id is None) == (self.routing_key is None):
            raise ValueError("a Feedback needs exactly one of request_id or routing_key")


_OUTCOME_SHAPE = ('each outcome is {"request_id" | "routing_key": str, "realized_return": '
                  'number, "direction"?: 0|1}')


def parse_feedback(body: Any) -> list[Feedback]:
    """A single ``{"request_id" | "routing_key", "realized_return", "direction"?}`` or
    ``{"outcomes": [...]}``."""
    batch = isinstance(body, dict) and "outcomes" in body
    items = body["outcomes"] if batch else [body]
    if (batch and len(body) != 1) or not isinstance(items, list) or not items \
            or len(items) > MAX_FEEDBACK:
        raise BadRequestError(
            'expected {"outcomes": [{"request_id" | "routing_key", "realized_return"}]}')
    out: list[Feedback] = []
    for it in items:
        if not isinstance(it, dict) or set(it) - {"request_id", "routing_key", "direction",
                                                  "realized_return"}:
            raise BadRequestError(_OUTCOME_SHAPE)
        if ("request_id" in it) == ("routing_key" in it):
            raise BadRequestError("each outcome needs exactly one of request_id or routing_key")
        rid, key = it.get("request_id"), it.get("routing_key")
        ret, d = it.get("realized_return"), it.get("direction")
        if "request_id" in it and (not isinstance(rid, str) or not rid):
            raise BadRequestError("request_id must be a non-empty string")
        if "routing_key" in it and (not isinstance(key, str) or not key):
            raise BadRequestError("routing_key must be a non-empty string")
        if isinstance(ret, bool) or not isinstance(ret, int | float) \
                or not MIN_RETURN <= ret <= MAX_RETURN:
            raise BadRequestError(f"realized_return must be a one-day simple return within "
                                  f"{MIN_RETURN:g}..{MAX_RETURN:g}")
        if "direction" in it and (type(d) is not int or d not in (0, 1)):
            raise BadRequestError("direction must be 0 or 1")
        out.append(Feedback(rid, float(ret), d, key))
    return out


def _digest(row: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=8).hexdigest()


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class PredictionLog:
    """Reader API over the log file; ``start()`` adds the batching writer thread."""

    def __init__(self, path: str | Path, policy: Policy | None = None,
                 batch_size: int = 256, flush_interval_s: float = 0.5,
                 scorer: Scorer | None = None,
                 on_written: Callable[[int], None] | None = None,
                 observe: Callable[[str, np.ndarray, np.ndarray], None] | None = None
                 ) -> None:
        self.path = Path(path)
        self.policy = policy or Policy()
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.scorer = scorer
        self.on_written = on_written
        self.observe = observe
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._feedback_lock = threading.Lock()
        self._wake = threading.Event()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                              check_same_thread=False)
        con.execute("PRAGMA busy_timeout=30000")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    # -- writing ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="finmlops-log", daemon=True)
            self._thread.start()

    def put(self, item: Served) -> None:
        """Hot path: hand one served request to the writer (never blocks, never wakes it
        unless a full batch is waiting, so the writer does not contend for the GIL per
        request)."""
        q = self._queue
        q.put(item)
        if q.qsize() >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def pending(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything put so far is written (writes inline if no writer runs)."""
        if self._thread is None or not self._thread.is_alive():
            items: list[Served] = []
            while True:
                try:
                    it = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(it, Served):
                    items.append(it)
            if items:
                con = self._connect()
                try:
                    self._write(con, items)
                finally:
                    con.close()
            return
        marker = _Flush()
        self._queue.put(marker)
        self._wake.set()
        marker.done.wait(timeout)

    def close(self) -> None:
        """Flush and stop the writer (called on shutdown)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._wake.set()
            self._thread.join(timeout=60.0)
        self._thread = None
        self.flush()

    def _run(self) -> None:
        """Every ``flush_interval_s`` (or when woken: a full batch, flush, stop) drain the
        queue and write it in batches."""
        con = self._connect()
        try:
            while True:
                self._wake.wait(self.flush_interval_s)
                self._wake.clear()
                pending: list[Served] = []
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, Served):
                        pending.append(item)
                        if len(pending) >= self.batch_size:
                            self._safe_write(con, pending)
                            pending = []
                        continue
                    self._safe_write(con, pending)
                    pending = []
                    if isinstance(item, _Flush):
                        item.done.set()
                    elif item is _STOP:
                        return
                self._safe_write(con, pending)
        finally:
            con.close()

    def _safe_write(self, con: sqlite3.Connection, items: list[Served]) -> None:
        if not items:
            return
        try:
            self._write(con, items)
        except Exception:
            log.exception("prediction log: failed to write %d requests", len(items))

    def _extra_scores(self, items: list[Served]) -> dict[tuple[int, str], tuple[str, np.ndarray]]:
        """Score every (request, extra arm) pair, batching all requests per arm."""
        out: dict[tuple[int, str], tuple[str, np.ndarray]] = {}
        if self.scorer is None:
            return out
        by_arm: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            for arm in it.also_score:
                by_arm.setdefault(arm, []).append(i)
        for arm, idx in by_arm.items():
            try:
                x = np.concatenate([items[i].x for i in idx])
                version, probs = self.scorer(arm, x)
            except Exception:
                log.exception("shadow scoring with %s failed", arm)
                continue
            start = 0
            for i in idx:
                n = len(items[i].x)
                out[(i, arm)] = (version, probs[start:start + n])
                start += n
        return out

    def _write(self, con: sqlite3.Connection, items: list[Served]) -> None:
        pol = self.policy
        extra = self._extra_scores(items)
        preds: list[tuple[Any, ...]] = []
        scores: list[tuple[Any, ...]] = []
        for i, it in enumerate(items):
            if i and not i % 32:
                time.sleep(0)  # let the event loop thread take the GIL between chunks
            probs = it.probabilities.tolist()
            for j, rid in enumerate(it.request_ids):
                p = probs[j]
                cls, pos = pol.predicted_class(p), pol.position(p)
                preds.append((rid, it.ts, it.experiment, it.arm, it.version, it.routing_key,
                              _digest(it.x[j]), p, cls, pos))
                scores.append((rid, it.arm, it.version, p, cls, pos, 1))
                for arm in it.also_score:
                    got = extra.get((i, arm))
                    if got is None:
                        continue
                    q = float(got[1][j])
                    scores.append((rid, arm, got[0], q, pol.predicted_class(q),
                                   pol.position(q), 0))
        con.execute("BEGIN")
        try:
            written = con.executemany(
                "INSERT OR IGNORE INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?)", preds).rowcount
            con.executemany("INSERT OR IGNORE INTO scores VALUES (?,?,?,?,?,?,?)", scores)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if written < len(preds):
            log.warning("prediction log: %d prediction(s) not logged: their request id was "
                        "already logged (the first stands; client ids must be unique)",
                        len(preds) - written)
        if self.on_written is not None:
            self.on_written(written)
        if self.observe is not None:
            by_arm: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
            for it in items:
                rows, probs = by_arm.setdefault(it.arm, ([], []))
                rows.append(it.x[:, -2:, :])  # last two days: exact daily changes
                probs.append(it.probabilities)
            for arm, (rows, probs) in by_arm.items():
                try:
                    self.observe(arm, np.concatenate(rows), np.concatenate(probs))
                except Exception:
                    log.exception("drift observation failed")

    # -- feedback --------------------------------------------------------------------------

    def apply_feedback(self, items: Iterable[Feedback]) -> FeedbackResult:
        """Join outcomes to logged scores; a request's feedback counts once, ever.

        An outcome addressed by routing key applies to every request id logged under it;
        ``accepted`` and ``duplicates`` count request ids, ``unknown`` lists the request ids
        and routing keys that match no prediction."""
        self.flush()
        result = FeedbackResult()
        now = time.time()
        with self._feedback_lock:
            con = self._connect()
            try:
                con.execute("BEGIN IMMEDIATE")
                for fb in items:
                    if fb.routing_key is not None:
                        rids = [r for (r,) in con.execute(
                            "SELECT request_id FROM predictions WHERE routing_key = ? "
                            "ORDER BY ts, request_id", (fb.routing_key,))]
                        if not rids:
                            result.unknown.append(fb.routing_key)
                        for rid in rids:
                            self._apply_one(con, rid, fb, now, result)
                    elif fb.request_id is not None and not self._apply_one(
                            con, fb.request_id, fb, now, result):
                        result.unknown.append(fb.request_id)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.close()
        return result

    def _apply_one(self, con: sqlite3.Connection, request_id: str, fb: Feedback, now: float,
                   result: FeedbackResult) -> bool:
        """The per-request-id join (inside the caller's transaction); False when unknown."""
        rows = con.execute(
            "SELECT s.arm, s.predicted_class, s.position, s.served, p.experiment "
            "FROM scores s JOIN predictions p ON p.request_id = s.request_id "
            "WHERE s.request_id = ?", (request_id,)).fetchall()
        if not rows:
            return False
        direction = fb.direction if fb.direction is not None else direction_of(
            fb.realized_return)
        cur = con.execute("INSERT OR IGNORE INTO feedback VALUES (?,?,?,?)",
                          (request_id, now, direction, fb.realized_return))
        if cur.rowcount != 1:
            result.duplicates += 1
            return True
        result.accepted += 1
        for arm, cls, pos, served, experiment in rows:
            hit = int(int(cls) == direction)
            net = self.policy.net_return(float(pos), fb.realized_return)
            con.execute("INSERT OR IGNORE INTO outcomes VALUES (?,?,?,?,?,?)",
                        (request_id, arm, int(served), hit, net, now))
            result.outcomes.append(Outcome(request_id, experiment, arm, bool(served), hit,
                                           net))
        return True

    # -- reading ---------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        con = self._connect()
        try:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(sql, params).fetchall()]
        finally:
            con.close()

    def predictions(self, experiment: str | None = None) -> list[dict[str, Any]]:
        if experiment is None:
            return self._query("SELECT * FROM predictions ORDER BY ts")
        return self._query("SELECT * FROM predictions WHERE experiment = ? ORDER BY ts",
                           (experiment,))

    def scores(self, request_id: str | None = None) -> list[dict[str, Any]]:
        if request_id is None:
            return self._query("SELECT * FROM scores ORDER BY request_id, arm")
        return self._query("SELECT * FROM scores WHERE request_id = ? ORDER BY arm",
                           (request_id,))

    def arm_outcomes(self, experiment: str) -> list[dict[str, Any]]:
        """Every outcome of the experiment: request_id, arm, served, hit, net_return, ts."""
        return self._query(
            "SELECT o.request_id, o.arm, o.served, o.hit, o.net_return, o.ts, p.ts AS served_ts "
            "FROM outcomes o JOIN predictions p ON p.request_id = o.request_id "
            "WHERE p.experiment = ? ORDER BY p.ts, o.arm", (experiment,))

    def counts(self) -> Mapping[str, int]:
        rows = self._query(
            "SELECT (SELECT COUNT(*) FROM predictions) AS predictions, "
            "(SELECT COUNT(*) FROM scores) AS scores, (SELECT COUNT(*) FROM feedback) AS "
            "feedback, (SELECT COUNT(*) FROM outcomes) AS outcomes")
        return {k: int(v) for k, v in rows[0].items()}
