"""Fixtures for monitoring tests: promtool and prometheus binaries, tiny ONNX models and a
real finmlops service on loopback (helpers live in monitoring_support.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from monitoring_support import ARMS, Service, write_model


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package prometheus); CI installs it")
    return path


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.skip("prometheus is not installed (Debian package prometheus); CI installs it")
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {arm: write_model(root / arm, arm, str(i + 1)) for i, arm in enumerate(ARMS)}


@pytest.fixture
def service(tmp_path: Path, models: dict[str, Path]) -> Iterator[Service]:
    """A real service (shadow scoring on, so paired series exist) on a free loopback port."""
    import httpx

    from finmlops.config import Settings
    from finmlops.serving import create_app, run_in_thread

    # summaries every 0.2 s: the finmlops_ledger_* gauges follow the ledger within the test
    settings = Settings(home=tmp_path, experiment={"shadow": True},
                        ledger={"summary_interval_s": 0.2})
    app = create_app(settings, models)
    handle = run_in_thread(app, "127.0.0.1", 0, timeout=60)
    client = httpx.Client(base_url=handle.url, timeout=30)
    try:
        yield Service(handle.url, handle.port, settings.ledger_url, client, app, settings)
    finally:
        client.close()
        handle.stop()
