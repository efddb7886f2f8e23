"""``finmlops monitor drift`` on the bundled IBB/SPY bars: the COVID crash replay drifts,
windows of consecutive days inside the training period do not, and a model directory's
reference is used."""

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
from finmlops.models.export import model_card
from model_support import mean_weights, write_linear_model

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
    from finmlops.features import feature_names, make_windows, window_ends
    from finmlops.monitoring import build_reference

    names = feature_names("full", ["SPY"])
    train = frame[frame["date"] <= "2018-12-31"].reset_index(drop=True)
    values = train[names].to_numpy(dtype="float64")
    x = make_windows(values, window_ends(train["ticker"].to_numpy(), window), window)
    p = 1.0 / (1.0 + np.exp(-0.1 * x.reshape(len(x), -1).mean(axis=1)))
    return write_linear_model(
        dest, mean_weights(0.1, window, len(names)), variant="baseline", feature_names=names,
        data_version="bundled", weights_hash="h",
        reference=build_reference(values, names, predictions=p, lengths=(20, 24)))


def test_covid_crash_replay_drifts(cli: Any) -> None:
    res = cli(*COVID, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["live_start"] == "2020-02-19" and report["live_end"] == "2020-03-23"
    assert report["live_rows"] == 24
    assert report["reference"].startswith("bars until 2018-12-31")
    assert report["calibrated"] and report["alarm"]
    by = {r["feature"]: r for r in report["features"]}
    assert len(by) == 21
    assert all(r["n"] == 24 for r in by.values())  # changes include the day before the start
    agg = report["aggregate"]
    assert agg["alarm"] and agg["length"] == 24 and agg["unusual"] >= agg["threshold"]
    assert agg["unusual"] == sum(r["p_value"] <= agg["alpha"] for r in by.values())
    # SPY's volatility jumped further than in any 24 days of 2001-2018
    assert by["spy_vol_20"]["alarm"] and by["spy_vol_20"]["basis"] == "change"
    assert by["spy_vol_20"]["p_family"] <= 0.01


@pytest.mark.parametrize("window", [("2010-01-04", "2010-02-08"), ("2012-06-01", "2012-07-06"),
                                    ("2016-03-01", "2016-04-05")])
def test_windows_inside_the_training_period_do_not_drift(cli: Any, frame: pd.DataFrame,
                                                         tmp_path: Path,
                                                         window: tuple[str, str]) -> None:
    """The windows on which the previous rule alarmed for 10, 5 and 10 of 22 series."""
    path = tmp_path / "live.csv"
    frame[frame["date"] <= "2018-12-31"].to_csv(path, index=False)
    res = cli("--live", str(path), "--start", window[0], "--end", window[1], "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["live_rows"] == 25 and report["calibrated"]
    assert report["drifted"] == [] and not report["aggregate"]["alarm"]
    assert all(r["n"] == 25 for r in report["features"])


def test_model_dir_reference_and_prediction_drift(cli: Any, frame: pd.DataFrame,
                                                  tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path / "model", frame)
    res = cli("--model-dir", str(model_dir), *COVID, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["reference"].startswith("model baseline")
    features = [r["feature"] for r in report["features"]]
    assert features[-1] == "prediction" and len(features) == 22
    assert report["features"][-1]["n"] == 24 and report["features"][-1]["basis"] == "level"
    assert report["aggregate"]["alarm"]
    table = cli("--model-dir", str(model_dir), *COVID)
    assert table.exit_code == 0
    assert "DRIFT" in table.output and "spy_vol_20" in table.output
    assert "features unusual (calibrated p <= 0.01)" in table.output
    assert "reference's 24-day windows" in table.output
    assert cli("--model-dir", str(model_dir), *COVID, "--fail-on-drift").exit_code == 1
    quiet = cli("--model-dir", str(model_dir), "--start", "2012-06-01", "--end", "2012-07-06",
                "--fail-on-drift")
    assert quiet.exit_code == 0, quiet.output


def test_thresholds_come_from_options(cli: Any) -> None:
    report = json.loads(cli(*COVID, "--json", "--psi-threshold", "100").output)
    # the PSI floor silences single features, not the aggregate count
    assert report["psi_threshold"] == 100 and report["drifted"] == []
    assert report["aggregate"]["alarm"]
    strict = json.loads(cli(*COVID, "--json", "--ks-alpha", "0.001").output)
    assert strict["ks_alpha"] == 0.001 and strict["aggregate"]["alpha"] == 0.001


def test_default_window_is_the_last_drift_window_days(cli: Any) -> None:
    report = json.loads(cli("--json").output)
    assert report["live_rows"] == 20  # monitoring.drift_window_days, one target ticker
    assert report["aggregate"]["length"] == 20


def test_user_errors_are_typed(cli: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("--model-dir", str(empty))
    assert isinstance(res.exception, ModelNotFoundError)
    model_card(variant="baseline", target=["IBB"], window=2, feature_names=["ret_1"],
               data_version="d", weights_hash="h", trained_until="2018-12-31", horizon=1,
               reference=None).write(empty)  # a card from before drift references
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
    assert report["aggregate"]["alarm"] and "spy_vol_20" in report["drifted"]
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
