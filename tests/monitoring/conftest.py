"""Fixtures for monitoring tests: promtool and prometheus binaries, tiny ONNX models and a
real finmlops service on loopback (helpers live in monitoring_support.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from monitoring_support import ARMS, Service, running_service, write_model


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
    with running_service(tmp_path, models) as service:
        yield service
