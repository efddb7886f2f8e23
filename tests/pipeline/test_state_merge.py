"""The run state under concurrent writers: stage outputs merge per key, under a lock, so
parallel pods (or processes) on one FINMLOPS_HOME never lose each other's entries."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from finmlops.config import load_settings
from finmlops.pipeline import (
    RunContext,
    SilentReporter,
    Stage,
    StageResult,
    load_state,
    merge_outputs,
    merge_state,
    run_stages,
    save_state,
)
from finmlops.pipeline.runner import lock_path, state_path


def train_a(ctx: RunContext) -> StageResult:
    return StageResult("a", {"trained": {"a": {"run_id": "ra", "metrics": {"n": 1}}}})


def train_b(ctx: RunContext) -> StageResult:
    seen = sorted(ctx.state.get("trained", {}))
    return StageResult(f"saw {seen}", {"trained": {"b": {"run_id": "rb"}}, "dataset_version": "v2"})


def test_merge_outputs_merges_dicts_per_key_and_replaces_the_rest() -> None:
    base: dict[str, Any] = {
        "trained": {"a": {"x": 1, "y": 2}, "b": {"x": 3}}, "dataset_version": "v1",
        "stages": {"ingest": {"seconds": 1}}}
    out = merge_outputs(base, {"trained": {"a": {"x": 9}, "gone": None, "b": None},
                               "dataset_version": "v2", "stages": {"train": {"seconds": 2}}})
    # A variant's entry is replaced whole (a retrain's entry has no stale fields); None drops.
    assert out == {"trained": {"a": {"x": 9}}, "dataset_version": "v2",
                   "stages": {"ingest": {"seconds": 1}, "train": {"seconds": 2}}}
    assert base["trained"]["b"] == {"x": 3}  # inputs unchanged


entries = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]),
                          st.dictionaries(st.text(max_size=3), st.integers()), max_size=4)


@given(base=entries, first=entries, second=entries)
def test_merges_of_disjoint_variants_commute(base: dict[str, Any], first: dict[str, Any],
                                             second: dict[str, Any]) -> None:
    second = {k: v for k, v in second.items() if k not in first}
    start = {"trained": base}
    one = merge_outputs(merge_outputs(start, {"trained": first}), {"trained": second})
    two = merge_outputs(merge_outputs(start, {"trained": second}), {"trained": first})
    assert one == two
    assert one["trained"] == {**base, **first, **second}


def test_two_commands_each_training_a_variant_keep_both(tmp_path: Path) -> None:
    s = load_settings(environ={"FINMLOPS_HOME": str(tmp_path)})
    save_state(s, {"dataset_version": "v1", "features": {"path": "f.parquet"}})
    run_stages(s, [Stage("train", f"{__name__}:train_a", "a")], SilentReporter())
    rep = SilentReporter()
    state = run_stages(s, [Stage("train", f"{__name__}:train_b", "b")], rep)
    assert set(state["trained"]) == {"a", "b"}
    assert ("done", "train: saw ['a']") in rep.events
    on_disk = load_state(s)
    assert on_disk == state
    assert on_disk["trained"]["a"]["metrics"] == {"n": 1}
    assert on_disk["features"] == {"path": "f.parquet"} and on_disk["dataset_version"] == "v2"
    assert lock_path(s).parent == state_path(s).parent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]


def test_a_stage_sees_what_a_concurrent_writer_merged_meanwhile(tmp_path: Path) -> None:
    s = load_settings(environ={"FINMLOPS_HOME": str(tmp_path)})

    def stage_hook(ctx: RunContext) -> StageResult:  # another pod finishes while we train
        merge_state(s, {"trained": {"other": {"run_id": "ro"}}})
        return train_a(ctx)

    globals()["stage_hook"] = stage_hook
    try:
        state = run_stages(s, [Stage("train", f"{__name__}:stage_hook", "x")], SilentReporter())
    finally:
        del globals()["stage_hook"]
    assert set(state["trained"]) == {"a", "other"} == set(load_state(s)["trained"])


WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from finmlops.config import load_settings
    from finmlops.pipeline import merge_state

    home, variant, rounds, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    settings = load_settings(environ={"FINMLOPS_HOME": home})
    while not go.exists():
        time.sleep(0.005)
    for k in range(rounds):
        merge_state(settings, {"trained": {f"{variant}-{k}": {"run_id": f"{variant}/{k}"}},
                               "stages": {variant: {"round": k}}})
""")


def test_parallel_processes_merging_different_variants_lose_nothing(tmp_path: Path) -> None:
    home, go = tmp_path / "home", tmp_path / "go"
    home.mkdir()
    s = load_settings(environ={"FINMLOPS_HOME": str(home)})
    save_state(s, {"trained": {"existing": {"run_id": "r0"}}})
    variants, rounds = [f"v{i}" for i in range(5)], 25
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(home), v, str(rounds), str(go)])
             for v in variants]
    try:
        go.touch()  # start together, so the read-merge-write cycles overlap
        assert [p.wait(timeout=120) for p in procs] == [0] * len(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    state = json.loads(state_path(s).read_text())
    expected = {"existing"} | {f"{v}-{k}" for v in variants for k in range(rounds)}
    assert set(state["trained"]) == expected
    assert state["stages"] == {v: {"round": rounds - 1} for v in variants}
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]  # no temp files left
