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
