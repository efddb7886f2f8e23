"""Fixtures for evaluation tests: seeded synthetic returns and OOS prediction frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finmlops.config import CostSettings, EvaluationSettings, Settings
from trained_support import trained_entry


def make_predictions(n: int = 600, seed: int = 0, start: str = "2007-06-01",
                     ticker: str = "IBB", edge: float = 0.1) -> pd.DataFrame:
    """An OOS prediction frame as training writes it, with a small genuine edge."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0003, 0.015, n)
    p = np.clip(0.5 + edge * np.sign(r) * (rng.random(n) < 0.3) + rng.normal(0, 0.05, n), 0, 1)
    return pd.DataFrame({
        "date": pd.bdate_range(start, periods=n), "ticker": ticker, "probability": p,
        "label": (r > 0).astype(np.int64), "forward_return": r, "fold": np.arange(n) // 250,
    })


@pytest.fixture
def predictions() -> pd.DataFrame:
    return make_predictions()


@pytest.fixture
def zero_costs() -> EvaluationSettings:
    return EvaluationSettings(costs=CostSettings(commission_bps=0, half_spread_bps=0,
                                                 slippage_bps=0))


@pytest.fixture
def returns() -> np.ndarray:
    return np.random.default_rng(1).normal(0.0004, 0.012, 500)


@pytest.fixture
def make_preds():
    """The factory itself, for tests that need several frames."""
    return make_predictions


BUNDLED = Path(__file__).resolve().parents[2] / "src" / "finmlops" / "data" / "bundled"


def bundled_predictions(ticker: str = "IBB", seed: int = 0, skill: float = 0.04,
                        start: str = "2006-01-01") -> pd.DataFrame:
    """OOS-style predictions on the real bundled bars: a noisy forecaster with a little skill."""
    bars = pd.read_csv(BUNDLED / f"{ticker}.csv.gz", parse_dates=["date"])
    bars = bars[bars["date"] >= start].reset_index(drop=True)
    fwd = bars["adj_close"].shift(-1) / bars["adj_close"] - 1
    rng = np.random.default_rng(seed)
    p = np.clip(0.52 + skill * np.sign(fwd.fillna(0)) + rng.normal(0, 0.08, len(bars)), 0, 1)
    return pd.DataFrame({"date": bars["date"], "ticker": ticker, "probability": p,
                         "label": (fwd > 0).astype(np.int64), "forward_return": fwd,
                         "fold": bars["date"].dt.year})


@pytest.fixture
def run_state(tmp_path: Path) -> tuple[Settings, dict[str, Any]]:
    """Settings under ``tmp_path`` and a run state as the train stage leaves it."""
    settings = Settings(home=tmp_path / "home")
    trained = {}
    for i, variant in enumerate(["baseline", "enhanced"]):
        path = tmp_path / f"{variant}_oos.parquet"
        bundled_predictions(seed=i, skill=0.02 * (i + 1)).to_parquet(path)
        trained[variant] = trained_entry(variant, path, model_dir=tmp_path)
    return settings, {"trained": trained, "dataset_version": "v-test"}
