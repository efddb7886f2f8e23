"""The two databases behind one small interface: SQLite (WAL) and PostgreSQL (psycopg 3, pooled).

Statements are written once, with ``?`` placeholders and SQL both dialects accept
(``INSERT ... ON CONFLICT DO NOTHING``, no ``%``); PostgreSQL's ``%s`` is substituted here.
Every database error leaves this module as :class:`~finmlops.errors.LedgerUnavailableError`
(writes) or :class:`~finmlops.errors.StoreError` (opening and reading), with one line.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from finmlops.errors import ConfigError, LedgerUnavailableError, StoreError

log = logging.getLogger("finmlops.ledger")

Params = Sequence[Any]


class Cursor:
    """A DB-API cursor taking ``?`` placeholders whatever the driver's paramstyle."""

    def __init__(self, cur: Any, translate: Callable[[str], str] | None = None) -> None:
        self._cur = cur
        self._translate = translate

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    @property
    def description(self) -> list[tuple[str]]:
        return [(str(getattr(d, "name", None) or d[0]),) for d in self._cur.description or ()]

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        self._cur.execute(self._translate(sql) if self._translate else sql, params)
        return self

    def executemany(self, sql: str, rows: Sequence[Params]) -> Cursor:
        self._cur.executemany(self._translate(sql) if self._translate else sql, rows)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._cur.fetchall()]

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cur.fetchone()
        return None if row is None else tuple(row)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)


class Database:
    """A connection source with write transactions and reads."""

    dialect: str = ""
    real: str = "REAL"
    """The dialect's double-precision type, for the DDL."""

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[Cursor]:  # pragma: no cover
        """A write transaction; ``wait=False`` fails at once instead of waiting for another
        writer's lock (where the backend can tell)."""
        raise NotImplementedError
        yield

    @contextmanager
    def reading(self) -> Iterator[Cursor]:  # pragma: no cover - interface
        raise NotImplementedError
        yield

    def lock_schema(self, cur: Cursor) -> None:
        """Serialise schema migrations across processes (inside a write transaction)."""

    def recover(self) -> bool:
        """After failures: start afresh if the database answers again (True when it did
        anything). Nothing to do for a file."""
        return False

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class SQLiteDatabase(Database):
    """One SQLite file in WAL mode: every thread gets its own connection; writers take the
    write lock up front (``BEGIN IMMEDIATE``) and wait for it at most ``timeout_s``.

    ``synchronous=NORMAL``: a committed transaction is in the WAL file when ``COMMIT``
    returns, so it survives the process being killed (not a power cut before the next
    checkpoint; ``FULL`` would add an fsync per commit).
    """

    dialect = "sqlite"
    real = "REAL"

    def __init__(self, path: Path, timeout_s: float, *, create: bool) -> None:
        self.path = path
        self.timeout_s = timeout_s
        if not create and not path.is_file():
            raise StoreError(f"no experiment ledger at {path}: run `finmlops run` (or "
                             "`finmlops serve`) first")
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the ledger's directory {path.parent}: "
                                 f"{exc.strerror or exc}") from None
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if create:
            with self._guard("open"):
                self._connection().execute("PRAGMA journal_mode=WAL")

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def _connection(self, wait: bool = True) -> sqlite3.Connection:
        """This thread's connection; ``wait=False``: a second one that never waits for
        another writer's lock (``busy_timeout=0``)."""
        attr = "con" if wait else "nowait"
        con: sqlite3.Connection | None = getattr(self._local, attr, None)
        if con is None:
            timeout = self.timeout_s if wait else 0.0
            con = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                  check_same_thread=False)
            con.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            con.execute("PRAGMA synchronous=NORMAL")
            setattr(self._local, attr, con)
            with self._lock:
                self._all.append(con)
        return con

    @contextmanager
    def _guard(self, what: str, reading: bool = False) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            msg = f"ledger {self.path}: {what} failed: {exc}"
            raise (StoreError(msg) if reading else LedgerUnavailableError(msg)) from None

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[Cursor]:
        with self._guard("write"):
            con = self._connection(wait)
            con.execute("BEGIN IMMEDIATE")
            try:
                yield Cursor(con.cursor())
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        with self._guard("read", reading=True):
            yield Cursor(self._connection().cursor())

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()


_PG_CACHE: dict[str, str] = {}


def _pg(sql: str) -> str:
    out = _PG_CACHE.get(sql)
    if out is None:
        out = _PG_CACHE[sql] = sql.replace("?", "%s")
    return out


class PostgresDatabase(Database):
    """A psycopg 3 connection pool. Every session runs with ``synchronous_commit = on`` (a
    commit returns once its WAL record is flushed to disk) and a statement timeout, and a
    pooled connection is checked before use, so the pool recovers from a server restart."""

    dialect = "postgresql"
    real = "DOUBLE PRECISION"

    def __init__(self, url: str, timeout_s: float, pool_size: int) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.pool_size = pool_size
        ms = int(timeout_s * 1000)
        self._kwargs: dict[str, Any] = {
            "autocommit": False, "connect_timeout": max(1, int(timeout_s)),
            "options": f"-c synchronous_commit=on -c statement_timeout={ms} "
                       f"-c lock_timeout={ms}",
            "application_name": "finmlops"}
        try:
            self._pool = self._open_pool(max(timeout_s, 5.0))
        except Exception as exc:
            raise StoreError(f"ledger {redact(url)}: cannot connect: {_first_line(exc)}"
                             ) from None

    def _open_pool(self, wait_s: float) -> Any:
        from psycopg_pool import ConnectionPool

        pool = ConnectionPool(
            self.url, min_size=1, max_size=self.pool_size, open=False, timeout=self.timeout_s,
            check=_check_if_idle, reset=_returned, name="finmlops-ledger",
            kwargs=self._kwargs)
        try:
            pool.open(wait=True, timeout=wait_s)
        except BaseException:
            pool.close()
            raise
        return pool

    def recover(self) -> bool:
        """A fresh pool once the server accepts a connection again: after an outage the
        pool's own reconnection backs off exponentially (up to 32 s after a 30 s outage), so
        the writer's probe replaces it rather than wait. A quick direct connection decides
        whether to try; False while the server is still unreachable."""
        import psycopg

        try:
            psycopg.connect(self.url, **self._kwargs).close()
            fresh = self._open_pool(self.timeout_s)
        except Exception:
            return False
        old, self._pool = self._pool, fresh
        old.close(timeout=0)
        log.info("ledger %s: reconnected with a fresh connection pool", redact(self.url))
        return True

    def describe(self) -> str:
        return redact(self.url)

    @contextmanager
    def _session(self, reading: bool) -> Iterator[Cursor]:
        import psycopg
        import psycopg_pool

        try:
            with self._pool.connection() as con, con.transaction(), con.cursor() as cur:
                yield Cursor(cur, _pg)
        except (psycopg.OperationalError, psycopg.errors.QueryCanceled,
                psycopg.errors.LockNotAvailable, psycopg.errors.UndefinedTable,
                psycopg_pool.PoolTimeout, psycopg.InterfaceError) as exc:
            msg = f"ledger {redact(self.url)}: {'read' if reading else 'write'} failed: " \
                  f"{_first_line(exc)}"
            raise (StoreError(msg) if reading else LedgerUnavailableError(msg)) from None

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[Cursor]:
        with self._session(reading=False) as cur:
            yield cur

    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        with self._session(reading=True) as cur:
            yield cur

    def lock_schema(self, cur: Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(7316544)")

    def close(self) -> None:
        self._pool.close()


IDLE_CHECK_S = 1.0
"""A pooled connection idle longer than this is checked (a round trip) before it is lent; a
busy writer's connection goes straight back to work (a broken one fails that batch, visibly,
and the pool discards it)."""


def _returned(con: Any) -> None:
    con.info_returned_at = time.monotonic()


def _check_if_idle(con: Any) -> None:
    from psycopg_pool import ConnectionPool

    if time.monotonic() - getattr(con, "info_returned_at", 0.0) > IDLE_CHECK_S:
        ConnectionPool.check_connection(con)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def connect(url: str, *, timeout_s: float = 2.0, pool_size: int = 4,
            create: bool = True) -> Database:
    """The database a ledger URL names: ``sqlite:///ledger.db`` (relative to the working
    directory), ``sqlite:////abs/path/ledger.db`` (absolute, as for SQLAlchemy and MLflow) or
    ``postgresql://...``. ``create=False`` refuses to create a missing SQLite file (readers)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        parts = urlsplit(url)
        path = unquote(parts.path)
        if parts.netloc or len(path) < 2:
            raise ConfigError(f"ledger.url {url!r}: expected sqlite:///path/to/ledger.db")
        return SQLiteDatabase(Path(path[1:]), timeout_s, create=create)
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url, timeout_s, pool_size)
    raise ConfigError(f"ledger.url must start with sqlite:/// or postgresql://, not "
                      f"{redact(url)!r}")
