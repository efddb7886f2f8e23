"""Fixtures: a real MLflow SQLite store per test (copied from one migrated template, so the
schema migrations run once per session), tiny ONNX models (model_support), and one
real exported network (an LSTM DirectionModel through the project's own ONNX export)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finmlops.config import Settings, VariantSettings
from finmlops.models import TrainedVariant
from model_support import mean_weights, write_linear_model

WINDOW, N_FEATURES = 4, 3
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
LOSSES = [{"train": [0.71, 0.70], "val": [0.70, 0.69]},      # fold 0
          {"train": [0.69], "val": [0.695]},                 # fold 1
          {"train": [0.70, 0.694, 0.69], "val": [0.697, 0.693, 0.694]}]  # the deployable fit


@pytest.fixture
def make_settings(tmp_path: Path, mlflow_template: Path) -> Callable[..., Settings]:
    """Settings for a home (``name`` picks a sub-directory) with a migrated database; the
    same name again is the same home (e.g. with other settings)."""

    def make(name: str = "home", **kwargs: Any) -> Settings:
        home = tmp_path / name
        home.mkdir(parents=True, exist_ok=True)
        if not (home / "mlflow.db").exists():
            shutil.copyfile(mlflow_template, home / "mlflow.db")
        return Settings(home=home, **kwargs)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def write_model_dir(path: Path, variant: str, bias: float = 0.0) -> Path:
    """An exported model dir: ``features`` FP32 [-1, W, F] -> ``probability`` FP32 [-1]
    (sigmoid of the mean plus ``bias``), and its model.json."""
    return write_linear_model(path, mean_weights(1.0, WINDOW, N_FEATURES), variant=variant,
                              feature_names=FEATURES, bias=bias, data_version="d" * 12,
                              weights_hash=f"w-{variant}-{bias}")


@pytest.fixture
def tiny_shape() -> tuple[int, int]:
    """(window, number of features) of the tiny models."""
    return WINDOW, N_FEATURES


def trained_under(base: Path) -> Callable[..., TrainedVariant]:
    """``make(variant, settings, ...)``: a TrainedVariant-like result with real files under
    ``base``, without running any training."""
    import pandas as pd

    def make(variant: str, settings: Settings, bias: float = 0.0,
             data_version: str = "d" * 12, accuracy: float = 0.54,
             model_dir: Path | None = None) -> TrainedVariant:
        root = base / "trained" / f"{variant}-{bias}-{data_version}"
        if model_dir is None:
            model_dir = write_model_dir(root / "model", variant, bias)
        root.mkdir(parents=True, exist_ok=True)
        oos = root / "oos.parquet"
        pd.DataFrame({"date": pd.date_range("2010-01-04", periods=5), "ticker": "IBB",
                      "probability": [0.4, 0.6, 0.55, 0.3, 0.7], "label": [0, 1, 1, 0, 1],
                      "forward_return": [-0.01, 0.02, 0.0, -0.005, 0.01],
                      "fold": [0, 0, 1, 1, 1]}).to_parquet(oos)
        vs = settings.train.variants.get(variant, VariantSettings())
        return TrainedVariant(
            variant=variant, settings=vs, model_dir=model_dir, oos_path=oos,
            fold_metrics=[{"fold": 0.0, "accuracy": 0.5, "auc": 0.51},
                          {"fold": 1.0, "accuracy": 0.58, "auc": 0.56}],
            metrics={"accuracy": accuracy, "accuracy_ci_low": accuracy - 0.03,
                     "accuracy_ci_high": accuracy + 0.03, "auc": 0.55, "log_loss": 0.69},
            baselines={"always_up": {"accuracy": 0.53}, "yesterday": {"accuracy": 0.49}},
            weights_hash=f"w-{variant}-{bias}", data_version=data_version,
            feature_names=FEATURES, seconds=1.5, losses=LOSSES,
        )

    return make


@pytest.fixture(scope="session")
def trained_factory() -> Callable[[Path], Callable[..., TrainedVariant]]:
    """:func:`trained_under`, for module-scoped fixtures (it is a pure function of its root)."""
    return trained_under


@pytest.fixture
def make_trained(tmp_path: Path) -> Callable[..., TrainedVariant]:
    """A TrainedVariant-like result with real files in tmp_path, without running any
    training."""
    return trained_under(tmp_path)


@pytest.fixture(scope="session")
def lstm_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real exported model directory: a seeded, untrained LSTM ``DirectionModel`` (trailing
    window slice, feature subset and normalisation inside the graph) through
    :func:`finmlops.models.export.export_onnx`, its ``model.json`` and an input example."""
    import numpy as np
    import torch

    from finmlops.models._modules import DirectionModel, Preprocess, build_core
    from finmlops.models.export import (
        export_onnx,
        model_card,
        write_input_example,
        write_model_json,
    )

    window, n_features = 6, 5
    variant = VariantSettings(architecture="lstm", window=4, hidden=8)
    torch.manual_seed(7)
    index = [0, 2, 3]
    rng = np.random.default_rng(7)
    model = DirectionModel(
        Preprocess(variant.window, index, rng.normal(size=3).astype(np.float32),
                   rng.uniform(0.5, 2.0, size=3).astype(np.float32)),
        build_core(variant, len(index))).eval()
    out = tmp_path_factory.mktemp("lstm") / "baseline"
    export_onnx(model, out / "model.onnx", window, n_features)
    names = [f"x{i}" for i in range(n_features)]
    write_model_json(out / "model.json", model_card(
        variant="baseline", target=["IBB"], window=window, feature_names=names,
        data_version="d" * 12, weights_hash="w-lstm", trained_until="2018-12-31", horizon=1,
        reference=None))
    write_input_example(out / "input_example.json",
                        rng.normal(size=(2, window, n_features)).astype(np.float32))
    return out
