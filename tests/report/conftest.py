"""Fixtures for report tests: a real evaluation (from the bundled bars) and an A/B summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finmlops.config import EvaluationSettings
from finmlops.contracts import AbtestSummary, EvaluationFile
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
def evaluation() -> EvaluationFile:
    """Two variants: one with no skill at all, one with a little."""
    return evaluate_predictions({"baseline": _predictions(0, 0.0),
                                 "enhanced": _predictions(1, 0.03)}, EvaluationSettings())


DAYS = [f"2019-01-{d:02d}" for d in range(2, 12)]
SERVED = ["baseline", "enhanced", "baseline", "baseline", "enhanced",
          "baseline", "enhanced", "baseline", "baseline", "enhanced"]
RET = {"baseline": [0.01, -0.02, 0.005, 0.0, 0.01, -0.01, 0.02, 0.003, -0.004, 0.006],
       "enhanced": [0.012, -0.01, 0.007, 0.002, 0.011, -0.008, 0.021, 0.004, -0.001, 0.009]}


def _cumulative(arm: str, served_only: bool) -> dict[str, list[Any]]:
    n = h = 0
    s = q = 0.0
    out: dict[str, list[Any]] = {"n": [], "hits": [], "sum_return": [], "sum_sq": []}
    for day, r in enumerate(RET[arm]):
        if not served_only or SERVED[day] == arm:
            n, h, s, q = n + 1, h + (r > 0), s + r, q + r * r
        for k, v in zip(out, (n, h, s, q), strict=True):
            out[k].append(v)
    return out


def _sequence(width_end: float, est: float, actions: list[str],
              decided: int | None) -> dict[str, Any]:
    widths = [None, *(width_end * 10 / (i + 1) for i in range(1, 10))]
    return {"days": DAYS, "estimate": [est] * 10,
            "lower": [None if w is None else est - w / 2 for w in widths],
            "upper": [None if w is None else est + w / 2 for w in widths],
            "p_value": [1.0 - i / 20 for i in range(10)], "action": actions,
            "days_to_decision": decided}


def _numbers(**parts: Any) -> dict[str, Any]:
    return {"metric": "net_return", "alpha": 0.05, "min_effect": 0.0002,
            "challenger": "enhanced", "reference": "baseline", **parts}


@pytest.fixture
def abtest_full() -> AbtestSummary:
    """An ``abtest.json`` as the abtest stage writes it, hand-built: 10 days, two arms, a
    split test still undecided (CS width 40 bps) and a paired one that promoted on day 5
    (CS width 10 bps)."""
    split = {**_sequence(0.004, 0.001, ["invalid"] * 3 + ["continue"] * 7, None),
             "n_challenger": [sum(a == "enhanced" for a in SERVED[:i + 1]) for i in range(10)],
             "n_reference": [sum(a == "baseline" for a in SERVED[:i + 1]) for i in range(10)],
             "srm_p": [0.9] * 10,
             "arms": {a: _cumulative(a, True) for a in ("baseline", "enhanced")}}
    paired = {**_sequence(0.001, 0.001, ["invalid"] * 3 + ["continue"] + ["promote"] * 6, 5),
              "n": list(range(1, 11)),
              "arms": {a: _cumulative(a, False) for a in ("baseline", "enhanced")}}
    arm = {"baseline": {"n": 6, "hits": 4, "hit_rate": 0.6667, "hit_rate_ci": [0.3, 0.9],
                        "mean_return": -0.0027, "mean_return_ci": [-0.02, None],
                        "sd_return": 0.012, "served": 6, "share": 0.6, "target_share": 0.7},
           "enhanced": {"n": 4, "hits": 3, "hit_rate": 0.75, "hit_rate_ci": [0.3, 0.95],
                        "mean_return": 0.0008, "mean_return_ci": [-0.02, 0.02],
                        "sd_return": 0.011, "served": 4, "share": 0.4, "target_share": 0.3}}
    srm = {"counts": {"baseline": 6, "enhanced": 4},
           "expected_share": {"baseline": 0.7, "enhanced": 0.3}, "log_bayes_factor": -1.2,
           "p_value": 0.42, "mismatch": False, "chi2": 0.48, "chi2_p_value": 0.49}
    return AbtestSummary.model_validate({
        "experiment": "direction-ab", "challenger": "enhanced", "reference": "baseline",
        "metric": "net_return", "alpha": 0.05, "n_plan": 500, "min_effect": 0.0002,
        "min_samples": 3, "days": 10, "arms": arm,
        "decision": {"action": "continue",
                     "reason": "no decision yet on net_return: 95% CS [-0.001, 0.003] "
                               "includes 0 or 0.0002",
                     "numbers": _numbers(
                         arms=arm, srm=srm,
                         sequential={"estimate": 0.001, "p_value": 0.4, "lower": -0.001,
                                     "upper": 0.003, "n_plan": 500},
                         net_return={"estimate": 0.0035, "std_error": 0.007, "statistic": 0.5,
                                     "p_value": 0.6, "lower": -0.01, "upper": 0.017},
                         hit_rate={"estimate": 0.0833, "std_error": 0.29, "statistic": 0.29,
                                   "p_value": 0.77, "lower": -0.48, "upper": 0.65})},
        "paired_decision": {"action": "promote",
                            "reason": "paired: enhanced beats baseline on net_return",
                            "numbers": _numbers(sequential={
                                "estimate": 0.001, "p_value": 0.01, "lower": 0.0005,
                                "upper": 0.0015, "n_plan": 500, "basis": "days (HAC)"})},
        "days_to_decision": {"split": None, "paired": 5},
        "timeline": {"split": split, "paired": paired},
        "stress_windows": {"covid_crash": {
            "start": "2019-01-03", "end": "2019-01-05", "days": 3,
            "served": {"baseline": {"n": 2, "hit_rate": 0.5, "mean_return": -0.0075,
                                    "total_return": -0.015},
                       "enhanced": {"n": 1, "hit_rate": 0.0, "mean_return": -0.01,
                                    "total_return": -0.01}},
            "paired": {"n": 3, "mean_diff": 0.002, "total_diff": 0.006, "hit_rate": 0.667,
                       "hit_rate_reference": 0.333, "total_return": 0.009,
                       "total_return_reference": 0.003}}},
    })
