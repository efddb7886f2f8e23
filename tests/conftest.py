"""Fixtures for every test package: isolated settings rooted in the test's tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finmlops.config import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Callable[..., Settings]:
    """A factory of :class:`Settings` with ``home=tmp_path``, ignoring files and environment.

    Keyword overrides nest with ``__``: ``settings(data__source="csv", train__seed=1)``.
    """

    def make(**overrides: Any) -> Settings:
        tree: dict[str, Any] = {"home": tmp_path}
        for key, value in overrides.items():
            node = tree
            *parents, leaf = key.split("__")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        return Settings(**tree)

    return make


@pytest.fixture(scope="session")
def postgres() -> Any:
    """A real PostgreSQL server on loopback for the session (skips with the package to
    install when there is none)."""
    from postgres_support import postgres_server, skip_reason

    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(postgres: Any) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    url: str = postgres.create_database()
    return url
