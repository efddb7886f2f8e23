"""The gradient-boosted tree variant: ONNX parity with LightGBM, the input contract,
determinism, and a walk-forward that learns a planted rule and never predicts its own
training rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finmlops.config import GBMSettings
from finmlops.errors import DataValidationError
from finmlops.models.gbm import _design, export_gbm_onnx, fit_booster, train_gbm
from finmlops.models.walkforward import Samples

# ONNX Runtime sums the trees' leaf values in float32, LightGBM in float64: with at most a
# few hundred trees of leaves below ~1 in the raw score, the float32 rounding of the sum is
# below 200 * 2**-24 * 1 ~ 1.2e-5, and the sigmoid's slope (<= 1/4) makes it < 3e-6 in the
# probability. 1e-5 leaves room and still catches any wrong column, lag or class.
PARITY_ATOL = 1e-5


def _data(n: int = 4000, window: int = 6, features: int = 5, seed: int = 0
          ) -> tuple[np.ndarray, list[int], int, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, window, features)).astype(np.float32)
    index, lags = [4, 1], 3
    signal = x[:, -1, 4] - 0.5 * x[:, -3, 1]
    y = (signal + 0.5 * rng.normal(size=n) > 0).astype(np.float64)
    return x, index, lags, y


def test_onnx_matches_lightgbm_on_the_full_window_input(tmp_path: Path) -> None:
    import onnxruntime as ort

    x, index, lags, y = _data()
    booster = fit_booster(_design(x, index, lags), y, GBMSettings(n_estimators=300), seed=3)
    path = export_gbm_onnx(booster, tmp_path / "model.onnx", window=6, n_features=5,
                           index=index, lags=lags)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape[1:], inp.type) == ("features", [6, 5], "tensor(float)")
    assert (out.name, len(out.shape), out.type) == ("probability", 1, "tensor(float)")
    got = session.run(["probability"], {"features": x})[0]
    want = booster.predict(_design(x, index, lags))
    assert got.shape == (x.shape[0],)
    np.testing.assert_allclose(got, want, atol=PARITY_ATOL, rtol=0)
    # a different lag or column is not within the tolerance: the test can fail
    wrong = booster.predict(_design(x[:, :-1, :], index, lags))
    assert np.abs(got[: wrong.size] - wrong[: got.size]).max() > 100 * PARITY_ATOL


def test_the_exported_model_loads_in_the_serving_runtime(tmp_path: Path) -> None:
    from finmlops.serving.runtime import load_model

    x, index, lags, y = _data(n=500)
    booster = fit_booster(_design(x, index, lags), y, GBMSettings(n_estimators=20), seed=1)
    export_gbm_onnx(booster, tmp_path / "gbm" / "model.onnx", window=6, n_features=5,
                    index=index, lags=lags)
    model = load_model("gbm", tmp_path / "gbm")
    assert (model.window, model.n_features) == (6, 5)
    p = model.predict(x[:7])
    assert p.shape == (7,) and np.all((p > 0) & (p < 1))


def test_fits_are_deterministic_for_a_seed() -> None:
    x, index, lags, y = _data(n=1500)
    d = _design(x, index, lags)
    a = fit_booster(d, y, GBMSettings(n_estimators=30), seed=5).predict(d)
    b = fit_booster(d, y, GBMSettings(n_estimators=30), seed=5).predict(d)
    np.testing.assert_array_equal(a, b)


def _samples(days: int = 900, tickers: int = 4, seed: int = 0) -> Samples:
    rng = np.random.default_rng(seed)
    dates = np.repeat(pd.bdate_range("2015-01-01", periods=days).to_numpy(), tickers)
    n = dates.size
    x = rng.normal(size=(n, 3, 2)).astype(np.float32)
    fwd = 0.01 * x[:, -1, 0] + 0.005 * rng.normal(size=n)
    return Samples(x=x, feature_names=["a", "b"], dates=dates,
                   tickers=np.tile([f"T{i}" for i in range(tickers)], days).astype(object),
                   forward_return=fwd, label=(fwd > 0).astype(np.float64),
                   previous_return=rng.normal(0, 0.01, n))


def test_walk_forward_learns_a_planted_rule_out_of_sample() -> None:
    s = _samples()
    run = train_gbm(s, "gbm", GBMSettings(n_estimators=60, min_child_samples=20), ["a", "b"],
                    seed=1, min_train_years=1, test_block_years=1, embargo_days=5,
                    cutoff=None)
    first_test = run.oos["date"].min()
    assert first_test >= pd.Timestamp("2016-01-01")  # after a full year of training
    assert run.metrics["accuracy"] > 0.75
    assert run.oos.groupby(["date", "ticker"]).size().max() == 1  # each row tested once
    assert run.metrics["folds"] == len(run.fold_metrics) >= 2


def test_bad_inputs_are_refused() -> None:
    s = _samples(days=300)
    with pytest.raises(DataValidationError, match="lack features"):
        train_gbm(s, "gbm", GBMSettings(), ["zz"], seed=1, min_train_years=1,
                  test_block_years=1, embargo_days=0, cutoff=None)
    with pytest.raises(DataValidationError, match="lags"):
        train_gbm(s, "gbm", GBMSettings(lags=5), ["a"], seed=1, min_train_years=1,
                  test_block_years=1, embargo_days=0, cutoff=None)
