"""The ``abtest`` stage end to end: bundled bars, tiny ONNX models, the real service on
loopback, the replay over HTTP, the decision and ``abtest.json``."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from finmlops.config import Settings
from finmlops.contracts import AbtestSummary
from finmlops.errors import StageError
from finmlops.ledger import Ledger, open_ledger
from finmlops.pipeline import RunContext, SilentReporter, StageResult

pytestmark = pytest.mark.integration


def stage_settings(home: Path) -> Settings:
    return Settings(home=home, data={"start": dt.date(2019, 1, 1), "end": dt.date(2020, 6, 30)},
                    train={"cutoff": dt.date(2019, 12, 31)}, experiment={"shadow": True},
                    abtest={"min_samples": 20})


def prepared(s: Settings, tmp_path: Path, tiny_model: Callable[..., Path],
             registered_arms: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Ingested bars and two tiny models registered by the register stage, after an older
    baseline: baseline is v2, enhanced v3."""
    from finmlops.data import ingest
    from finmlops.features import feature_names

    version = ingest(s).version
    names = feature_names("full", s.features.context)
    dirs = {arm: tiny_model(tmp_path / "models" / arm, arm, 20, names, w)
            for arm, w in (("baseline", 60.0), ("enhanced", -60.0))}
    return {"dataset_version": version,
            **registered_arms(s, dirs, earlier=("baseline",))}


@dataclass(frozen=True)
class StageRun:
    """One finished run of the stage on :func:`prepared` state, in a home of its own."""

    home: Path
    state: dict[str, Any]
    reporter: SilentReporter
    result: StageResult

    @property
    def out(self) -> dict[str, Any]:
        out: dict[str, Any] = self.result.outputs["abtest"]
        return out

    @property
    def data(self) -> dict[str, Any]:
        """``abtest.json``."""
        data: dict[str, Any] = json.loads(Path(self.out["path"]).read_text())
        return data

    @contextmanager
    def ledger(self) -> Iterator[Ledger]:
        """The run's own ledger (the evidence), open for reading."""
        ledger = open_ledger(self.data["replay"]["ledger"], create=False)
        try:
            yield ledger
        finally:
            ledger.close()


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[..., Path],
          mlflow_template: Path) -> StageRun:
    from finmlops.pipeline._abtest import run
    from registry_support import register_arms

    home = tmp_path_factory.mktemp("stage")
    shutil.copyfile(mlflow_template, home / "mlflow.db")
    s = stage_settings(home)
    state = prepared(s, home, tiny_model, register_arms)
    reporter = SilentReporter()
    result = run(RunContext(settings=s, reporter=reporter, state=dict(state)))
    return StageRun(home, state, reporter, result)


def test_the_arms_are_registered_after_an_older_baseline(stage: StageRun) -> None:
    assert {a: r["version"] for a, r in stage.state["registered"].items()} == {"baseline": "2",
                                                                               "enhanced": "3"}


def test_abtest_json_is_the_typed_contract_exactly(stage: StageRun) -> None:
    assert AbtestSummary.model_validate(stage.data).to_json() == stage.data


def test_abtest_json_is_written_under_the_homes_abtest_directory(stage: StageRun) -> None:
    assert Path(stage.out["path"]).parent.parent == (stage.home / "abtest").resolve()


def test_an_insignificant_net_return_difference_continues_the_experiment(
        stage: StageRun) -> None:
    """~125 scored days split 70/30: the net-return difference is not significant at alpha
    (p ~ 0.06 on the bundled history), so the experiment goes on."""
    assert stage.out["decision"] == stage.data["decision"]["action"] == "continue"
    numbers = stage.data["decision"]["numbers"]
    assert numbers["metric"] == "net_return"
    assert numbers["net_return"]["p_value"] > numbers["alpha"]


def test_the_replay_sends_one_request_per_day_from_the_cutoff(stage: StageRun) -> None:
    replay = stage.data["replay"]
    assert replay["start"] == "2020-01-01" and replay["days"] == replay["requests"] > 100


def test_the_last_two_days_have_no_outcome_yet(stage: StageRun) -> None:
    """Filled at the next open, sold at the open after: the last two days' outcomes are
    unknown."""
    replay = stage.data["replay"]
    assert replay["feedback"] == replay["requests"] - 2


def test_every_outcome_counts_for_one_of_the_two_arms(stage: StageRun) -> None:
    data = stage.data
    assert sum(a["n"] for a in data["arms"].values()) == data["replay"]["feedback"]
    assert set(data["arms"]) == {"baseline", "enhanced"}


def test_the_paired_test_decides_too(stage: StageRun) -> None:
    assert stage.data["paired_decision"] is not None


def test_the_timelines_have_a_point_per_day_with_an_outcome(stage: StageRun) -> None:
    data = stage.data
    split, paired = data["timeline"]["split"], data["timeline"]["paired"]
    assert len(split["days"]) == len(paired["days"]) == data["replay"]["days"] - 2
    assert {"p_value", "lower", "upper", "action"} <= set(split)
    assert set(data["days_to_decision"]) == {"split", "paired"}


def test_only_stress_windows_inside_the_replay_are_reported(stage: StageRun) -> None:
    covid = stage.data["stress_windows"]["covid_crash"]
    assert covid["days"] == 24 and covid["paired"]["n"] == 24
    assert "gfc_2008" not in stage.data["stress_windows"]


def test_the_stage_reports_its_replay_progress(stage: StageRun) -> None:
    assert any(kind == "progress" and "replaying" in msg for kind, msg in stage.reporter.events)


def test_the_summary_starts_with_the_decision(stage: StageRun) -> None:
    assert stage.result.summary.startswith(stage.out["decision"])


def test_the_evidence_is_the_runs_own_ledger_beside_abtest_json(stage: StageRun) -> None:
    assert stage.data["replay"]["ledger"] == \
        f"sqlite:///{Path(stage.out['path']).parent / 'ledger.db'}"


def test_abtest_json_names_the_experiment_version_its_weights_and_assignments(
        stage: StageRun) -> None:
    data = stage.data
    assert data["experiment_version"] == 1
    assert data["weights"] == {"1": {"baseline": 70.0, "enhanced": 30.0}}
    assert data["assignments"] == {"1": data["replay"]["served"]}


def test_the_ledger_holds_every_request_both_scores_and_each_outcome(stage: StageRun) -> None:
    replay = stage.data["replay"]
    with stage.ledger() as ledger:
        counts = ledger.counts()
    assert counts == {"predictions": replay["requests"],
                              "scores": 2 * replay["requests"],
                              "feedback": replay["feedback"]}


def test_each_prediction_is_served_by_the_version_register_created(stage: StageRun) -> None:
    with stage.ledger() as ledger:
        predictions = ledger.predictions("direction-ab")
    assert {(p["arm"], p["model_version"]) for p in predictions} == {
        ("baseline", "2"), ("enhanced", "3")}


def test_stage_needs_registered_versions_of_every_arm(
        tmp_path: Path, tiny_model: Callable[..., Path],
        registered_arms: Callable[..., dict[str, Any]]) -> None:
    from finmlops.pipeline._abtest import run

    s = stage_settings(tmp_path)
    state = prepared(s, tmp_path, tiny_model, registered_arms)
    del state["registered"]["enhanced"]
    with pytest.raises(StageError, match=re.escape(
            "no registered version of arm(s) enhanced: run `finmlops run --until register`")):
        run(RunContext(settings=s, reporter=SilentReporter(), state=state))


def test_stage_needs_registered_models(tmp_path: Path) -> None:
    from finmlops.pipeline._abtest import run

    ctx = RunContext(settings=stage_settings(tmp_path), reporter=SilentReporter(), state={})
    with pytest.raises(StageError, match="finmlops run --until register"):
        run(ctx)


def test_replay_period_defaults_and_errors(settings: Callable[..., Settings]) -> None:
    from finmlops.abtest import replay_period

    assert replay_period(settings()) == (dt.date(2019, 1, 1), None)
    with pytest.raises(StageError, match="replay_start"):
        replay_period(settings(train__cutoff=None))
    with pytest.raises(StageError, match="empty"):
        replay_period(settings(abtest__replay_start=dt.date(2020, 1, 1),
                               abtest__replay_end=dt.date(2019, 1, 1)))


def test_replay_windows_use_only_bars_up_to_their_day(
        settings: Callable[..., Settings]) -> None:
    """Each replayed request is what a live client could have sent on its day: cutting the
    bars after day D changes no window up to D, and D's outcome is then unknown (no
    feedback is posted for it until its exit bar exists: two bars later, at the default next
    open fill)."""
    import numpy as np

    from finmlops.abtest import build_replay_input
    from finmlops.data import ingest, read_bars
    from finmlops.features import feature_names

    s = settings(data__start=dt.date(2019, 1, 1), data__end=dt.date(2019, 12, 31))
    ingest(s)
    bars = read_bars(s)
    names = feature_names("full", s.features.context)
    start = dt.date(2019, 9, 3)
    full = build_replay_input(s, bars, 20, names, start, None)
    day = full.dates[15]
    cut = build_replay_input(s, bars[bars["date"] <= np.datetime64(day)], 20, names, start,
                             None)
    assert list(cut.dates) == list(full.dates[:16])
    np.testing.assert_array_equal(cut.windows, full.windows[:16])
    assert s.evaluation.execution == "next_open"
    np.testing.assert_array_equal(cut.forward_returns[:14], full.forward_returns[:14])
    assert np.isnan(cut.forward_returns[14:16]).all()
    assert np.isfinite(full.forward_returns[14:16]).all()
