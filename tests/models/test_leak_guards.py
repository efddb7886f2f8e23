"""Leak guards: tests that fail when the walk-forward learns from rows it is tested on.

Each guard is shown to pass on the honest pipeline AND to fail on a leaky one, in which every
test row is also put into its fold's training rows (``leaky_split``); a guard that cannot fail
on a leak is not a guard. Labels that are noise to the features (a global shuffle, or a
circular shift within blocks) do not make one: noise cannot be learned from test rows either,
so a pipeline that trains on them still scores like a coin.

- The test-block label guard: one test block's labels are set to a rule of that block's own
  features, then to the opposite rule, and the fold is scored on each. An honest fold never
  reads its test labels, so its predictions are the same both times and its two accuracies add
  up to exactly 1: it scores exactly 0.5, whatever the model. A fold that trains on its test
  rows learns each rule in turn and scores well above.
- Perturbation: replacing every row after a date by noise must leave every earlier
  prediction (and the deployable model of an earlier cutoff) bit-identical.
- The canary feature (tomorrow's return planted in a feature) is not a leak guard: it shows the
  pipeline can learn at all, so that the other guards' coin-like scores mean something.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finmlops.config import TrainSettings, VariantSettings
from finmlops.evaluation import Fold, walk_forward
from finmlops.features import feature_names
from finmlops.models import walkforward
from finmlops.models.walkforward import Samples, train_variant

MLP = VariantSettings(architecture="mlp", features="core", window=3, hidden=16, epochs=6,
                      patience=2, batch_size=256, learning_rate=3e-3)

PROBE = VariantSettings(architecture="mlp", features="core", window=3, hidden=32, epochs=30,
                        patience=5, batch_size=64, learning_rate=3e-3)
"""Enough capacity and epochs to learn the canary block's rule from that block's rows."""


@pytest.fixture
def leaky_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the walk-forward put every fold's test rows into its training rows."""
    honest = walkforward.walk_forward

    def leaky(*args: Any, **kwargs: Any) -> list[Fold]:
        return [dataclasses.replace(f, train=np.union1d(f.train, f.test))
                for f in honest(*args, **kwargs)]

    monkeypatch.setattr(walkforward, "walk_forward", leaky)


@dataclasses.dataclass(frozen=True)
class BlockGuard:
    """What the test-block label guard measured on one fold."""

    accuracies: tuple[float, float]
    """The fold's accuracy with the rule planted, and with the opposite rule."""
    same_predictions: bool
    """Whether the fold's predictions were bit-identical both times."""

    @property
    def score(self) -> float:
        """Mean of the two accuracies: exactly 0.5 when the labels were never read."""
        return (self.accuracies[0] + self.accuracies[1]) / 2

    @property
    def leak_detected(self) -> bool:
        return not self.same_predictions or abs(self.score - 0.5) > 1e-12


def block_guard(samples: Samples, variant: VariantSettings, train: TrainSettings, fold: int,
                seed: int = 0) -> BlockGuard:
    """Train twice with the labels of ``fold``'s test block (and only those) set to a rule of
    the block's own features, then to its opposite: above or below the median of a random
    direction through the last day's core features (standardised over the block)."""
    block = walk_forward(samples.dates, horizon=1, min_train_years=train.min_train_years,
                         test_block_years=train.test_block_years,
                         embargo_days=train.embargo_days)[fold].test
    block = block[np.isfinite(samples.label[block])]
    idx = [samples.feature_names.index(n) for n in feature_names("core")]
    x = samples.x[block, -1, :][:, idx].astype(np.float64)
    z = ((x - x.mean(0)) / x.std(0)) @ np.random.default_rng(seed).normal(size=len(idx))
    rule = z > np.median(z)
    runs = []
    for up in (rule, ~rule):
        label, fwd = samples.label.copy(), samples.forward_return.copy()
        label[block] = up.astype(np.float64)
        fwd[block] = np.where(up, 0.01, -0.01)
        planted = dataclasses.replace(samples, label=label, forward_return=fwd)
        runs.append(train_variant(planted, "probe", variant, train, context=["SPY"]))
    metrics = [r.fold_metrics[fold] for r in runs]
    assert all(m["n"] == block.size for m in metrics)
    index = metrics[0]["fold"]
    predictions = [r.oos.loc[r.oos["fold"] == index, "probability"].to_numpy() for r in runs]
    return BlockGuard(accuracies=(metrics[0]["accuracy"], metrics[1]["accuracy"]),
                      same_predictions=bool(np.array_equal(*predictions)))


def guard_settings(train_settings: Callable[..., TrainSettings]) -> TrainSettings:
    # A short validation tail, so a leaked test block lands mostly in the fitted rows instead
    # of only steering early stopping (which leaks less, and less visibly).
    return train_settings(variants={"probe": PROBE}, validation_fraction=0.05)


@pytest.mark.parametrize("fold", [0, -1], ids=["first block", "last block"])
def test_the_honest_pipeline_scores_exactly_chance_on_planted_test_labels(
        samples: Samples, train_settings: Callable[..., TrainSettings], fold: int) -> None:
    guard = block_guard(samples, PROBE, guard_settings(train_settings), fold)
    assert guard.same_predictions
    assert guard.score == pytest.approx(0.5, abs=1e-12)
    assert not guard.leak_detected


@pytest.mark.parametrize("fold", [0, -1], ids=["first block", "last block"])
def test_the_block_guard_detects_test_rows_put_into_training(
        samples: Samples, train_settings: Callable[..., TrainSettings], fold: int,
        leaky_split: None) -> None:
    guard = block_guard(samples, PROBE, guard_settings(train_settings), fold)
    assert guard.leak_detected
    assert not guard.same_predictions
    assert guard.score > 0.6  # each planted rule is learnt from the rows it is tested on
    assert min(guard.accuracies) > 0.55


def _noise_labels(samples: Samples, how: str) -> Samples:
    """Labels that are noise to the features: shuffled over every row, or rolled by half a
    year within each calendar year (keeping each year's base rate and autocorrelation)."""
    known = np.flatnonzero(np.isfinite(samples.label))
    if how == "shuffle":
        groups = [known]
        moved = [np.random.default_rng(0).permutation(known)]
    else:
        years = samples.dates[known].astype("datetime64[Y]")
        groups = [known[years == y] for y in np.unique(years)]
        moved = [np.roll(g, g.size // 2) for g in groups]
    label, fwd = samples.label.copy(), samples.forward_return.copy()
    for g, m in zip(groups, moved, strict=True):
        label[g], fwd[g] = samples.label[m], samples.forward_return[m]
    return dataclasses.replace(samples, label=label, forward_return=fwd)


@pytest.mark.parametrize("how", ["shuffle", "circular shift"])
def test_noise_labels_do_not_reveal_test_rows_put_into_training(
        samples: Samples, train_settings: Callable[..., TrainSettings], how: str,
        leaky_split: None) -> None:
    # Why they are not guards: even trained on its test rows, the probe scores no better than
    # always-up on labels it cannot learn from features, exactly as an honest pipeline does.
    ts = guard_settings(train_settings)
    run = train_variant(_noise_labels(samples, how), "probe", PROBE, ts, context=["SPY"])
    assert run.metrics["n"] > 700
    assert run.metrics["accuracy_ci_low"] < run.baselines["always_up"]["accuracy"]


def test_the_canary_feature_that_is_the_next_day_return_is_found(
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


SINCE = np.datetime64("2013-06-14")


def _predictions_before(samples: Samples, ts: TrainSettings) -> tuple[pd.Series, pd.Series]:
    a = train_variant(samples, "mlp", MLP, ts, context=["SPY"]).oos
    b = train_variant(_perturbed(samples, SINCE, seed=1), "mlp", MLP, ts, context=["SPY"]).oos
    assert (a["date"] == b["date"]).all()
    before = a["date"] < pd.Timestamp(SINCE)
    assert before.sum() > 300
    return a.loc[before, "probability"], b.loc[before, "probability"]


def test_no_oos_prediction_depends_on_later_data(
        samples: Samples, train_settings: Callable[..., TrainSettings]) -> None:
    # Noise from mid-2013 on: every prediction before it (folds trained earlier, features of
    # earlier days) is bit-identical; the fold of 2013 itself trained only before 2013.
    honest, noisy = _predictions_before(samples, train_settings(variants={"mlp": MLP}))
    np.testing.assert_array_equal(honest, noisy)


def test_the_perturbation_guard_detects_test_rows_put_into_training(
        samples: Samples, train_settings: Callable[..., TrainSettings],
        leaky_split: None) -> None:
    # The 2013 fold now trains on its own test rows, noise from mid-2013 included, so its
    # predictions of the first half of 2013 move.
    honest, noisy = _predictions_before(samples, train_settings(variants={"mlp": MLP}))
    assert not np.array_equal(honest, noisy)


def test_the_deployable_model_never_sees_past_the_cutoff(
        samples: Samples, train_settings: Callable[..., TrainSettings]) -> None:
    # Folds after the cutoff train on later data; the deployable model starts from the last
    # fold that saw nothing after it, for an epoch count taken from such folds only, so noise
    # after the cutoff changes nothing.
    ts = train_settings()  # cutoff 2012-12-31
    v = ts.variants["enhanced"]
    honest = train_variant(samples, "enhanced", v, ts, context=["SPY"])
    noisy = train_variant(_perturbed(samples, np.datetime64("2013-01-01")), "enhanced", v, ts,
                          context=["SPY"])
    assert honest.weights_hash == noisy.weights_hash
    assert honest.final_epochs == noisy.final_epochs
    assert honest.trained_until == noisy.trained_until == dt.date(2012, 12, 28)
    # ... while the walk-forward folds after the cutoff did see the change
    late = honest.oos["date"] >= pd.Timestamp("2014-01-01")
    assert not np.allclose(honest.oos.loc[late, "probability"],
                           noisy.oos.loc[late, "probability"])
