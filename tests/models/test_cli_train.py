"""``finmlops train``: runs ingest (if needed), features and train; prints the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from finmlops.cli import train as train_cli

CONFIG = {
    "data": {"start": "2008-01-01", "end": "2013-12-31"},
    "train": {
        "min_train_years": 3, "cutoff": "2011-12-31", "torch_threads": 1,
        "variants": {
            "baseline": {"architecture": "mlp", "window": 3, "hidden": 8, "epochs": 2,
                         "patience": 1, "batch_size": 512},
            "enhanced": {"architecture": "tcn", "features": "full", "window": 5, "hidden": 8,
                         "epochs": 2, "patience": 1, "batch_size": 512},
        },
    },
}


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = {"config": None}

    train_cli.register(app)
    return app


@pytest.mark.slow
def test_train_prints_models_and_baselines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "finmlops.yaml").write_text(yaml.safe_dump({"home": str(tmp_path / "h"),
                                                            **CONFIG}))
    runner = CliRunner()
    result = runner.invoke(make_app(), ["train", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    names = [r["name"] for r in data["rows"]]
    assert names == ["baseline", "enhanced", "always up", "yesterday's direction"]
    assert all(0 <= r["accuracy_ci_low"] <= r["accuracy"] <= r["accuracy_ci_high"] <= 1
               for r in data["rows"])
    models = [r for r in data["rows"] if r["kind"] == "model"]
    assert all(0 <= r["folds_not_improved"] <= r["folds"] for r in models)
    table = runner.invoke(make_app(), ["train"])  # cached: only prints
    assert table.exit_code == 0, table.output
    assert "always up" in table.stdout and "95% CI" in table.stdout
    assert "folds not improved" in table.stdout
    for r in models:  # "k/n" in the variant's row
        line = next(x for x in table.stdout.splitlines() if f" {r['name']} " in x)
        assert f"{int(r['folds_not_improved'])}/{int(r['folds'])}" in line


def test_the_folds_not_improved_cell_counts_the_folds() -> None:
    row = {"folds_not_improved": 3.0, "folds": 21.0}
    assert train_cli._cell(row, "folds_not_improved", "of_folds") == "3/21"
    assert train_cli._cell({"accuracy": 0.5}, "folds_not_improved", "of_folds") == "-"


@pytest.mark.slow
def test_train_one_variant_at_a_time_keeps_the_others(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from finmlops.config import load_settings
    from finmlops.pipeline import load_state

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "finmlops.yaml"
    config.write_text(yaml.safe_dump({"home": str(tmp_path / "h"), **CONFIG}))
    runner = CliRunner()
    first = runner.invoke(make_app(), ["train", "--variant", "enhanced", "--json"])
    assert first.exit_code == 0, first.output
    assert [r["name"] for r in json.loads(first.stdout)["rows"]] == [
        "enhanced", "always up", "yesterday's direction"]
    second = runner.invoke(make_app(), ["train", "--variant", "baseline", "--json"])
    assert second.exit_code == 0, second.output
    assert set(json.loads(second.stdout)["trained"]) == {"baseline"}
    state = load_state(load_settings(config))
    assert set(state["trained"]) == {"baseline", "enhanced"}
    assert all(info["run_id"] for info in state["trained"].values())


def test_unknown_variant_fails_before_any_work(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from finmlops.cli import main

    config = tmp_path / "finmlops.yaml"
    config.write_text(yaml.safe_dump({"home": str(tmp_path / "h"), **CONFIG}))
    assert main(["--config", str(config), "train", "--variant", "wide"]) == 2
    assert capsys.readouterr().err == (
        "error: unknown variant 'wide'; train.variants has: baseline, enhanced\n")
    assert not (tmp_path / "h").exists()  # nothing ingested, no state written
