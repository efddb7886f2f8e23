"""After a PostgreSQL outage the ledger's probe writes again as soon as the server is back,
not after the connection pool's exponential reconnection backoff."""

from __future__ import annotations

import time

import pytest

from finmlops.errors import LedgerUnavailableError
from finmlops.ledger import open_ledger


def test_the_probe_writes_again_as_soon_as_the_server_is_back() -> None:
    from postgres_support import postgres_server, skip_reason

    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with postgres_server() as server:
        led = open_ledger(server.create_database(), timeout_s=0.5)
        try:
            led.probe()
            server.stop("fast")
            # long enough for the pool's own reconnection to back off past several seconds
            deadline = time.monotonic() + 8
            failures = 0
            while time.monotonic() < deadline:
                with pytest.raises(LedgerUnavailableError):
                    led.probe()
                failures += 1
                time.sleep(0.2)
            assert failures >= 5
            server.start()
            started = time.monotonic()
            led.probe()  # the first probe after the restart succeeds
            assert time.monotonic() - started < 5
            with led.db.reading() as cur:
                row = cur.execute("SELECT value FROM ledger_meta WHERE key = 'heartbeat'"
                                  ).fetchone()
            assert row is not None and float(row[0]) >= started - 1
        finally:
            led.close()
