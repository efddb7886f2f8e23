"""Walk-forward training: schema, determinism, epochs kept, the deployable refit (the leak
guards are in ``test_leak_guards.py``)."""

from __future__ import annotations

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


def test_every_fold_reports_whether_its_validation_loss_improved(
        samples: Samples, train_settings: Callable[..., TrainSettings]) -> None:
    ts = train_settings()
    run = train_variant(samples, "baseline", ts.variants["baseline"], ts, context=["SPY"])
    first, *rest = run.fold_metrics
    assert first["warm_start"] == 0 and first["best_epoch"] >= 1  # never the untrained weights
    assert rest and all(f["warm_start"] == 1 for f in rest)
    for f in run.fold_metrics:
        assert f["improved"] == float(f["best_val_loss"] < f["start_val_loss"] - 1e-6)
        assert 1 <= f["epochs"] <= ts.variants["baseline"].epochs
        if f["best_epoch"] == 0:  # a warm start no epoch improved on: kept as it was
            assert f["improved"] == 0 and f["best_val_loss"] == f["start_val_loss"]
    assert run.metrics["folds_not_improved"] == sum(f["improved"] == 0 for f in run.fold_metrics)
    assert run.epochs[:-1] == [int(f["epochs"]) for f in run.fold_metrics]


def test_the_deployable_model_is_refitted_on_every_row_up_to_the_cutoff(
        samples: Samples, train_settings: Callable[..., TrainSettings]) -> None:
    from finmlops.evaluation.splits import label_known_by
    from finmlops.models.walkforward import deployable_epochs

    ts = train_settings()  # cutoff 2012-12-31
    run = train_variant(samples, "enhanced", ts.variants["enhanced"], ts, context=["SPY"])
    rows = label_known_by(samples.dates, ts.cutoff, horizon=1)
    # No validation tail held out: its training rows (the drift reference) are all of them.
    np.testing.assert_array_equal(run.reference_rows, samples.x[rows, -1, :])
    assert pd.Timestamp(samples.dates[rows].max()).date() == run.trained_until
    # For the median best epoch of the folds that trained on nothing after the cutoff.
    folds = walk_forward(samples.dates, horizon=1, min_train_years=3, embargo_days=2)
    last = samples.dates[rows].max()
    before = [int(m["best_epoch"]) for f, m in zip(folds, run.fold_metrics, strict=True)
              if samples.dates[f.train].max() <= last]
    assert 0 < len(before) < len(folds)
    assert run.final_epochs == deployable_epochs(before) == run.epochs[-1]


def test_deployable_epochs_is_the_median_best_epoch_rounded_up_and_at_least_one() -> None:
    from finmlops.models.walkforward import deployable_epochs

    assert deployable_epochs([3, 1, 4]) == 3
    assert deployable_epochs([1, 2]) == 2
    assert deployable_epochs([0, 0, 1]) == 1
    assert deployable_epochs([0]) == 1
    with pytest.raises(ValueError, match="no folds"):
        deployable_epochs([])


def test_a_cutoff_before_every_fold_refits_fresh_weights(
        samples: Samples, train_settings: Callable[..., TrainSettings]) -> None:
    # No fold trained by 2010-06-30: the epoch count comes from a fresh fit early-stopped on
    # the pre-cutoff rows' own tail, and the model is then refitted on all of them.
    ts = train_settings(variants={"mlp": MLP}, cutoff="2010-06-30")
    run = train_variant(samples, "mlp", MLP, ts, context=["SPY"])
    assert run.trained_until is not None and run.trained_until <= dt.date(2010, 6, 30)
    assert 1 <= run.final_epochs <= MLP.epochs
    again = train_variant(samples, "mlp", MLP, ts, context=["SPY"])
    assert again.weights_hash == run.weights_hash
