"""Shared by the universe benchmarks: where the S&P file is, and its bars with SPY."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

DATA = Path(os.environ.get("FINMLOPS_SHARED_DATA")
            or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
UNIVERSE = DATA / "sp500_2019-03-08_2024-03-08.csv"
CONTEXT = DATA / "SPY.csv"
SECTORS = DATA / "sp500_constituents_2024-03-05.csv"


def available() -> bool:
    return UNIVERSE.is_file() and CONTEXT.is_file()


def skip_message() -> str:
    return (f"skipped: {UNIVERSE} or {CONTEXT} is missing (the shared data folder; "
            "FINMLOPS_SHARED_DATA names another)")


def load() -> pd.DataFrame:
    """The S&P bars and SPY's on the same dates (the vendor's two bad bars dropped, as the
    universe reader does)."""
    from finmlops.config import UniverseSettings
    from finmlops.data.universe import read_universe

    u = UniverseSettings(files=[UNIVERSE, CONTEXT], context=["SPY"],
                         start=pd.Timestamp("2019-03-08").date(),
                         end=pd.Timestamp("2024-03-08").date())
    return read_universe(u).bars
