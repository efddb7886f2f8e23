"""Fixtures for model tests: real IBB/SPY features over a short span and small variants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from finmlops.config import Settings, TrainSettings, VariantSettings
from finmlops.features import build_features, feature_names
from finmlops.models.walkforward import Samples, prepare_samples

BUNDLED = Path(__file__).resolve().parents[2] / "src" / "finmlops" / "data" / "bundled"

SMALL_VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"architecture": "lstm", "features": "core", "window": 5, "hidden": 8,
                 "epochs": 4, "patience": 2, "batch_size": 512},
    "enhanced": {"architecture": "gru", "features": "full", "window": 8, "hidden": 8,
                 "layers": 2, "dropout": 0.1, "epochs": 4, "patience": 2, "batch_size": 512},
}


def read_bundled(*tickers: str, start: str, end: str) -> pd.DataFrame:
    frames = []
    for t in tickers:
        f = pd.read_csv(BUNDLED / f"{t}.csv.gz", parse_dates=["date"])
        f.insert(0, "ticker", t)
        frames.append(f[(f["date"] >= start) & (f["date"] <= end)])
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def bundled() -> Callable[..., pd.DataFrame]:
    """``bundled(*tickers, start=..., end=...)``: bars from the bundled files."""
    return read_bundled


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    """IBB features with SPY context, 2008-2014 (about five years after warm-up)."""
    return build_features(read_bundled("IBB", "SPY", start="2008-01-01", end="2014-12-31"),
                          ["IBB"], ["SPY"], horizon=1)


@pytest.fixture(scope="session")
def samples(frame: pd.DataFrame) -> Samples:
    return prepare_samples(frame, feature_names("full", ["SPY"]), 8)


@pytest.fixture
def train_settings() -> Callable[..., TrainSettings]:
    """Small, fast walk-forward settings: two training years, yearly folds, tiny networks."""

    def make(**overrides: Any) -> TrainSettings:
        tree: dict[str, Any] = {
            "variants": {k: VariantSettings(**v) for k, v in SMALL_VARIANTS.items()},
            "min_train_years": 3, "embargo_days": 2, "cutoff": "2012-12-31",
            "torch_threads": 1,
        }
        tree.update(overrides)
        return TrainSettings(**tree)

    return make


def settings_for_stages(home: Path) -> Settings:
    """Pipeline settings for the features + train stages on a short bundled span."""
    return Settings(home=home, data={"start": "2008-01-01", "end": "2014-12-31"},
                    train={"variants": SMALL_VARIANTS, "min_train_years": 3,
                           "cutoff": "2012-12-31", "torch_threads": 1})


@pytest.fixture(scope="session")
def stage_settings_in() -> Callable[[Path], Settings]:
    """:func:`settings_for_stages`, for module-scoped fixtures (a pure function of the home)."""
    return settings_for_stages


@pytest.fixture
def stage_settings(tmp_path: Path) -> Settings:
    """Pipeline settings for the features + train stages on a short bundled span."""
    return settings_for_stages(tmp_path)
