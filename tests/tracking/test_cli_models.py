"""``finmlops models list|show|history`` and ``finmlops promote`` through the real entry point."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import finmlops.cli
from finmlops.cli import main
from finmlops.config import Settings, public_dict
from finmlops.models import TrainedVariant
from finmlops.tracking import log_training, register, resolve

MakeTrained = Callable[..., TrainedVariant]


@pytest.fixture
def home(settings: Settings, make_trained: MakeTrained, monkeypatch: pytest.MonkeyPatch,
         tmp_path: Path) -> Settings:
    """Two registered arms; the CLI pointed at this home (and the models commands wired)."""
    import typer.main

    for variant, accuracy in (("baseline", 0.52), ("enhanced", 0.56)):
        trained = make_trained(variant, settings, accuracy=accuracy)
        run_id = log_training(settings, trained, public_dict(settings))
        register(settings, run_id, variant, trained.data_version)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINMLOPS_CONFIG", raising=False)
    monkeypatch.setenv("FINMLOPS_HOME", str(settings.home))
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("COLUMNS", "160")
    if "models" not in typer.main.get_command(finmlops.cli.app).commands:  # type: ignore[attr-defined]
        from finmlops.cli import models

        app = typer.Typer(pretty_exceptions_enable=False)
        models.register(app)
        monkeypatch.setattr(finmlops.cli, "app", app)
    return settings


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_models_list_json_and_table(home: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "models", "list", "--json")
    assert data["registered_model"] == "ibb-direction"
    rows = data["versions"]
    assert [(r["version"], r["variant"], r["aliases"]) for r in rows] == [
        ("2", "enhanced", ["challenger", "enhanced"]), ("1", "baseline", ["baseline", "champion"])]
    assert rows[0]["accuracy"] == pytest.approx(0.56)
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    assert "champion" in table and "0.560 [0.530, 0.590]" in table


def test_models_show_by_alias(home: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "models", "show", "champion", "--json")
    assert (data["version"], data["variant"]) == ("1", "baseline")
    assert data["metrics"]["accuracy"] == pytest.approx(0.52)
    assert main(["models", "show", "nope"]) == 6
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "alias 'nope'" in err


def test_promote_needs_a_reason_and_confirmation(home: Settings,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["promote", "--yes"]) == 2
    assert "--reason" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    main(["promote", "--reason", "looks good"])
    assert "aborted: nothing changed" in capsys.readouterr().err
    assert resolve(home, "champion").version == "1"

    result = _json(capsys, "promote", "--reason", "looks good", "--yes", "--json")
    assert (result["champion"], result["previous_champion"], result["actor"]) == ("2", "1",
                                                                                  "alice")
    assert resolve(home, "champion").tags["promoted_by"] == "alice"
    assert main(["promote", "--reason", "again", "--yes"]) == 0
    assert "already the champion" in capsys.readouterr().out
    events = _json(capsys, "models", "history", "--json")
    assert [e["action"] for e in events] == ["register", "register", "promote"]
    assert events[-1]["reason"] == "looks good"
