"""Fixtures for report tests: a real evaluation (from the bundled bars) and A/B results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finmlops.config import EvaluationSettings
from finmlops.evaluation import evaluate_predictions

BUNDLED = Path(__file__).resolve().parents[2] / "src" / "finmlops" / "data" / "bundled"


def _predictions(seed: int, skill: float) -> pd.DataFrame:
    bars = pd.read_csv(BUNDLED / "IBB.csv.gz", parse_dates=["date"])
    bars = bars[bars["date"] >= "2006-01-01"].reset_index(drop=True)
    fwd = bars["adj_close"].shift(-1) / bars["adj_close"] - 1
    rng = np.random.default_rng(seed)
    p = np.clip(0.52 + skill * np.sign(fwd.fillna(0)) + rng.normal(0, 0.08, len(bars)), 0, 1)
    return pd.DataFrame({"date": bars["date"], "ticker": "IBB", "probability": p,
                         "label": (fwd > 0).astype(np.int64), "forward_return": fwd, "fold": 0})


@pytest.fixture(scope="session")
def evaluation() -> dict[str, Any]:
    """Two variants: one with no skill at all, one with a little."""
    return evaluate_predictions({"baseline": _predictions(0, 0.0),
                                 "enhanced": _predictions(1, 0.03)}, EvaluationSettings())


@pytest.fixture
def abtest_full() -> dict[str, Any]:
    """Shaped like the abtest stage's decision (numbers nested, a daily timeline)."""
    days = [f"2019-01-{d:02d}" for d in range(2, 12)]
    return {
        "decision": {"action": "continue", "reason": "no decision yet on net_return",
                     "numbers": {
                         "arms": {"baseline": {"n": 700, "hit_rate": 0.52,
                                               "hit_rate_ci": [0.48, 0.56],
                                               "mean_return": 0.0003,
                                               "mean_return_ci": [-0.0008, 0.0014]},
                                  "enhanced": {"n": 300, "hit_rate": 0.55,
                                               "hit_rate_ci": [0.49, 0.61],
                                               "mean_return": 0.0006,
                                               "mean_return_ci": [-0.001, 0.0022]}},
                         "sequential": {"p_value": 0.4, "lower": -0.001, "upper": 0.002}}},
        "timeline": {"split": {"days": days, "p_value": [1.0 - i / 20 for i in range(10)],
                               "lower": [-0.01 + i / 2000 for i in range(10)],
                               "upper": [0.01 - i / 2000 for i in range(10)]}},
        "weird": float("nan"),
    }
