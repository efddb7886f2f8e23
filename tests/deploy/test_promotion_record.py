"""Applying a promotion record: the declared aliases on a real MLflow registry (SQLite), the
weights as a ledger version (SQLite), idempotently, and undone by the record a revert restores;
and the planning rule that turns an A/B action into a declaration."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from experiment_support import experiment_in_force
from finmlops.cli import main
from finmlops.config import ExperimentSettings, Settings
from finmlops.deploy import PromotionFile, PromotionState
from finmlops.errors import ModelNotFoundError
from finmlops.tracking import (
    CHALLENGER,
    CHAMPION,
    DECLARED,
    PREVIOUS_CHAMPION,
    history,
    planned_aliases,
    resolve,
    sync_aliases,
)

VERSIONS = st.sampled_from(["1", "2", "3", "4"])


@given(champion=st.none() | VERSIONS, previous=st.none() | VERSIONS,
       challenger=st.none() | VERSIONS, pair=st.lists(VERSIONS, min_size=2, max_size=2,
                                                      unique=True))
def test_planned_aliases_follow_the_promotion_rules(champion: str | None,
                                                    previous: str | None,
                                                    challenger: str | None,
                                                    pair: list[str]) -> None:
    current = {k: v for k, v in ((CHAMPION, champion), (PREVIOUS_CHAMPION, previous),
                                 (CHALLENGER, challenger), ("baseline", "1")) if v is not None}
    chal, ref = pair
    promoted, rejected = planned_aliases(current, "promote", chal, ref)
    assert set(promoted) <= set(DECLARED) and not rejected
    assert promoted[CHAMPION] == chal
    if champion is not None and champion != chal:
        assert promoted[PREVIOUS_CHAMPION] == champion
    elif previous is not None:
        assert promoted.get(PREVIOUS_CHAMPION) == previous
    rolled, rejected = planned_aliases(current, "rollback", chal, ref)
    assert rejected == [chal] and set(rolled) <= set(DECLARED)
    if champion == chal:
        assert rolled[CHAMPION] == ref  # a promoted challenger proven worse: back to ref
    else:
        assert rolled.get(CHAMPION) == champion  # the champion does not move
    kept, rejected = planned_aliases(current, "continue", chal, ref)
    assert kept == {k: v for k, v in current.items() if k in DECLARED} and not rejected


def _aliases(settings: Settings) -> dict[str, str]:
    from finmlops.tracking import list_models

    return {a: row["version"] for row in list_models(settings) for a in row["aliases"]}


def test_sync_makes_the_registry_match_the_declaration(registry: Callable[..., Settings]
                                                       ) -> None:
    settings = registry()
    assert _aliases(settings) == {"champion": "1", "baseline": "1", "challenger": "2",
                                  "enhanced": "2"}
    out = sync_aliases(settings, {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}, rejected=[],
                       actor="t", reason="promote: test", decision={"test": "paired"})
    assert out["changed"] and out["champion"] == "2" and out["previous_champion"] == "1"
    assert _aliases(settings) == {"champion": "2", "previous-champion": "1", "baseline": "1",
                                  "challenger": "2", "enhanced": "2"}
    assert resolve(settings, "2").tags["promoted_by"] == "t"
    assert history(settings)[-1]["action"] == "sync"
    events = len(history(settings))
    again = sync_aliases(settings, {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}, rejected=[],
                         actor="t", reason="promote: test")
    assert not again["changed"] and len(history(settings)) == events  # idempotent
    # The record a revert restores: champion back, previous-champion gone.
    back = sync_aliases(settings, {CHAMPION: "1"}, rejected=[], actor="t", reason="record")
    assert back["changed"]
    assert _aliases(settings) == {"champion": "1", "baseline": "1", "challenger": "2",
                                  "enhanced": "2"}
    # A rejection drops the challenger alias from that version and tags it.
    sync_aliases(settings, {CHAMPION: "1"}, rejected=["2"], actor="t", reason="rollback")
    assert CHALLENGER not in _aliases(settings)
    assert resolve(settings, "2").tags["rolled_back"] == "true"
    with pytest.raises(ModelNotFoundError, match="no version 9"):
        sync_aliases(settings, {CHAMPION: "9"}, rejected=[], actor="t", reason="x")
    with pytest.raises(ValueError, match="not a declared alias"):
        sync_aliases(settings, {"baseline": "2"}, rejected=[], actor="t", reason="x")


def _record(tmp_path: Path, state: PromotionState | None, environment: str = "prod") -> Path:
    path = tmp_path / "promotion.json"
    path.write_text(PromotionFile(environment=environment, state=state).to_json())
    return path


def _state(champion: str, weights: tuple[int, int], previous: str | None = None,
           model: str = "ibb-direction") -> PromotionState:
    aliases = {CHAMPION: champion, **({PREVIOUS_CHAMPION: previous} if previous else {})}
    return PromotionState(
        registered_model=model, aliases=aliases, versions={"baseline": "1", "enhanced": "2"},
        experiment=ExperimentSettings(candidates=[{"name": "baseline", "weight": weights[0]},
                                                  {"name": "enhanced", "weight": weights[1]}]),
        action="promote", reason="r", actor="a", decided_at="2020-01-01T00:00:00")


@pytest.fixture
def cli_home(registry: Callable[..., Settings], tmp_path: Path) -> tuple[Settings, Path]:
    """A registry (v1 baseline champion, v2 enhanced) and a ledger seeded from the config;
    a config file for the CLI naming both."""
    from finmlops.ledger import open_ledger

    settings = registry()
    ledger = open_ledger(settings.ledger_url)
    try:
        ledger.ensure_experiment(settings.experiment)
    finally:
        ledger.close()
    cfg = tmp_path / "finmlops.yaml"
    cfg.write_text(yaml.safe_dump({"home": str(settings.home)}))
    return settings, cfg


def test_promotion_apply_moves_aliases_and_weights_once(
        cli_home: tuple[Settings, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings, cfg = cli_home
    record = _record(tmp_path, _state("2", (30, 70), previous="1"))
    out = tmp_path / "outputs"
    assert main(["--config", str(cfg), "--outputs", str(out), "promotion", "apply", "--file",
                 str(record), "--actor", "argo:x", "--json"]) == 0
    applied = json.loads(capsys.readouterr().out)
    assert applied["changed"] and (out / "changed").read_text() == "true"
    assert _aliases(settings)[CHAMPION] == "2"
    version, weights, source = experiment_in_force(settings)
    assert (weights, source) == ({"baseline": 30, "enhanced": 70}, "gitops")
    # Again: nothing changes (a sync without a promotion runs the hook too).
    assert main(["--config", str(cfg), "--outputs", str(out), "promotion", "apply",
                 "--file", str(record)]) == 0
    assert "already in force" in capsys.readouterr().out
    assert (out / "changed").read_text() == "false"
    assert experiment_in_force(settings)[0] == version
    # The record a revert restores puts the earlier state back, as a new ledger version.
    assert main(["--config", str(cfg), "promotion", "apply", "--file",
                 str(_record(tmp_path, _state("1", (70, 30))))]) == 0
    assert _aliases(settings)[CHAMPION] == "1" and PREVIOUS_CHAMPION not in _aliases(settings)
    assert experiment_in_force(settings)[0] == version + 1
    assert experiment_in_force(settings)[1] == {"baseline": 70, "enhanced": 30}


def test_promotion_apply_of_the_seed_and_of_a_foreign_record(
        cli_home: tuple[Settings, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings, cfg = cli_home
    assert main(["--config", str(cfg), "promotion", "apply", "--file",
                 str(_record(tmp_path, None))]) == 0
    assert "nothing declared yet" in capsys.readouterr().out
    assert _aliases(settings)[CHAMPION] == "1"
    assert main(["--config", str(cfg), "promotion", "apply", "--file", str(
        _record(tmp_path, _state("2", (30, 70), model="qqq-direction")))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the record declares model 'qqq-direction'")
    assert err.count("\n") == 1
    on_cluster = tmp_path / "cluster.yaml"
    on_cluster.write_text(yaml.safe_dump({"home": str(settings.home), "gitops": {
        "enabled": True, "environment": "dev"}}))
    assert main(["--config", str(on_cluster), "promotion", "apply", "--file", str(
        _record(tmp_path, _state("2", (30, 70))))]) == 2
    assert "the record is environment 'prod''s; this is 'dev'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1, "environment": "prod", "state": {"aliases": 3}}')
    assert main(["--config", str(cfg), "promotion", "apply", "--file", str(bad)]) == 2
    assert "not a promotion record" in capsys.readouterr().err
    assert _aliases(settings)[CHAMPION] == "1"  # nothing moved


def test_promotion_show_reads_the_configmap_file(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from finmlops.deploy.gitops import render_file

    path = tmp_path / "promotion.yaml"
    path.write_text(render_file(Settings(), PromotionFile(environment="prod",
                                                          state=_state("2", (30, 70), "1"))))
    assert main(["promotion", "show", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "prod: promote by a" in out and "baseline 30, enhanced 70" in out


def test_decide_apply_without_gitops_moves_aliases_directly(
        cli_home: tuple[Settings, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Locally (gitops off) ``decide --apply`` never touches Git: the branch it takes."""
    import finmlops.deploy.gitops as gitops

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decide --apply proposed a Git change with gitops off")

    monkeypatch.setattr(gitops, "propose", refuse)
    from finmlops.contracts import DecisionNumbers, DecisionRecord
    from finmlops.pipeline import Chosen, apply_decision

    settings, _ = cli_home
    numbers = DecisionNumbers(metric="net_return", alpha=0.05, min_effect=0.0,
                              challenger="enhanced", reference="baseline")
    chosen = Chosen("paired", DecisionRecord(action="promote", reason="r", numbers=numbers))
    out = apply_decision(settings, chosen, actor="t", ledger_url=settings.ledger_url).to_json()
    assert out["champion"] == "2" and out["experiment"]["published"]
