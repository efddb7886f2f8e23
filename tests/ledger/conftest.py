"""Fixtures for the ledger tests: the same tests on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finmlops.ledger import Ledger, open_ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    led = open_ledger(ledger_url)
    yield led
    led.close()


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Any]:
    led = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield led
    led.close()
