"""The trial ledger in a real MLflow store (SQLite): recorded once, read back exactly, and
every configuration the evaluate stage backtests deflates the next DSR."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finmlops.config import EvaluationSettings, Settings
from finmlops.errors import DataValidationError
from finmlops.pipeline import RunContext, SilentReporter
from finmlops.pipeline._evaluate import run
from finmlops.pipeline._ingest import run as ingest
from finmlops.tracking import configure, read_trials, record_trial, trial_id

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _returns(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    bench = rng.normal(3e-4, 0.01, n)
    return pd.DataFrame({"date": pd.bdate_range("2015-01-01", periods=n),
                         "net": bench + rng.normal(0, 0.003, n), "benchmark": bench,
                         "rf": np.full(n, 1e-4)})


def test_a_trial_is_recorded_once_and_read_back_exactly(tmp_path):
    settings = Settings(home=tmp_path / "home")
    cfg = {"variant": {"hidden": 24}, "evaluation": {"threshold": 0.5}}
    frame = _returns(1)
    parent = configure(settings).client.create_run(configure(settings).experiment_id)
    first = record_trial(settings, cfg, frame, name="baseline", data_version="v1",
                         parent_run_id=parent.info.run_id)
    assert record_trial(settings, dict(cfg), frame, name="again", data_version="v1") == first
    other = record_trial(settings, {**cfg, "evaluation": {"threshold": 0.55}}, _returns(2),
                         name="baseline", data_version="v1")
    assert other != first
    trials = read_trials(settings)
    assert [t.trial_id for t in trials] == [trial_id(cfg), trial_id(
        {**cfg, "evaluation": {"threshold": 0.55}})]
    got = trials[0]
    assert got.name == "baseline" and got.data_version == "v1" and got.config == cfg
    pd.testing.assert_frame_equal(got.returns, frame, check_dtype=False)
    run_ = configure(settings).client.get_run(first)
    assert run_.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert run_.data.params["evaluation.threshold"] == "0.5"
    assert run_.data.metrics["days"] == 300.0
    # the same configuration on newer data is a new record of the same trial
    record_trial(settings, cfg, _returns(3), name="baseline", data_version="v2")
    assert [t.data_version for t in read_trials(settings)] == ["v1", "v2"]
    with pytest.raises(DataValidationError, match="lack columns: rf"):
        record_trial(settings, cfg, frame.drop(columns="rf"))


def test_every_backtested_configuration_counts(run_state):
    settings, state = run_state
    ctx = RunContext(settings, SilentReporter(), dict(state))
    state = {**state, **ingest(ctx).outputs}
    first = json.loads(Path(run(RunContext(settings, SilentReporter(), dict(state)))
                            .outputs["evaluation"]["path"]).read_text())
    assert first["trials"]["n"] == 2 and first["trials"]["source"] == "ledger"
    assert "2 distinct configurations in the trial ledger (baseline, enhanced)" in (
        first["trials"]["counted"][0])
    # a person tries another threshold and dead band: two more trials, a higher bar
    tuned = settings.model_copy(update={"evaluation": EvaluationSettings(
        threshold=0.52, dead_band=0.01, prior_trials=3)})
    second = json.loads(Path(run(RunContext(tuned, SilentReporter(), dict(state)))
                             .outputs["evaluation"]["path"]).read_text())
    assert second["trials"]["n"] == 4 + 3 and second["trials"]["recorded"] == 4
    assert any("3 more declared" in c for c in second["trials"]["counted"])
    assert second["trials"]["pbo"] is not None  # 4 trials with common days: PBO by CSCV
    assert 0.0 <= second["trials"]["pbo"]["pbo"] <= 1.0
    # re-running the first configuration adds nothing, and its DSR now sees 4 trials
    again = json.loads(Path(run(RunContext(settings, SilentReporter(), dict(state)))
                            .outputs["evaluation"]["path"]).read_text())
    assert again["trials"]["n"] == 4
    m1 = first["variants"]["baseline"]["relative"]["buy_and_hold"]
    m4 = again["variants"]["baseline"]["relative"]["buy_and_hold"]
    assert m4["dsr_benchmark_sharpe"] > m1["dsr_benchmark_sharpe"]
