"""Group commit: a 200 is sent only after the prediction's row is committed.

Requests hand their record to one writer thread and wait. The writer takes whatever is
waiting (up to ``batch_max``, after lingering at most ``linger_s`` for a batch that is not
full), commits it in one transaction and releases those requests together: one commit per
batch, however many requests are in flight. The queue is bounded: when it is full, or after
``fail_after`` consecutive failed commits (until a probe write succeeds), a request is refused
at once with :class:`~finmlops.errors.LedgerUnavailableError` (the service's 503). A failed
commit fails every request in its batch the same way. Nothing is dropped without its caller
being told. While idle the writer pings the database every ``probe_interval_s`` (a failed ping
counts as a failed commit), so readiness follows the database without traffic too.

With ``inline`` (SQLite), the event loop commits for itself: every record queued during one
iteration of the loop is committed in one transaction by a callback at the start of the next
iteration, in the loop's thread, with a commit that never waits for another writer's lock.
Handing each batch to a thread and back costs more than a local SQLite commit (the GIL changes
hands at least twice per batch), so this is the fast path; whenever it cannot commit at once
(a lock held elsewhere, a failure, a backlog in the thread) the batch goes to the writer
thread, which waits, retries and refuses exactly as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from finmlops.errors import FinmlopsError, LedgerUnavailableError

log = logging.getLogger("finmlops.ledger")

T = TypeVar("T")

UNAVAILABLE = ("the experiment ledger cannot record the prediction now; nothing was recorded "
               "and no answer is given (retry later)")
"""What a refused caller is told; the cause goes to the log and ``last_error`` (admin)."""

Commit = Callable[[Sequence[T]], None]


@dataclass(frozen=True)
class WriterEvents:
    """Hooks for the service's counters (all optional, called from the writer thread except
    ``refused``, which is called where the refusal happens)."""

    committed: Callable[[int, float], None] | None = None
    """``(requests, seconds)`` after each successful commit."""
    refused: Callable[[str, int], None] | None = None
    """``(reason, requests)``: ``queue_full`` | ``unavailable`` | ``write_failed`` |
    ``shutdown``."""
    health: Callable[[bool], None] | None = None
    """The writer's health changed."""


class _Waiter:
    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()


def _settle(waiters: list[_Waiter], error: BaseException | None) -> None:
    for w in waiters:
        if not w.future.done():
            if error is None:
                w.future.set_result(None)
            else:
                w.future.set_exception(error)


class GroupCommitWriter(Generic[T]):
    """One writer thread committing batches through ``commit``; see the module docstring."""

    def __init__(self, commit: Commit[T], *, max_queue: int = 4096, batch_max: int = 256,
                 linger_s: float = 0.0, fail_after: int = 3,
                 probe: Callable[[], None] | None = None,
                 ping: Callable[[], None] | None = None, probe_interval_s: float = 1.0,
                 events: WriterEvents | None = None, name: str = "finmlops-ledger",
                 threads: int = 1, inline: Commit[T] | None = None) -> None:
        self._commit = commit
        self._inline = inline
        self._looped: dict[asyncio.AbstractEventLoop, list[tuple[T, _Waiter]]] = {}
        self.max_queue = max_queue
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.fail_after = fail_after
        self._probe = probe
        self._ping = ping
        self.probe_interval_s = probe_interval_s
        self.events = events or WriterEvents()
        self._name = name
        self._n_threads = threads
        self._pending: deque[tuple[T, _Waiter | None]] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._failures = 0
        self.healthy = True
        self.last_error: str | None = None
        self.committed = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer threads: one commits at a time on SQLite (one write lock), while
        on PostgreSQL two commits in flight share the server's WAL flushes."""
        if not self._threads:
            self._stopping = False
            self._threads = [threading.Thread(target=self._run, name=f"{self._name}-{i}",
                                              daemon=True) for i in range(self._n_threads)]
            for t in self._threads:
                t.start()

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop (what cannot be committed is refused)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        leftover = self._take(len(self._pending))
        if leftover:
            self._refuse([w for _, w in leftover if w is not None], "shutdown",
                         LedgerUnavailableError("the service is shutting down"))

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- submitting ------------------------------------------------------------------------

    async def submit(self, item: T) -> None:
        """Wait until ``item`` is committed; raises ``LedgerUnavailableError`` when refused."""
        await self.enqueue(item, asyncio.get_running_loop())

    def enqueue(self, item: T, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Queue ``item`` and return the future its commit settles (refusals raise here)."""
        if not self.healthy:
            self._count_refused("unavailable", 1)
            raise LedgerUnavailableError(UNAVAILABLE)
        waiter = _Waiter(loop)
        if self._inline is not None and not self._stopping and self._threads:
            queued = self._looped.get(loop)
            if queued is None:
                queued = self._looped[loop] = []
                loop.call_soon(self._flush_inline, loop)
            if len(queued) < self.max_queue:
                queued.append((item, waiter))
                return waiter.future
        with self._cond:
            if self._stopping or not self._threads:
                reason, msg = "shutdown", "the service is shutting down"
            elif len(self._pending) >= self.max_queue:
                reason, msg = "queue_full", (f"the ledger is behind ({len(self._pending)} "
                                             "predictions waiting to be committed)")
            else:
                self._pending.append((item, waiter))
                if len(self._pending) == 1 or len(self._pending) >= self.batch_max:
                    self._cond.notify()
                return waiter.future
        self._count_refused(reason, 1)
        raise LedgerUnavailableError(msg)

    def _flush_inline(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit what this loop queued during its last iteration, here; on any failure hand
        it to the writer thread (see the module docstring)."""
        batch = self._looped.pop(loop, [])
        inline = self._inline
        if not batch or inline is None:
            return
        if self.healthy and not self._pending:
            for start in range(0, len(batch), self.batch_max):
                part = batch[start:start + self.batch_max]
                t0 = time.perf_counter()
                try:
                    inline([item for item, _ in part])
                except Exception as exc:  # the thread retries it, waiting, and reports
                    log.debug("ledger: inline commit deferred to the writer thread: %s", exc)
                    batch = batch[start:]
                    break
                self.committed += len(part)
                self._succeeded()
                if self.events.committed is not None:
                    self.events.committed(len(part), time.perf_counter() - t0)
                _settle([w for _, w in part], None)
            else:
                return
        with self._cond:
            if self._stopping or not self._threads:
                waiters = [w for _, w in batch]
            else:
                self._pending.extend(batch)
                self._cond.notify()
                return
        self._refuse(waiters, "shutdown", LedgerUnavailableError("the service is shutting down"))

    def commit_now(self, items: Sequence[T]) -> None:
        """Commit ``items`` in the calling thread (no writer needed), raising on failure."""
        self._commit(items)

    # -- the writer thread -----------------------------------------------------------------

    def _take(self, n: int) -> list[tuple[T, _Waiter | None]]:
        out: list[tuple[T, _Waiter | None]] = []
        while self._pending and len(out) < n:
            out.append(self._pending.popleft())
        return out

    def _next_batch(self) -> list[tuple[T, _Waiter | None]] | None:
        """Block until there is something to commit; None when stopping with nothing left."""
        with self._cond:
            while not self._pending:
                if self._stopping:
                    return None
                # Idle or refusing: check the database every probe_interval_s, so health
                # follows it even without traffic (a ping while healthy, a write when not).
                if self._cond.wait(self.probe_interval_s) or self._pending or self._stopping:
                    continue
                self._cond.release()
                try:
                    self._check()
                finally:
                    self._cond.acquire()
            if self.linger_s > 0 and len(self._pending) < self.batch_max and not self._stopping:
                deadline = time.monotonic() + self.linger_s
                while len(self._pending) < self.batch_max:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._cond.wait(left):
                        break
            return self._take(self.batch_max)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            items = [item for item, _ in batch]
            waiters = [w for _, w in batch if w is not None]
            t0 = time.perf_counter()
            try:
                self._commit(items)
            except FinmlopsError as exc:
                self._failed(waiters, exc.message)
                continue
            except Exception as exc:
                log.exception("ledger: commit of %d prediction(s) failed", len(items))
                self._failed(waiters, f"{type(exc).__name__}: {exc}")
                continue
            self.committed += len(items)
            self._succeeded()
            if self.events.committed is not None:
                self.events.committed(len(items), time.perf_counter() - t0)
            self._release(waiters, None)

    def _release(self, waiters: list[_Waiter], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Waiter]] = {}
        for w in waiters:
            by_loop.setdefault(w.loop, []).append(w)
        for loop, group in by_loop.items():
            # A closed loop has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, group, error)

    def _failed(self, waiters: list[_Waiter], message: str) -> None:
        self.last_error = message
        self._failures += 1
        log.error("ledger: %d prediction(s) refused, commit failed: %s", len(waiters), message)
        if self.healthy and self._failures >= self.fail_after:
            self._set_health(False)
        self._refuse(waiters, "write_failed", LedgerUnavailableError(UNAVAILABLE))

    def _refuse(self, waiters: list[_Waiter], reason: str, error: BaseException) -> None:
        self._count_refused(reason, len(waiters))
        self._release(waiters, error)

    def _count_refused(self, reason: str, n: int) -> None:
        if n and self.events.refused is not None:
            self.events.refused(reason, n)

    def _succeeded(self) -> None:
        self._failures = 0
        if not self.healthy:
            self._set_health(True)

    def _check(self) -> None:
        probe = self._probe if not self.healthy else self._ping
        if probe is None:
            if not self.healthy:
                self._succeeded()
            return
        try:
            probe()
        except Exception as exc:
            self.last_error = exc.message if isinstance(exc, FinmlopsError) else str(exc)
            self._failures += 1
            if self.healthy and self._failures >= self.fail_after:
                self._set_health(False)
            return
        if not self.healthy:
            log.info("ledger: healthy again")
        self._succeeded()

    def _set_health(self, healthy: bool) -> None:
        self.healthy = healthy
        if not healthy:
            log.error("ledger: unavailable after %d failed commits; readiness is false until "
                      "a probe write succeeds", self._failures)
        if self.events.health is not None:
            self.events.health(healthy)
