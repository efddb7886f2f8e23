"""``finmlops monitor drift`` on the bundled IBB/SPY bars: the COVID crash replay drifts, a
window drawn from the training rows does not, and a model directory's reference is used."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from finmlops.cli import monitor
from finmlops.errors import DataValidationError, ModelNotFoundError

COVID = ["--start", "2020-02-19", "--end", "2020-03-23"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Training-style features of the bundled bars (IBB target, SPY context)."""
    from finmlops.data import BundledSource, validate_bars
    from finmlops.features import build_features

    bars = validate_bars(BundledSource().fetch(["IBB", "SPY"], None, None))
    return build_features(bars, ["IBB"], ["SPY"], 1)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Invoke the ``monitor`` commands with settings rooted in ``tmp_path`` (empty store)."""
    for key in [k for k in os.environ if k.startswith("FINMLOPS_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINMLOPS_HOME", str(tmp_path / "home"))
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = {"config": None}

    monitor.register(app)
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, ["monitor", "drift", *args])

    yield invoke


def write_model_dir(dest: Path, frame: pd.DataFrame, window: int = 3) -> Path:
    """A model over the full feature list, p = sigmoid(mean(x) / 10), with a reference (and
    the training predictions) built from the rows up to 2018."""
    import onnx
    from onnx import TensorProto, helper

    from finmlops.features import feature_names, make_windows, window_ends
    from finmlops.monitoring import build_reference

    names = feature_names("full", ["SPY"])
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["features"], ["mean"], axes=[1, 2], keepdims=0),
         helper.make_node("Mul", ["mean", "k"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["probability"])],
        "tiny_full",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                       ["batch", window, len(names)])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch"])],
        initializer=[helper.make_tensor("k", TensorProto.FLOAT, [], [0.1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    dest.mkdir(parents=True)
    onnx.save(model, str(dest / "model.onnx"))
    train = frame[frame["date"] <= "2018-12-31"].reset_index(drop=True)
    values = train[names].to_numpy(dtype="float64")
    x = make_windows(values, window_ends(train["ticker"].to_numpy(), window), window)
    p = 1.0 / (1.0 + np.exp(-0.1 * x.reshape(len(x), -1).mean(axis=1)))
    card = {"format": 1, "variant": "baseline", "target": ["IBB"], "input_name": "features",
            "output_name": "probability", "window": window, "feature_names": names,
            "data_version": "bundled", "weights_hash": "h", "trained_until": "2018-12-31",
            "horizon": 1, "reference": build_reference(values, names, predictions=p)}
    (dest / "model.json").write_text(json.dumps(card), encoding="utf-8")
    return dest


def test_covid_crash_replay_drifts(cli: Any) -> None:
    res = cli(*COVID, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["live_start"] == "2020-02-19" and report["live_end"] == "2020-03-23"
    assert report["live_rows"] == 24
    assert report["reference"].startswith("bars until 2018-12-31")
    by = {r["feature"]: r for r in report["features"]}
    assert len(by) == 21
    # the crash moved volatility and market context far outside 2001-2018
    for name in ("vol_20", "spy_vol_20", "hl_range", "beta_60_spy"):
        assert by[name]["alarm"] and by[name]["psi"] > 0.5 and by[name]["p_value"] < 1e-4
    assert len(report["drifted"]) >= 15


def test_window_drawn_from_the_training_rows_does_not_drift(cli: Any, frame: pd.DataFrame,
                                                            tmp_path: Path) -> None:
    sample = frame[frame["date"] <= "2018-12-31"].iloc[::25]
    path = tmp_path / "live.csv"
    sample.to_csv(path, index=False)
    res = cli("--live", str(path), "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["live_rows"] == len(sample)
    assert report["drifted"] == []
    assert max(r["psi"] for r in report["features"]) < 0.1


def test_model_dir_reference_and_prediction_drift(cli: Any, frame: pd.DataFrame,
                                                  tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path / "model", frame)
    res = cli("--model-dir", str(model_dir), *COVID, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["reference"].startswith("model baseline")
    features = [r["feature"] for r in report["features"]]
    assert features[-1] == "prediction" and len(features) == 22
    table = cli("--model-dir", str(model_dir), *COVID)
    assert table.exit_code == 0
    assert "DRIFT" in table.output and "spy_vol_20" in table.output
    assert "drifted (PSI > 0.2 and KS p < 0.01)" in table.output
    assert cli("--model-dir", str(model_dir), *COVID, "--fail-on-drift").exit_code == 1


def test_thresholds_come_from_options(cli: Any) -> None:
    res = cli(*COVID, "--json", "--psi-threshold", "100")
    report = json.loads(res.output)
    assert report["psi_threshold"] == 100 and report["drifted"] == []


def test_default_window_is_the_last_drift_window_days(cli: Any) -> None:
    report = json.loads(cli("--json").output)
    assert report["live_rows"] == 60  # monitoring.drift_window_days, one target ticker


def test_user_errors_are_typed(cli: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("--model-dir", str(empty))
    assert isinstance(res.exception, ModelNotFoundError)
    (empty / "model.json").write_text('{"reference": null}')
    res = cli("--model-dir", str(empty))
    assert isinstance(res.exception, DataValidationError)
    assert "no drift reference" in str(res.exception)
    res = cli("--model-dir", str(empty), "--model", "champion")
    assert isinstance(res.exception, DataValidationError)
    res = cli("--live", str(tmp_path / "missing.csv"))
    assert isinstance(res.exception, DataValidationError)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"ret_1": [0.1, 0.2]}).to_csv(bad, index=False)
    res = cli("--live", str(bad))
    assert isinstance(res.exception, DataValidationError)
    assert "lacks reference features" in str(res.exception)
    res = cli("--start", "1990-01-01", "--end", "1990-02-01")
    assert isinstance(res.exception, DataValidationError)


@pytest.mark.slow
def test_reference_from_the_registry(cli: Any, frame: pd.DataFrame, tmp_path: Path) -> None:
    """``--model baseline`` downloads the registered version (real MLflow, SQLite store)."""
    from finmlops.config import Settings, VariantSettings, public_dict
    from finmlops.models import TrainedVariant
    from finmlops.tracking import log_training, register

    model_dir = write_model_dir(tmp_path / "trained" / "model", frame)
    oos = tmp_path / "trained" / "oos.parquet"
    pd.DataFrame({"date": pd.date_range("2010-01-04", periods=3), "ticker": "IBB",
                  "probability": [0.4, 0.6, 0.5], "label": [0, 1, 1],
                  "forward_return": [-0.01, 0.02, 0.001], "fold": [0, 0, 1]}).to_parquet(oos)
    settings = Settings(home=tmp_path / "home")
    trained = TrainedVariant(
        variant="baseline", settings=VariantSettings(window=3), model_dir=model_dir,
        oos_path=oos, fold_metrics=[{"accuracy": 0.5}], metrics={"accuracy": 0.5},
        baselines={}, weights_hash="h", data_version="bundled",
        feature_names=list(json.loads((model_dir / "model.json").read_text())["feature_names"]),
        seconds=1.0)
    run_id = log_training(settings, trained, public_dict(settings))
    register(settings, run_id, "baseline", "bundled")
    res = cli("--model", "baseline", *COVID, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["reference"] == "registry baseline"
    assert report["features"][-1]["feature"] == "prediction"
    assert len(report["drifted"]) >= 15
    res = cli("--model", "no-such-alias", *COVID)
    assert isinstance(res.exception, ModelNotFoundError)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.csv", b"", "not a readable CSV file"),
    ("latin.csv", b"\xff\xferet_1\n1\n", "not a readable CSV file"),
    ("junk.parquet", b"not parquet at all", "not a readable Parquet file"),
])
def test_unreadable_live_files_are_typed_errors(cli: Any, tmp_path: Path, name: str,
                                                content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    res = cli("--live", str(path))
    assert isinstance(res.exception, DataValidationError), res.exception
    assert message in str(res.exception)


def test_live_window_end_before_start_is_a_typed_error(cli: Any, tmp_path: Path) -> None:
    res = cli("--live", str(tmp_path), "--start", "2020-03-01", "--end", "2020-02-01")
    assert isinstance(res.exception, DataValidationError)
    assert "--end 2020-02-01 is before --start 2020-03-01" in str(res.exception)
