"""Fixtures for the serving tests: model directories and a real uvicorn server per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serving_support import ARMS, make_settings, write_model

from finmlops.config import Settings


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_model(root / "baseline", "baseline", "3", reference=True)
    write_model(root / "enhanced", "enhanced", "7")
    write_model(root / "challenger", "challenger", "1")
    return root


@pytest.fixture(scope="session")
def models(model_root: Path) -> dict[str, Path]:
    return {arm: model_root / arm for arm in ARMS}


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        return make_settings(tmp_path, **overrides)

    return build


@pytest.fixture
def start_server(models: dict[str, Path]) -> Iterator[Callable[..., Any]]:
    """Start ``create_app(settings, models)`` on a free loopback port; stopped at teardown."""
    from finmlops.serving import create_app, run_in_thread

    handles: list[Any] = []

    def start(settings: Settings, wait_ready: bool = True, **kwargs: Any) -> Any:
        kwargs.setdefault("models", models)
        app = create_app(settings, **kwargs)
        handle = run_in_thread(app, "127.0.0.1", 0, wait_ready=wait_ready)
        handles.append(handle)
        return handle

    yield start
    for h in handles:
        h.stop()
