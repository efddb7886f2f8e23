"""The stage runner: order, selection, state persisted between commands, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finmlops.config import load_settings
from finmlops.errors import StageError
from finmlops.pipeline import (
    STAGES,
    RunContext,
    SilentReporter,
    Stage,
    StageResult,
    load_state,
    run_stages,
    select,
)

CALLS: list[str] = []


def first(ctx: RunContext) -> StageResult:
    CALLS.append("first")
    return StageResult("made x", {"dataset_version": "1"})


def second(ctx: RunContext) -> StageResult:
    CALLS.append("second")
    return StageResult("used x", {"y": int(ctx.run_state().need_dataset_version()) + 1})


TOY = (
    Stage("first", f"{__name__}:first", "makes a dataset version"),
    Stage("second", f"{__name__}:second", "needs it"),
)


def test_stages_run_in_order_and_state_persists(tmp_path: Path) -> None:
    s = load_settings(environ={"FINMLOPS_HOME": str(tmp_path)})
    CALLS.clear()
    rep = SilentReporter()
    state = run_stages(s, TOY, rep)
    assert CALLS == ["first", "second"]
    assert state["y"] == 2
    assert [e for e in rep.events if e[0] != "progress"] == [
        ("start", "first"), ("done", "first: made x"), ("start", "second"),
        ("done", "second: used x")]
    on_disk = json.loads((tmp_path / "state.json").read_text())
    assert on_disk["y"] == 2 and set(on_disk["stages"]) == {"first", "second"}
    # A later command (a new process) picks up where the first left off.
    CALLS.clear()
    assert run_stages(s, TOY[1:], SilentReporter())["y"] == 2
    assert CALLS == ["second"]


def test_missing_input_names_the_stage_to_run(tmp_path: Path) -> None:
    s = load_settings(environ={"FINMLOPS_HOME": str(tmp_path)})
    with pytest.raises(StageError, match="--until ingest"):
        run_stages(s, TOY[1:], SilentReporter())
    assert load_state(s).get("y") is None


def test_select() -> None:
    assert [s.name for s in select(TOY, until="first")] == ["first"]
    assert [s.name for s in select(TOY, start="second")] == ["second"]
    assert [s.name for s in select(TOY, only=["second"])] == ["second"]
    with pytest.raises(StageError, match="unknown stage 'nope'"):
        select(TOY, until="nope")


def test_every_registered_stage_resolves_to_a_function() -> None:
    for stage in STAGES:
        assert callable(stage.load()), stage.name


def test_cache_dir_is_content_addressed(tmp_path: Path) -> None:
    s = load_settings(environ={"FINMLOPS_HOME": str(tmp_path)})
    ctx = RunContext(settings=s, reporter=SilentReporter())
    assert ctx.cache_dir("train", {"a": 1, "b": 2}) == ctx.cache_dir("train", {"b": 2, "a": 1})
    assert ctx.cache_dir("train", {"a": 1}) != ctx.cache_dir("train", {"a": 2})


def test_until_before_from_names_the_order() -> None:
    with pytest.raises(StageError, match="'first' \\(until\\) comes before 'second' \\(from\\)"):
        select(TOY, start="second", until="first")


@pytest.mark.parametrize("content", ["{", "[1, 2]", "\xff\xfe"])
def test_a_corrupt_state_file_is_a_clear_error_and_stays(tmp_path: Path, content: str) -> None:
    s = load_settings(environ={"FINMLOPS_HOME": str(tmp_path)})
    (tmp_path / "state.json").write_bytes(content.encode("latin-1"))
    with pytest.raises(StageError, match="fix or remove it"):
        run_stages(s, TOY, SilentReporter())
    assert (tmp_path / "state.json").read_bytes() == content.encode("latin-1")
