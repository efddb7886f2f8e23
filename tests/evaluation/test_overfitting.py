"""PBO by CSCV and the trial set a deflation uses."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from finmlops.errors import DataValidationError
from finmlops.evaluation import pbo_cscv, trial_stats, trials_from_returns


def test_pure_noise_trials_are_overfit_about_half_the_time():
    rng = np.random.default_rng(12)
    res = pbo_cscv(rng.normal(0, 0.01, (2000, 20)), n_splits=12)
    assert res.n_combinations == math.comb(12, 6) == 924
    assert 0.3 <= res.pbo <= 0.7
    assert len(res.logits) == res.n_combinations


def test_a_planted_skilled_trial_is_not_overfit():
    rng = np.random.default_rng(13)
    x = rng.normal(0, 0.01, (2000, 20))
    x[:, 7] += 0.0015  # SR ~ 0.15 a day: the best in sample and out of sample
    res = pbo_cscv(x, n_splits=12)
    assert res.pbo < 0.05 and res.oos_below_zero < 0.05


def test_pbo_input_errors():
    with pytest.raises(DataValidationError, match="at least 2 trials"):
        pbo_cscv(np.zeros((100, 1)))
    with pytest.raises(DataValidationError, match="even"):
        pbo_cscv(np.zeros((100, 3)), n_splits=5)
    with pytest.raises(DataValidationError, match="common days"):
        pbo_cscv(np.zeros((10, 3)), n_splits=16)


def test_trial_stats_count_prior_trials_and_ignore_undefined_sharpes():
    s = trial_stats([0.01, 0.03, np.nan], [0.0, 0.02, 0.01], prior=5)
    assert (s.n_trials, s.recorded, s.prior) == (7, 2, 5)
    assert s.sr_variance == pytest.approx(np.var([0.01, 0.03], ddof=1))
    assert s.active_sr_variance == pytest.approx(np.var([0.0, 0.02, 0.01], ddof=1))
    assert trial_stats([0.02]).sr_variance is None


def _trial(seed: int, days: pd.DatetimeIndex, edge: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    bench = np.random.default_rng(0).normal(3e-4, 0.01, days.size)
    return pd.DataFrame({"date": days, "net": bench + rng.normal(edge, 0.004, days.size),
                         "benchmark": bench, "rf": 0.0})


def test_trials_from_returns_pbo_on_common_days_once_there_are_enough():
    days = pd.bdate_range("2010-01-01", periods=600)
    few = trials_from_returns({f"t{i}": _trial(i, days) for i in range(3)}, pbo_min_trials=4)
    assert few.pbo is None and "at least 4 trials" in few.pbo_note
    assert few.stats.n_trials == 3 and few.source == "ledger"
    many = {f"t{i}": _trial(i, days[i * 5:]) for i in range(6)}
    res = trials_from_returns(many, prior=2, pbo_splits=8, pbo_min_trials=4, counted=["x"])
    assert res.stats.n_trials == 8 and res.counted == ["x"]
    assert res.pbo is not None and res.pbo["n_days"] == 600 - 25  # the days all six share
    assert res.pbo["start"] == str(days[25].date())
    assert sum(res.pbo["logit_histogram"]["counts"]) == math.comb(8, 4)
    sr = [(f["net"] / f["net"].std(ddof=1)).mean() for f in many.values()]
    assert res.stats.sr_variance == pytest.approx(np.var(sr, ddof=1), rel=1e-9)
