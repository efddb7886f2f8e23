"""``finmlops register`` through the real entry point: the register stage on the run state
that ``finmlops train`` (or the workflow's train pods) left in FINMLOPS_HOME."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finmlops.cli import main
from finmlops.config import Settings
from finmlops.models import TrainedVariant
from finmlops.pipeline import load_state, merge_state
from finmlops.tracking import log_trained_variants, resolve

MakeTrained = Callable[..., TrainedVariant]


@pytest.fixture
def cli_home(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.chdir(tmp_path)  # no ./finmlops.yaml
    monkeypatch.delenv("FINMLOPS_CONFIG", raising=False)
    monkeypatch.setenv("FINMLOPS_HOME", str(settings.home))
    monkeypatch.setenv("COLUMNS", "160")
    return settings


def test_register_prints_versions_and_aliases(cli_home: Settings, make_trained: MakeTrained,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    settings = cli_home
    trained = [make_trained("enhanced", settings), make_trained("baseline", settings)]
    run_ids = log_trained_variants(settings, trained)
    # As two parallel train pods leave it: one merge per variant.
    for t in trained:
        entry = t.model_copy(update={"run_id": run_ids[t.variant]}).to_json()
        merge_state(settings, {"dataset_version": t.data_version,
                               "trained": {t.variant: entry}})
    assert main(["register", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["registered_model"] == "ibb-direction"
    assert {v: (r["version"], r["aliases"]) for v, r in data["registered"].items()} == {
        "baseline": ("1", ["baseline", "champion"]),
        "enhanced": ("2", ["challenger", "enhanced"])}
    assert load_state(settings)["registered"] == data["registered"]
    assert resolve(settings, "champion").run_id == run_ids["baseline"]
    # Again (a retried workflow step): no new versions, a readable table.
    assert main(["register"]) == 0
    out = capsys.readouterr().out
    assert "ibb-direction v1  baseline" in out and "aliases: baseline, champion" in out
    assert "ibb-direction v2  enhanced" in out


def test_register_before_train_names_the_stage_to_run(
        cli_home: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["register"]) == 9  # StageError: the user must run train first
    err = capsys.readouterr().err
    assert err.startswith("error: no 'trained' yet") and "train" in err
    assert len(err.strip().splitlines()) == 1
