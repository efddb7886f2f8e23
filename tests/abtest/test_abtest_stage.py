"""The ``abtest`` stage end to end: bundled bars, tiny ONNX models, the real service on
loopback, the replay over HTTP, the decision and ``abtest.json``."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finmlops.config import Settings
from finmlops.contracts import AbtestSummary
from finmlops.errors import StageError
from finmlops.pipeline import RunContext, SilentReporter

pytestmark = pytest.mark.integration


def stage_settings(settings: Callable[..., Settings], **extra: Any) -> Settings:
    return settings(data__start=dt.date(2019, 1, 1), data__end=dt.date(2020, 6, 30),
                    train__cutoff=dt.date(2019, 12, 31), experiment__shadow=True,
                    abtest__min_samples=20, **extra)


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


def test_stage_replays_decides_and_writes_abtest_json(
        tmp_path: Path, settings: Callable[..., Settings], tiny_model: Callable[..., Path],
        registered_arms: Callable[..., dict[str, Any]]) -> None:
    from finmlops.pipeline._abtest import run

    s = stage_settings(settings)
    reporter = SilentReporter()
    state = prepared(s, tmp_path, tiny_model, registered_arms)
    assert {a: r["version"] for a, r in state["registered"].items()} == {"baseline": "2",
                                                                         "enhanced": "3"}
    ctx = RunContext(settings=s, reporter=reporter, state=state)
    result = run(ctx)
    out = result.outputs["abtest"]
    data = json.loads(Path(out["path"]).read_text())
    assert AbtestSummary.model_validate(data).to_json() == data  # the typed contract, exactly
    # ~125 scored days split 70/30: the net-return difference is not significant at alpha
    # (p ~ 0.06 on the bundled history), so the experiment goes on
    assert out["decision"] == data["decision"]["action"] == "continue"
    numbers = data["decision"]["numbers"]
    assert numbers["metric"] == "net_return"
    assert numbers["net_return"]["p_value"] > numbers["alpha"]
    assert Path(out["path"]).parent.parent == (tmp_path / "abtest").resolve()
    replay = data["replay"]
    assert replay["start"] == "2020-01-01" and replay["days"] == replay["requests"] > 100
    # filled at the next open, sold at the open after: the last two days' outcomes are unknown
    assert replay["feedback"] == replay["requests"] - 2
    assert sum(a["n"] for a in data["arms"].values()) == replay["feedback"]
    assert set(data["arms"]) == {"baseline", "enhanced"}
    assert data["decision"]["action"] == out["decision"]
    assert data["paired_decision"] is not None
    split, paired = data["timeline"]["split"], data["timeline"]["paired"]
    assert len(split["days"]) == len(paired["days"]) == replay["days"] - 2
    assert {"p_value", "lower", "upper", "action"} <= set(split)
    assert set(data["days_to_decision"]) == {"split", "paired"}
    covid = data["stress_windows"]["covid_crash"]
    assert covid["days"] == 24 and covid["paired"]["n"] == 24
    assert "gfc_2008" not in data["stress_windows"]
    assert any(kind == "progress" and "replaying" in msg for kind, msg in reporter.events)
    assert result.summary.startswith(out["decision"])
    # the evidence is the run's own ledger, beside abtest.json, holding every request
    from finmlops.ledger import open_ledger

    assert replay["ledger"] == f"sqlite:///{Path(out['path']).parent / 'ledger.db'}"
    assert data["experiment_version"] == 1
    assert data["weights"] == {"1": {"baseline": 70.0, "enhanced": 30.0}}
    assert data["assignments"] == {"1": replay["served"]}
    ledger = open_ledger(replay["ledger"], create=False)
    try:
        assert ledger.counts() == {"predictions": replay["requests"],
                                   "scores": 2 * replay["requests"],
                                   "feedback": replay["feedback"]}
        predictions = ledger.predictions("direction-ab")
    finally:
        ledger.close()
    # served from the registry: each prediction under the version register created
    assert {(p["arm"], p["model_version"]) for p in predictions} == {("baseline", "2"),
                                                                     ("enhanced", "3")}


def test_stage_needs_registered_versions_of_every_arm(
        tmp_path: Path, settings: Callable[..., Settings], tiny_model: Callable[..., Path],
        registered_arms: Callable[..., dict[str, Any]]) -> None:
    from finmlops.pipeline._abtest import run

    s = stage_settings(settings)
    state = prepared(s, tmp_path, tiny_model, registered_arms)
    del state["registered"]["enhanced"]
    with pytest.raises(StageError, match=re.escape(
            "no registered version of arm(s) enhanced: run `finmlops run --until register`")):
        run(RunContext(settings=s, reporter=SilentReporter(), state=state))


def test_stage_needs_registered_models(settings: Callable[..., Settings]) -> None:
    from finmlops.pipeline._abtest import run

    ctx = RunContext(settings=stage_settings(settings), reporter=SilentReporter(), state={})
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
