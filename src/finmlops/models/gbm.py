"""A gradient-boosted tree variant (LightGBM), trained walk-forward and exported to ONNX.

The trees see the last ``lags`` days of their feature subset, flattened (oldest first). The
exported graph keeps the experiment's input contract (``features`` FP32 ``[-1, W, F]``,
output ``probability`` FP32 ``[-1]``): it slices the trailing ``lags`` days and the feature
subset out of the full window, flattens them, runs the converted tree ensemble
(``onnxmltools``) and keeps P(class 1). So serving stays ONNX-only, with no pickle.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from finmlops.config import GBMSettings
from finmlops.errors import DataValidationError
from finmlops.evaluation.classification import baseline_metrics, classification_metrics
from finmlops.evaluation.splits import label_known_by, walk_forward
from finmlops.features.matrix import training_mask
from finmlops.models.walkforward import Progress, Samples, WalkForwardRun


@dataclass(kw_only=True)
class GBMRun(WalkForwardRun):
    """The tree variant's run; ``model`` is the deployable ``lightgbm.Booster``, which sees
    features ``input_index`` over the last ``lags`` days (what its ONNX export slices)."""

    input_index: list[int]
    lags: int
    fold_seconds: list[float] = field(default_factory=list)


def _design(x: npt.NDArray[np.float32], index: Sequence[int], lags: int) -> np.ndarray:
    """``[n, lags * F']``: the trailing ``lags`` days of the chosen features, oldest first."""
    out: np.ndarray = np.ascontiguousarray(
        x[:, -lags:, :][:, :, list(index)].reshape(x.shape[0], -1))
    return out


def fit_booster(x: np.ndarray, y: np.ndarray, gbm: GBMSettings, seed: int) -> Any:
    """A deterministic LightGBM binary classifier on ``x``/``y``."""
    import lightgbm as lgb

    params = {
        "objective": "binary", "learning_rate": gbm.learning_rate, "num_leaves": gbm.num_leaves,
        "min_child_samples": gbm.min_child_samples, "bagging_fraction": gbm.subsample,
        "bagging_freq": 1 if gbm.subsample < 1 else 0, "feature_fraction": gbm.colsample_bytree,
        "lambda_l2": gbm.reg_lambda, "num_threads": gbm.threads, "seed": seed,
        "deterministic": True, "force_row_wise": True, "verbosity": -1,
    }
    data = lgb.Dataset(x, label=y.astype(np.float64), free_raw_data=True)
    return lgb.train(params, data, num_boost_round=gbm.n_estimators)


def train_gbm(samples: Samples, name: str, gbm: GBMSettings, names: Sequence[str], *,
              seed: int, min_train_years: int, test_block_years: int, embargo_days: int,
              cutoff: dt.date | None, horizon: int = 1, dead_band: float = 0.0,
              progress: Progress | None = None) -> GBMRun:
    """Walk-forward out-of-sample probabilities of the tree variant (one fresh booster per
    fold, on every purged training row), then the booster on every row up to ``cutoff``."""
    t0 = time.perf_counter()
    missing = [n for n in names if n not in samples.feature_names]
    if missing:
        raise DataValidationError(f"samples lack features: {', '.join(missing)}")
    if gbm.lags > samples.window:
        raise DataValidationError("gbm.lags exceeds the samples' window")
    index = [samples.feature_names.index(n) for n in names]
    x = _design(samples.x, index, gbm.lags)
    trainable = training_mask(pd.DataFrame({"forward_return": samples.forward_return}),
                              dead_band)
    known = np.isfinite(samples.label)
    folds = walk_forward(samples.dates, horizon=horizon, min_train_years=min_train_years,
                         test_block_years=test_block_years, embargo_days=embargo_days)
    if not folds:
        raise DataValidationError(
            f"too little data for a walk-forward: need more than {min_train_years} years")
    parts, fold_metrics, fold_seconds = [], [], []
    for fold in folds:
        rows = fold.train[trainable[fold.train]]
        test = fold.test[known[fold.test]]
        if rows.size == 0 or test.size == 0:
            continue
        tf = time.perf_counter()
        booster = fit_booster(x[rows], samples.label[rows], gbm, seed + fold.index)
        prob = booster.predict(x[test]).astype(np.float64)
        fold_seconds.append(time.perf_counter() - tf)
        labels = samples.label[test]
        m = classification_metrics(labels, prob)
        fold_metrics.append({"fold": float(fold.index), "test_year": float(fold.test_start.year),
                             "train_rows": float(rows.size), **m})
        parts.append(pd.DataFrame({
            "date": samples.dates[test], "ticker": samples.tickers[test].astype(str),
            "probability": prob, "label": labels.astype(np.int64),
            "forward_return": samples.forward_return[test], "fold": fold.index}))
        if progress:
            progress(f"{name}: fold {fold.index + 1}/{len(folds)} ({fold.test_start.year}) "
                     f"accuracy {m['accuracy']:.3f}")
    if not parts:
        raise DataValidationError("no fold had both training and test rows")
    oos = pd.concat(parts, ignore_index=True).sort_values(["date", "ticker"], kind="stable")
    oos = oos.reset_index(drop=True)
    metrics = classification_metrics(oos["label"], oos["probability"])
    metrics["folds"] = float(len(fold_metrics))
    prev = pd.Series(samples.previous_return,
                     index=pd.MultiIndex.from_arrays([samples.dates, samples.tickers]))
    prev_oos = prev.reindex(pd.MultiIndex.from_arrays([oos["date"], oos["ticker"]])).to_numpy()
    final_rows = label_known_by(samples.dates, cutoff, horizon=horizon)
    final_rows = final_rows[trainable[final_rows]]
    if final_rows.size == 0:
        raise DataValidationError("no training rows before the cutoff")
    model = fit_booster(x[final_rows], samples.label[final_rows], gbm, seed)
    return GBMRun(
        name=name, feature_names=list(names), oos=oos, fold_metrics=fold_metrics,
        metrics=metrics, baselines=baseline_metrics(oos["label"], prev_oos), model=model,
        input_index=index, lags=gbm.lags,
        trained_until=pd.Timestamp(samples.dates[final_rows].max()).date(),
        seconds=time.perf_counter() - t0, fold_seconds=fold_seconds)


ONNX_OPSET = 15


def export_gbm_onnx(booster: Any, path: Path, *, window: int, n_features: int,
                    index: Sequence[int], lags: int) -> Path:
    """Write the booster as ONNX behind the experiment's input contract (module docstring)."""
    import onnx
    from onnx import TensorProto, helper
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    from finmlops.models.export import INPUT_NAME, OUTPUT_NAME

    if not 1 <= lags <= window:
        raise DataValidationError("lags must be between 1 and the window")
    width = lags * len(index)
    trees = convert_lightgbm(booster, initial_types=[("trees_input", FloatTensorType(
        [None, width]))], zipmap=False, target_opset=ONNX_OPSET)
    graph = trees.graph
    prob_name = next(o.name for o in graph.output if o.name != "label")

    def const(name: str, values: Sequence[int]) -> Any:
        return helper.make_tensor(name, TensorProto.INT64, [len(values)], list(values))

    inits = [const("gbm_starts", [window - lags]), const("gbm_ends", [window]),
             const("gbm_axes", [1]), const("gbm_index", list(index)),
             const("gbm_shape", [-1, width]), const("gbm_one", [1]), const("gbm_two", [2])]
    pre = [
        helper.make_node("Slice", [INPUT_NAME, "gbm_starts", "gbm_ends", "gbm_axes"],
                         ["gbm_days"]),
        helper.make_node("Gather", ["gbm_days", "gbm_index"], ["gbm_cols"], axis=2),
        helper.make_node("Reshape", ["gbm_cols", "gbm_shape"], ["trees_input"]),
    ]
    post = [
        helper.make_node("Slice", [prob_name, "gbm_one", "gbm_two", "gbm_one"], ["gbm_up"]),
        helper.make_node("Reshape", ["gbm_up", "gbm_minus_one"], [OUTPUT_NAME]),
    ]
    inits.append(const("gbm_minus_one", [-1]))
    nodes = [*pre, *graph.node, *post]
    new_graph = helper.make_graph(
        nodes, "gbm_direction",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", window,
                                                                       n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch"])],
        initializer=[*graph.initializer, *inits])
    ml = max((o.version for o in trees.opset_import if o.domain == "ai.onnx.ml"), default=1)
    model = helper.make_model(new_graph, opset_imports=[
        helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid("ai.onnx.ml", ml)],
        producer_name="finmlops")
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
