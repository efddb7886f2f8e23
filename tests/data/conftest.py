"""Fixtures for data tests: recorded HTTP bodies, small valid bars, CSV writers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
FIXTURES = SHARED / "fixtures"
HEADER = "ticker,date,open,high,low,close,adj_close,volume"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"recorded HTTP fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def yahoo_body(fixtures_dir: Path) -> Callable[[str], dict[str, Any]]:
    """The real Yahoo response body (``response.bodyJson``) of a recorded fixture."""

    def load(ticker: str) -> dict[str, Any]:
        (path,) = fixtures_dir.glob(f"yahoo_v8_chart_{ticker}_*.json")
        body: dict[str, Any] = json.loads(path.read_text())["response"]["bodyJson"]
        return body

    return load


@pytest.fixture(scope="session")
def stooq_text(fixtures_dir: Path) -> str:
    (path,) = fixtures_dir.glob("stooq_spy_us_d_*.csv")
    return path.read_bytes().decode("utf-8")  # keep the CRLF line endings


def bars_from(rows: list[tuple[str, str, float]], volume: int = 1000) -> pd.DataFrame:
    """Valid bars from (ticker, date, close) with a consistent high/low band."""
    return pd.DataFrame({
        "ticker": [r[0] for r in rows],
        "date": pd.to_datetime([r[1] for r in rows]),
        "open": [r[2] for r in rows],
        "high": [r[2] * 1.01 for r in rows],
        "low": [r[2] * 0.99 for r in rows],
        "close": [r[2] for r in rows],
        "adj_close": [r[2] * 0.98 for r in rows],
        "volume": [volume] * len(rows),
    })


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, list[str]], Path]:
    """Write a CSV with the long bar header and the given data lines."""

    def write(name: str, lines: list[str]) -> Path:
        path = tmp_path / name
        path.write_text("\n".join([HEADER, *lines]) + "\n")
        return path

    return write


@pytest.fixture
def make_bars() -> Callable[..., pd.DataFrame]:
    return bars_from
