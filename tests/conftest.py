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


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow database (copied into homes, so the schema
    migrations run once per session)."""
    from finmlops.tracking._client import quiet

    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    with quiet():
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def registered_arms(mlflow_template: Path) -> Callable[..., dict[str, Any]]:
    """``registered_arms(settings, {arm: model_dir}, earlier=())`` -> the run state's
    ``trained`` and ``registered`` after the real register stage logged and registered each
    exported model directory in the home's MLflow store (a migrated copy of the template).
    ``earlier`` arms get a version of their own first, so the versions the stage creates
    are not the first ones."""
    from registry_support import register_arms

    def register(settings: Settings, dirs: dict[str, Path],
                 earlier: tuple[str, ...] = ()) -> dict[str, Any]:
        import shutil

        settings.home.mkdir(parents=True, exist_ok=True)
        if not (settings.home / "mlflow.db").exists():
            shutil.copyfile(mlflow_template, settings.home / "mlflow.db")
        return register_arms(settings, dirs, earlier)

    return register
