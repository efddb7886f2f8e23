"""Group commit: one commit per batch of waiting requests, a bounded queue, failures refused
to every waiting caller, health that goes and comes back."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from finmlops.errors import LedgerUnavailableError
from finmlops.ledger import GroupCommitWriter, WriterEvents


class Recorder:
    """A commit function that records batches, can be held, and can fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail: str | None = None
        self.probes = 0
        self.probe_fails = False

    def commit(self, items: Sequence[int]) -> None:
        self.gate.wait(10)
        if self.fail:
            raise LedgerUnavailableError(self.fail)
        self.batches.append(list(items))

    def probe(self) -> None:
        self.probes += 1
        if self.probe_fails:
            raise LedgerUnavailableError("still down")


def writer(rec: Recorder, **kw: object) -> tuple[GroupCommitWriter[int], dict[str, int]]:
    refused: dict[str, int] = {}

    def on_refused(reason: str, n: int) -> None:
        refused[reason] = refused.get(reason, 0) + n

    w: GroupCommitWriter[int] = GroupCommitWriter(
        rec.commit, probe=rec.probe, events=WriterEvents(refused=on_refused),
        **kw)  # type: ignore[arg-type]
    w.start()
    return w, refused


def test_waiting_requests_are_committed_together_and_each_released_after() -> None:
    rec = Recorder()
    w, _ = writer(rec, batch_max=64)

    async def main() -> None:
        rec.gate.clear()  # the first commit is held: the next requests pile up behind it
        first = asyncio.create_task(w.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(w.submit(i)) for i in range(1, 41)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in [first, *rest])
        rec.gate.set()
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    w.close()
    assert rec.batches[0] == [0]
    assert sorted(i for b in rec.batches[1:] for i in b) == list(range(1, 41))
    assert len(rec.batches) <= 3  # 40 requests, at most two commits after the held one


def test_a_full_queue_refuses_at_once() -> None:
    rec = Recorder()
    w, refused = writer(rec, max_queue=5, batch_max=1)

    async def main() -> list[BaseException | None]:
        rec.gate.clear()
        held = asyncio.create_task(w.submit(-1))
        await asyncio.sleep(0.05)  # the writer holds -1; the queue is empty again
        tasks = [asyncio.create_task(w.submit(i)) for i in range(8)]
        await asyncio.sleep(0.05)
        rec.gate.set()
        out = await asyncio.gather(held, *tasks, return_exceptions=True)
        return [e if isinstance(e, BaseException) else None for e in out]

    results = asyncio.run(main())
    w.close()
    errors = [e for e in results if e is not None]
    assert len(errors) == 3 and all(isinstance(e, LedgerUnavailableError) for e in errors)
    assert refused == {"queue_full": 3}
    assert sorted(i for b in rec.batches for i in b) == [-1, 0, 1, 2, 3, 4]


def test_a_failed_commit_refuses_its_batch_and_health_comes_back_with_a_probe() -> None:
    rec = Recorder()
    rec.fail = "disk full"
    health: list[bool] = []
    w: GroupCommitWriter[int] = GroupCommitWriter(
        rec.commit, probe=rec.probe, fail_after=2, probe_interval_s=0.05,
        events=WriterEvents(health=health.append))
    w.start()

    async def attempt(i: int) -> BaseException | None:
        try:
            await w.submit(i)
        except LedgerUnavailableError as exc:
            return exc
        return None

    async def main() -> None:
        first = await attempt(1)
        assert first is not None and "nothing was recorded" in str(first)
        assert w.last_error == "disk full"  # the cause is for the operator, not the caller
        assert w.healthy
        rec.probe_fails = True
        assert await attempt(2) is not None
        assert not w.healthy and health == [False]
        # unhealthy: refused at once, without trying a commit
        started = time.perf_counter()
        assert await attempt(3) is not None
        assert time.perf_counter() - started < 0.05
        rec.fail = None
        rec.probe_fails = False
        deadline = time.monotonic() + 5
        while not w.healthy:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert await attempt(4) is None

    asyncio.run(main())
    w.close()
    assert health == [False, True]
    assert rec.batches == [[4]] and rec.probes >= 1


def test_close_commits_what_is_queued() -> None:
    rec = Recorder()
    w, refused = writer(rec)

    async def main() -> None:
        rec.gate.clear()
        tasks = [asyncio.create_task(w.submit(i)) for i in range(5)]
        await asyncio.sleep(0.05)
        closer = threading.Thread(target=w.close)
        closer.start()
        rec.gate.set()
        await asyncio.gather(*tasks)
        closer.join()

    asyncio.run(main())
    assert sorted(i for b in rec.batches for i in b) == list(range(5))
    with pytest.raises(LedgerUnavailableError, match="shutting down"):
        asyncio.run(w.submit(9))
    assert refused == {"shutdown": 1}


class Inline:
    """The loop's own commit: records its batches and the thread it ran on; can fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[int] = set()
        self.fail: str | None = None

    def commit(self, items: Sequence[int]) -> None:
        self.threads.add(threading.get_ident())
        if self.fail:
            raise LedgerUnavailableError(self.fail)
        self.batches.append(list(items))


def test_inline_commits_one_loop_iteration_in_one_transaction_on_the_loop() -> None:
    rec, inline = Recorder(), Inline()
    w, _ = writer(rec, batch_max=8, inline=inline.commit)

    async def main() -> int:
        loop_thread = threading.get_ident()
        # 20 submissions started in one iteration: one flush, split at batch_max
        await asyncio.gather(*(w.submit(i) for i in range(20)))
        await w.submit(99)  # a later iteration: a batch of its own
        return loop_thread

    try:
        loop_thread = asyncio.run(main())
    finally:
        w.close()
    assert inline.batches == [list(range(8)), list(range(8, 16)), list(range(16, 20)), [99]]
    assert inline.threads == {loop_thread}
    assert rec.batches == []  # the writer thread had nothing to do
    assert w.committed == 21


def test_an_inline_failure_hands_the_batch_to_the_thread_which_commits_or_refuses() -> None:
    rec, inline = Recorder(), Inline()
    w, refused = writer(rec, fail_after=100, inline=inline.commit)

    async def main() -> list[BaseException | None]:
        inline.fail = "locked elsewhere"
        await asyncio.gather(*(w.submit(i) for i in range(5)))  # the thread commits them
        rec.fail = "still locked"
        out = await asyncio.gather(*(w.submit(i) for i in range(5, 8)),
                                   return_exceptions=True)
        return [e if isinstance(e, BaseException) else None for e in out]

    try:
        errors = asyncio.run(main())
    finally:
        w.close()
    assert inline.batches == [] and rec.batches == [[0, 1, 2, 3, 4]]
    assert all(isinstance(e, LedgerUnavailableError) for e in errors)
    assert refused == {"write_failed": 3}
    assert w.committed == 5
