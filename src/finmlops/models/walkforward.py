"""Walk-forward training of one variant over a pooled feature frame, then the deployable fit.

Folds are trained in date order and each fold starts from the previous fold's best weights
(warm start): the expanding window changes little from one year to the next, so a fold mostly
needs a few epochs of fine-tuning, and warm-started fits stop after ``warm_patience(patience)``
(half the patience) epochs without improvement. Only the first fold starts from the seed's
initial weights, with the full patience, and keeps at least one trained epoch. A fold whose
validation loss never beat its starting weights is counted (``folds_not_improved``), not hidden.

The deployable model starts from the last fold whose training data ended by the cutoff (so it
saw nothing later) and is refitted on every purged row up to the cutoff, the validation tail
included, for :func:`deployable_epochs` epochs: the median best epoch of the folds trained
before the cutoff, at least one. Those folds are the deployable fit's own situation (a warm
start on a slightly longer window) measured a dozen times over, so their median is a steadier
stopping point than one more validation split would be, and it needs no held-out rows: the
most recent years are exactly what a deployed model should learn from. Only pre-cutoff folds
count, so no later data reaches the deployable model through its epoch count either.
Normalisation statistics are refitted on each fit's own training rows only.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from finmlops.config.settings import TrainSettings, VariantSettings
from finmlops.errors import DataValidationError
from finmlops.evaluation.classification import baseline_metrics, classification_metrics
from finmlops.evaluation.splits import holdout_split, label_known_by, walk_forward
from finmlops.features.calendar import SESSION
from finmlops.features.matrix import feature_names, training_mask
from finmlops.features.windows import make_windows, window_ends

FloatArray = npt.NDArray[np.float32]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Samples:
    """Every window a model can be asked about: ``x [n, W_max, F_all]`` raw float32 and, per
    sample, its date, ticker, forward return, label (NaN if unknown) and the last day's return."""

    x: FloatArray
    feature_names: list[str]
    dates: npt.NDArray[np.datetime64]
    tickers: npt.NDArray[np.object_]
    forward_return: npt.NDArray[np.float64]
    label: npt.NDArray[np.float64]
    previous_return: npt.NDArray[np.float64]

    @property
    def window(self) -> int:
        return int(self.x.shape[1])


def warm_patience(patience: int) -> int:
    """Early-stopping patience of a warm-started fold."""
    return max(1, patience // 2)


def max_window(variants: dict[str, VariantSettings]) -> int:
    """``W_max``: the shared input window of every variant of one experiment."""
    return max(v.window for v in variants.values())


def deployable_epochs(best_epochs: Sequence[int]) -> int:
    """Epochs of the deployable refit: the median best epoch of the folds trained before the
    cutoff (rounded up), at least 1."""
    if not best_epochs:
        raise ValueError("no folds to take the median best epoch of")
    return max(1, math.ceil(float(np.median(np.asarray(best_epochs, dtype=np.float64)))))


def prepare_samples(frame: pd.DataFrame, names: Sequence[str], window: int) -> Samples:
    """Windows ending at every row with ``window - 1`` earlier rows of its ticker on the
    calendar days just before (none spans a gap).

    ``frame`` is :func:`finmlops.features.build_features` output (sorted by ticker, date, with
    its ``session`` column).
    """
    if SESSION not in frame.columns:
        raise DataValidationError(f"feature frame lacks its {SESSION!r} column: rebuild the "
                                  "features (`finmlops run --only features`)")
    ends = window_ends(frame["ticker"], window, frame[SESSION])
    if ends.size == 0:
        raise DataValidationError(f"no ticker has the {window} rows a window needs")
    values = frame[list(names)].to_numpy(dtype=np.float32)
    sub = frame.iloc[ends]
    return Samples(
        x=make_windows(values, ends, window),
        feature_names=list(names),
        dates=sub["date"].to_numpy(dtype="datetime64[ns]"),
        tickers=sub["ticker"].astype(str).to_numpy(dtype=object),
        forward_return=sub["forward_return"].to_numpy(dtype=np.float64),
        label=sub["label"].to_numpy(dtype=np.float64),
        previous_return=np.expm1(sub["ret_1"].to_numpy(dtype=np.float64)),
    )


@dataclass(kw_only=True)
class WalkForwardRun:
    """What a walk-forward trainer produced (in memory, before writing): out-of-sample
    predictions and their metrics, and the model refitted up to the cutoff."""

    name: str
    feature_names: list[str]
    oos: pd.DataFrame
    fold_metrics: list[dict[str, float]]
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    model: Any
    """The deployable model (each trainer's own kind)."""
    trained_until: dt.date | None
    seconds: float = 0.0


@dataclass(kw_only=True)
class VariantRun(WalkForwardRun):
    """A neural variant's run; ``model`` is the deployable
    :class:`~finmlops.models._modules.DirectionModel` (raw input)."""

    settings: VariantSettings
    weights_hash: str
    reference_rows: FloatArray
    """Raw last-day features ``[n, F_all]`` of the deployable model's training rows."""
    reference_predictions: npt.NDArray[np.float64]
    """The deployable model's probabilities on those rows (the prediction drift reference)."""
    epochs: list[int] = field(default_factory=list)
    """Epochs run per fold, then by the deployable fit (last)."""
    final_epochs: int = 0
    """Epochs of the deployable refit (:func:`deployable_epochs`)."""
    losses: list[dict[str, list[float]]] = field(default_factory=list)
    """Per fit, in the order of ``epochs``: ``{"train": [...], "val": [...]}`` per epoch."""


class _Trainer:
    """One variant's slicing, normalisation and fitting on a shared :class:`Samples`."""

    def __init__(self, samples: Samples, variant: VariantSettings, context: Sequence[str],
                 seed: int, names: Sequence[str] | None = None) -> None:
        self.variant = variant
        self.seed = seed
        self.names = list(names) if names is not None else feature_names(variant.features,
                                                                          context)
        missing = [n for n in self.names if n not in samples.feature_names]
        if missing:
            raise DataValidationError(f"feature frame lacks {', '.join(missing)}")
        if variant.window > samples.window:
            raise DataValidationError("variant window exceeds the samples' window")
        self.index = [samples.feature_names.index(n) for n in self.names]
        self.x = np.ascontiguousarray(samples.x[:, -variant.window:, :][:, :, self.index])

    def stats(self, rows: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
        last = self.x[rows, -1, :].astype(np.float64)
        return last.mean(axis=0).astype(np.float32), last.std(axis=0).astype(np.float32)

    def normalised(self, rows: npt.NDArray[np.int64], mean: FloatArray,
                   std: FloatArray) -> FloatArray:
        from finmlops.models._modules import MIN_STD

        return ((self.x[rows] - mean) / np.maximum(std, MIN_STD)).astype(np.float32)

    def new_core(self, seed: int) -> Any:
        import torch

        from finmlops.models._modules import build_core

        torch.manual_seed(seed)
        return build_core(self.variant, len(self.index))


def train_variant(samples: Samples, name: str, variant: VariantSettings,
                  train: TrainSettings, *, context: Sequence[str], horizon: int = 1,
                  dead_band: float = 0.0, progress: Progress | None = None,
                  names: Sequence[str] | None = None) -> VariantRun:
    """Walk-forward out-of-sample predictions and metrics, then the model refitted on every
    row up to ``train.cutoff``; deterministic for ``train.seed``. ``names`` overrides the
    variant's feature list (a universe study's cross-sectional features)."""
    from finmlops.models._modules import DirectionModel, Preprocess
    from finmlops.models.training import fit, fit_epochs, predict, set_determinism, weights_hash

    t0 = time.perf_counter()
    set_determinism(train.seed, train.torch_threads)
    tr = _Trainer(samples, variant, context, train.seed, names)
    trainable = training_mask(pd.DataFrame({"forward_return": samples.forward_return}),
                              dead_band)
    known = np.isfinite(samples.label)
    folds = walk_forward(samples.dates, horizon=horizon, min_train_years=train.min_train_years,
                         test_block_years=train.test_block_years,
                         embargo_days=train.embargo_days)
    if not folds:
        raise DataValidationError(
            f"too little data for a walk-forward: need more than {train.min_train_years} years")
    final_rows = label_known_by(samples.dates, train.cutoff, horizon=horizon)
    final_rows = final_rows[trainable[final_rows]]
    if final_rows.size == 0:
        raise DataValidationError("no training rows before the cutoff")
    final_last = samples.dates[final_rows].max()
    start_state: dict[str, Any] | None = None
    pre_cutoff_best: list[int] = []
    core = tr.new_core(train.seed)
    parts: list[pd.DataFrame] = []
    fold_metrics: list[dict[str, float]] = []
    epochs: list[int] = []
    losses: list[dict[str, list[float]]] = []
    for fold in folds:
        rows = fold.train[trainable[fold.train]]
        fit_rows, val_rows = holdout_split(samples.dates, rows,
                                           fraction=train.validation_fraction, horizon=horizon)
        test = fold.test[known[fold.test]]
        if fit_rows.size == 0 or test.size == 0:
            continue
        warm = bool(epochs)
        mean, std = tr.stats(fit_rows)
        result = fit(core, tr.normalised(fit_rows, mean, std), samples.label[fit_rows],
                     tr.normalised(val_rows, mean, std), samples.label[val_rows], variant,
                     seed=train.seed + fold.index, warm_start=warm,
                     patience=warm_patience(variant.patience) if warm else variant.patience)
        epochs.append(result.epochs)
        losses.append({"train": result.train_losses, "val": result.val_losses})
        if samples.dates[fold.train].max() <= final_last:
            start_state = result.state  # the latest weights that saw nothing after the cutoff
            pre_cutoff_best.append(result.best_epoch)
        prob = predict(core, tr.normalised(test, mean, std))
        labels = samples.label[test]
        m = classification_metrics(labels, prob)
        base = baseline_metrics(labels, samples.previous_return[test])
        fold_metrics.append({
            "fold": float(fold.index), "test_year": float(fold.test_start.year),
            "train_rows": float(fit_rows.size), "warm_start": float(warm),
            "best_epoch": float(result.best_epoch), "epochs": float(result.epochs),
            "start_val_loss": result.start_val_loss, "best_val_loss": result.best_val_loss,
            "improved": float(result.improved),
            **m, **{f"{b}_accuracy": v["accuracy"] for b, v in base.items()},
        })
        parts.append(pd.DataFrame({
            "date": samples.dates[test], "ticker": samples.tickers[test].astype(str),
            "probability": prob, "label": labels.astype(np.int64),
            "forward_return": samples.forward_return[test], "fold": fold.index,
        }))
        if progress:
            flag = "" if result.improved else " (validation loss never improved)"
            progress(f"{name}: fold {fold.index + 1}/{len(folds)} "
                     f"({fold.test_start.year}) accuracy {m['accuracy']:.3f}{flag}")
    if not parts:
        raise DataValidationError("no fold had both training and test rows")
    oos = pd.concat(parts, ignore_index=True).sort_values(["date", "ticker"], kind="stable")
    oos = oos.reset_index(drop=True)
    prev = pd.Series(samples.previous_return,
                     index=pd.MultiIndex.from_arrays([samples.dates, samples.tickers]))
    prev_oos = prev.reindex(pd.MultiIndex.from_arrays([oos["date"], oos["ticker"]])).to_numpy()
    metrics = classification_metrics(oos["label"], oos["probability"])
    metrics["folds"] = float(len(fold_metrics))
    metrics["folds_not_improved"] = float(sum(f["improved"] == 0.0 for f in fold_metrics))
    baselines = baseline_metrics(oos["label"], prev_oos)

    # The deployable model: every row whose label is known by the cutoff, from the last fold
    # that saw nothing after it, for the pre-cutoff folds' median best epoch.
    mean, std = tr.stats(final_rows)
    x_final = tr.normalised(final_rows, mean, std)
    if start_state is None:
        final_epochs = _fresh_epochs(tr, samples, final_rows, variant, train, horizon)
        final_core = tr.new_core(train.seed)
    else:
        final_epochs = deployable_epochs(pre_cutoff_best)
        final_core = tr.new_core(train.seed)
        final_core.load_state_dict(start_state)
    _, final_losses = fit_epochs(final_core, x_final, samples.label[final_rows], variant,
                                 seed=train.seed, epochs=final_epochs)
    epochs.append(final_epochs)
    losses.append({"train": final_losses, "val": []})
    model = DirectionModel(Preprocess(variant.window, tr.index, mean, std), final_core).eval()
    last_day = samples.dates[final_rows].max()
    ref_prob = predict(final_core, x_final)
    return VariantRun(
        name=name, settings=variant, feature_names=tr.names, oos=oos,
        fold_metrics=fold_metrics, metrics=metrics, baselines=baselines, model=model,
        weights_hash=weights_hash(model.state_dict()),
        reference_rows=samples.x[final_rows, -1, :], reference_predictions=ref_prob,
        trained_until=pd.Timestamp(last_day).date(),
        seconds=time.perf_counter() - t0, epochs=epochs, final_epochs=final_epochs,
        losses=losses,
    )


def _fresh_epochs(tr: _Trainer, samples: Samples, rows: npt.NDArray[np.int64],
                  variant: VariantSettings, train: TrainSettings, horizon: int) -> int:
    """Epochs for a deployable model no fold trained before (a cutoff earlier than the first
    fold's training end): the best epoch of a fresh fit early-stopped on a validation tail of
    ``rows`` (then refitted on all of them by the caller)."""
    from finmlops.models.training import fit

    fit_rows, val_rows = holdout_split(samples.dates, rows, fraction=train.validation_fraction,
                                       horizon=horizon)
    if fit_rows.size == 0:
        raise DataValidationError("no training rows before the cutoff")
    mean, std = tr.stats(fit_rows)
    result = fit(tr.new_core(train.seed), tr.normalised(fit_rows, mean, std),
                 samples.label[fit_rows], tr.normalised(val_rows, mean, std),
                 samples.label[val_rows], variant, seed=train.seed)
    return result.best_epoch
