"""A universe study end to end on a small synthetic universe, through MLflow's trial ledger
(real SQLite store), ONNX export and the serving runtime; then a search whose trials count."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.features.conftest import random_walk_bars

from finmlops.config import Settings

TICKERS = [f"S{i}" for i in range(8)]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("universe")
    days = pd.bdate_range("2017-01-02", "2019-12-31")
    many = pd.concat([random_walk_bars(t, days if t != "S7" else days[200:], i + 1,
                                       20.0 + 10 * i) for i, t in enumerate(TICKERS)])
    many.loc[many.index[10], "high"] = many.loc[many.index[10], "open"] * 0.9  # a vendor error
    many.to_csv(root / "many.csv", index=False, date_format="%Y-%m-%d")
    mkt = random_walk_bars("MKT", days, 0, 300.0).drop(columns="ticker")
    mkt.to_csv(root / "MKT.csv", index=False, date_format="%Y-%m-%d")
    sectors = pd.DataFrame({"Symbol": TICKERS, "GICS Sector": ["a", "b"] * 4})
    sectors.to_csv(root / "sectors.csv", index=False)
    return [root / "many.csv", root / "MKT.csv", root / "sectors.csv"]


def _settings(make: Callable[..., Settings], files: list[Path], **extra: Any) -> Settings:
    return make(universe={
        "files": [str(files[0]), str(files[1])], "context": ["MKT"],
        "sectors_path": str(files[2]), "min_train_years": 1,
        "variants": {
            "net": {"kind": "neural", "features": "both", "network": {
                "architecture": "mlp", "window": 3, "hidden": 4, "epochs": 1, "patience": 1,
                "batch_size": 512}},
            "gbm": {"kind": "gbm", "features": "cs", "gbm": {"n_estimators": 10, "lags": 2}}},
        "portfolio": {"quantile": 0.25, "capital": 1e4, "capacity_capitals": [1e6, 1e9]},
        "search": {"trials": 2, "variant": "gbm"}, **extra}, evaluation={"pbo_splits": 4})


def test_study_records_each_book_once_and_exports_servable_models(
        settings: Callable[..., Settings], files: list[Path]) -> None:
    from finmlops.research import run_universe
    from finmlops.serving.runtime import discover, load_models

    s = _settings(settings, files)
    result = run_universe(s)
    assert result["tickers"] == 8 and result["trials"]["n"] == 2
    assert result["dropped_bars"] and result["dropped_bars"][0].startswith("S0 ")
    assert "survivorship" in result["survivorship"]
    for name in ("net", "gbm"):
        fig = result["variants"][name]["book"]
        assert fig["metrics"]["n_trials"] == 2
        assert fig["days"] > 200 and fig["start"] >= "2018-01-01"
        assert abs(fig["exposure"]["net"]) < 1e-9  # dollar-neutral (no cap binds at 1e4)
        assert fig["relative"]["benchmark"].startswith("cash")
        assert [r["capital"] for r in fig["capacity"]] == [1e6, 1e9]
        for key in ("ic", "quantiles", "turnover", "capm", "drawdowns"):
            assert fig[key] is not None
    on_disk = json.loads(Path(result["path"]).read_text())
    assert on_disk["variants"].keys() == result["variants"].keys()
    models = load_models(discover(Path(result["path"]).parent / "models"))
    assert set(models) == {"net", "gbm"}
    x = np.zeros((3, models["gbm"].window, models["gbm"].n_features), dtype=np.float32)
    for m in models.values():
        assert m.predict(x).shape == (3,)
    again = run_universe(s, variants=["gbm"], export=False)
    assert again["trials"]["n"] == 2  # the same configuration on the same data counts once


def test_search_trials_enter_the_ledger_and_deflate_the_best(
        settings: Callable[..., Settings], files: list[Path]) -> None:
    from finmlops.research import run_search, run_universe
    from finmlops.tracking import read_trials

    s = _settings(settings, files)
    run_universe(s, export=False)
    summary = run_search(s)
    assert summary["ran"] == 2 and summary["optuna_trials"] == 2
    n = summary["trials"]["n"]
    assert n == 4  # two books of the study plus two search trials
    assert summary["best"]["book"]["n_trials"] == n
    assert summary["trials"]["pbo"] is not None and 0 <= summary["trials"]["pbo"]["pbo"] <= 1
    assert sum(summary["trials"]["sharpe_histogram"]["counts"]) == n
    children = [r for r in read_trials(s) if r.name.startswith("search/")]
    assert len(children) == 2
    more = run_search(s, trials=1)
    assert more["optuna_trials"] == 3 and more["trials"]["n"] == 5


def test_cli_one_line_for_a_universe_without_files(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from finmlops.cli import main

    monkeypatch.setenv("FINMLOPS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["universe"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: universe.files is empty: name the bar CSVs of the universe "
                   "(e.g. universe.files: [sp500.csv, SPY.csv])"]
