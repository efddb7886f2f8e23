"""Walk-forward training: schema, determinism, and the leakage guards (permutation, canary)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from finmlops.config import TrainSettings, VariantSettings
from finmlops.evaluation import walk_forward
from finmlops.models.walkforward import Samples, train_variant, warm_patience

MLP = VariantSettings(architecture="mlp", features="core", window=3, hidden=16, epochs=6,
                      patience=2, batch_size=256, learning_rate=3e-3)


def test_oos_predictions_and_metrics(samples: Samples,
                                     train_settings: Callable[..., TrainSettings]) -> None:
    ts = train_settings()
    run = train_variant(samples, "baseline", ts.variants["baseline"], ts, context=["SPY"])
    oos = run.oos
    assert list(oos.columns) == ["date", "ticker", "probability", "label", "forward_return",
                                 "fold"]
    folds = walk_forward(samples.dates, horizon=1, min_train_years=3, embargo_days=2)
    assert [int(f["fold"]) for f in run.fold_metrics] == [f.index for f in folds]
    # One row per day per ticker from the first test day on (but the unknown last label).
    first = pd.Timestamp(folds[0].test_start)
    expected_days = np.unique(samples.dates[samples.dates >= first])[:-1]
    assert oos["date"].to_numpy().tolist() == expected_days.tolist()
    assert oos["probability"].between(0, 1).all()
    assert set(oos["label"].unique()) <= {0, 1}
    assert run.metrics["n"] == len(oos) and run.metrics["folds"] == len(folds)
    assert sum(f["n"] for f in run.fold_metrics) == len(oos)
    assert run.baselines["always_up"]["accuracy"] == pytest.approx(oos["label"].mean())
    assert run.feature_names == ["ret_1", "ret_5", "ret_20", "vol_20", "rsi_14"]
    # The deployable model saw only rows whose label was known by the cutoff.
    assert run.trained_until is not None and run.trained_until <= dt.date(2012, 12, 31)
    assert run.reference_rows.shape[1] == len(samples.feature_names)
    assert len(run.reference_predictions) == len(run.reference_rows)
    # Normalisation inside the graph uses the deployable model's training rows only.
    idx = [samples.feature_names.index(n) for n in run.feature_names]
    np.testing.assert_allclose(run.model.preprocess.mean.numpy(),
                               run.reference_rows[:, idx].mean(0), rtol=1e-4, atol=1e-6)
    assert warm_patience(5) == 2 and warm_patience(1) == 1


def test_same_seed_same_weights_and_metrics(samples: Samples,
                                            train_settings: Callable[..., TrainSettings]) -> None:
    ts = train_settings()
    v = ts.variants["enhanced"]
    a = train_variant(samples, "enhanced", v, ts, context=["SPY"])
    b = train_variant(samples, "enhanced", v, ts, context=["SPY"])
    assert a.weights_hash == b.weights_hash
    assert a.metrics == b.metrics
    pd.testing.assert_frame_equal(a.oos, b.oos)
    c = train_variant(samples, "enhanced", v, train_settings(seed=7), context=["SPY"])
    assert c.weights_hash != a.weights_hash


def test_shuffled_labels_score_like_a_coin(samples: Samples,
                                          train_settings: Callable[..., TrainSettings]) -> None:
    rng = np.random.default_rng(0)
    n = len(samples.label)
    up = rng.permutation(np.arange(n) % 2).astype(np.float64)  # half up, in random order
    shuffled = dataclasses.replace(samples, label=up, forward_return=np.where(up == 1, 0.01, -0.01))
    ts = train_settings(variants={"mlp": MLP})
    run = train_variant(shuffled, "mlp", MLP, ts, context=["SPY"])
    assert run.metrics["n"] > 700
    assert run.metrics["accuracy_ci_low"] < 0.5 < run.metrics["accuracy_ci_high"]


def test_canary_feature_that_is_the_next_day_return_is_found(
        samples: Samples, train_settings: Callable[..., TrainSettings]) -> None:
    # Plant tomorrow's return in a feature: if the pipeline can learn anything, it learns this.
    x = samples.x.copy()
    j = samples.feature_names.index("ret_20")
    x[:, -1, j] = np.nan_to_num(samples.forward_return, nan=0.0).astype(np.float32)
    canary = dataclasses.replace(samples, x=x)
    mlp = MLP.model_copy(update={"epochs": 40, "patience": 5, "learning_rate": 1e-2,
                                 "batch_size": 128})
    ts = train_settings(variants={"mlp": mlp})
    run = train_variant(canary, "mlp", mlp, ts, context=["SPY"])
    assert run.metrics["accuracy"] > 0.95
    honest = train_variant(samples, "mlp", mlp, ts, context=["SPY"])
    assert honest.metrics["accuracy"] < 0.6


def test_a_universe_is_pooled_into_one_model(train_settings: Callable[..., TrainSettings],
                                             bundled: Callable[..., pd.DataFrame]) -> None:
    from finmlops.features import build_features, feature_names
    from finmlops.models.walkforward import prepare_samples

    bars = bundled("IBB", "SPY", start="2008-01-01", end="2013-12-31")
    frame = build_features(bars, ["IBB", "SPY"], ["SPY"])
    pooled = prepare_samples(frame, feature_names("full", ["SPY"]), 8)
    ts = train_settings(variants={"mlp": MLP})
    run = train_variant(pooled, "mlp", MLP, ts, context=["SPY"])
    per_day = run.oos.groupby("date")["ticker"].agg(list)
    assert (per_day.map(sorted) == pd.Series([["IBB", "SPY"]] * len(per_day),
                                             index=per_day.index)).all()
    assert run.metrics["n"] == 2 * len(per_day)


def _perturbed(samples: Samples, since: np.datetime64, seed: int = 0) -> Samples:
    """``samples`` with every feature row dated >= ``since`` and every label window reaching
    ``since`` replaced by noise: what a model trained before ``since`` must never notice."""
    rng = np.random.default_rng(seed)
    x = samples.x.copy()
    later = samples.dates >= since
    x[later] = rng.normal(size=x[later].shape).astype(np.float32)
    # the label of the last day before ``since`` is the return into ``since``
    reach = later | (samples.dates == samples.dates[~later].max())
    fwd = samples.forward_return.copy()
    fwd[reach & np.isfinite(fwd)] = rng.normal(0, 0.02, int((reach & np.isfinite(fwd)).sum()))
    label = np.where(np.isfinite(samples.label), (fwd > 0).astype(np.float64), np.nan)
    return dataclasses.replace(samples, x=x, forward_return=fwd, label=label)


def test_the_deployable_model_never_sees_past_the_cutoff(
        samples: Samples, train_settings: Callable[..., TrainSettings]) -> None:
    # Folds after the cutoff train on later data; the deployable model is warm-started from
    # the last fold that saw nothing after it, so noise after the cutoff changes nothing.
    ts = train_settings()  # cutoff 2012-12-31
    v = ts.variants["enhanced"]
    honest = train_variant(samples, "enhanced", v, ts, context=["SPY"])
    noisy = train_variant(_perturbed(samples, np.datetime64("2013-01-01")), "enhanced", v, ts,
                          context=["SPY"])
    assert honest.weights_hash == noisy.weights_hash
    assert honest.trained_until == noisy.trained_until == dt.date(2012, 12, 28)
    # ... while the walk-forward folds after the cutoff did see the change
    late = honest.oos["date"] >= pd.Timestamp("2014-01-01")
    assert not np.allclose(honest.oos.loc[late, "probability"],
                           noisy.oos.loc[late, "probability"])


def test_no_oos_prediction_depends_on_later_data(
        samples: Samples, train_settings: Callable[..., TrainSettings]) -> None:
    # Noise from mid-2013 on: every prediction before it (folds trained earlier, features of
    # earlier days) is bit-identical; the fold of 2013 itself trained only before 2013.
    since = np.datetime64("2013-06-14")
    ts = train_settings(variants={"mlp": MLP})
    a = train_variant(samples, "mlp", MLP, ts, context=["SPY"]).oos
    b = train_variant(_perturbed(samples, since, seed=1), "mlp", MLP, ts, context=["SPY"]).oos
    before = a["date"] < pd.Timestamp(since)
    assert before.sum() > 300 and (a["date"] == b["date"]).all()
    np.testing.assert_array_equal(a.loc[before, "probability"], b.loc[before, "probability"])


def test_the_dead_band_thins_training_never_the_evaluation(
        samples: Samples, train_settings: Callable[..., TrainSettings]) -> None:
    ts = train_settings(variants={"mlp": MLP})
    full = train_variant(samples, "mlp", MLP, ts, context=["SPY"])
    banded = train_variant(samples, "mlp", MLP, ts, context=["SPY"], dead_band=0.005)
    cols = ["date", "ticker", "label", "forward_return", "fold"]
    pd.testing.assert_frame_equal(full.oos[cols], banded.oos[cols])  # every day still tested
    assert (banded.oos["forward_return"].abs() < 0.005).sum() > 100  # small moves included
    assert banded.metrics["n"] == full.metrics["n"]
    assert banded.weights_hash != full.weights_hash  # ... but the models learnt from fewer
