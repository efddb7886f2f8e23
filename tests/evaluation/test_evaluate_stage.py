"""The evaluate stage and the ``finmlops evaluate`` command on OOS predictions of real bars."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import finmlops.tracking
from finmlops.config import EvaluationSettings, FeatureSettings
from finmlops.contracts import PerformanceMetrics, read_evaluation
from finmlops.errors import StageError, TrackingError
from finmlops.evaluation import execution_returns, run_backtest
from finmlops.pipeline import RunContext, SilentReporter, save_state
from finmlops.pipeline._evaluate import run, trial_config
from finmlops.pipeline._ingest import run as ingest


@pytest.fixture
def no_ledger(monkeypatch):
    """A tracking store that cannot answer (keeps MLflow out of tests not about the ledger):
    the stage must fall back to the variants evaluated, with a note."""
    def fail(*args, **kwargs):
        raise TrackingError("tracking: store unavailable in this test")

    monkeypatch.setattr(finmlops.tracking, "record_trial", fail)


@pytest.fixture
def ingested(run_state):
    """The run state with the bundled bars in the store (executions read prices from it)."""
    settings, state = run_state
    ctx = RunContext(settings, SilentReporter(), dict(state))
    state = {**state, **ingest(ctx).outputs}
    return settings, state


def _same_close(settings):
    return settings.model_copy(update={"evaluation": EvaluationSettings(execution="same_close")})


def test_stage_writes_the_evaluation_and_a_summary(ingested, no_ledger):
    settings, state = ingested
    ctx = RunContext(settings, SilentReporter(), dict(state))
    result = run(ctx)
    ev = result.outputs["evaluation"]
    path = Path(ev["path"])
    assert path.name == "evaluation.json" and path.parent.parent.name == "evaluate"
    data = json.loads(path.read_text())
    assert set(data["variants"]) == {"baseline", "enhanced"} == set(ev["summary"])
    assert ev["summary"]["baseline"]["sharpe"] == data["variants"]["baseline"]["metrics"][
        "strategy"]["sharpe"]
    for window in ("gfc_2008", "covid_crash", "bear_2022"):
        assert data["variants"]["enhanced"]["stress"][window]["strategy"]["days"] > 10
    # next open: the last two days have no fill-to-fill return yet
    assert data["variants"]["baseline"]["dropped_rows"] == 2
    assert data["execution"]["setting"] == "next_open"
    assert any("open of t+1" in n for n in data["notes"])
    assert any("trial ledger unavailable" in n for n in data["notes"])
    assert data["trials"]["source"] == "variants" and data["trials"]["n"] == 2
    assert "active DSR" in result.summary and "(2 trials)" in result.summary
    mtime = os.stat(path).st_mtime_ns  # same inputs: served from the cache
    assert Path(run(ctx).outputs["evaluation"]["path"]) == path
    assert os.stat(path).st_mtime_ns == mtime


def test_the_written_file_is_exactly_its_contract(ingested, no_ledger):
    settings, state = ingested
    path = Path(run(RunContext(settings, SilentReporter(), dict(state)))
                .outputs["evaluation"]["path"])
    data = json.loads(path.read_text())
    evaluation = read_evaluation(path)
    assert evaluation.to_json() == data  # every key typed, none dropped or added
    assert evaluation.dataset_version == state["dataset_version"]
    assert set(evaluation.predictions) == {"baseline", "enhanced"}
    strategy = evaluation.variants["baseline"].metrics["strategy"]
    assert isinstance(strategy, PerformanceMetrics)
    assert strategy.sharpe == data["variants"]["baseline"]["metrics"]["strategy"]["sharpe"]


def test_a_cached_file_the_program_does_not_write_is_one_line(ingested, no_ledger):
    settings, state = ingested
    ctx = RunContext(settings, SilentReporter(), dict(state))
    path = Path(run(ctx).outputs["evaluation"]["path"])
    data = json.loads(path.read_text())
    data["variants"]["baseline"]["direction"]["accuracy"] = "high"
    path.write_text(json.dumps(data))
    with pytest.raises(StageError) as bad:
        run(ctx)
    message = str(bad.value)
    assert "\n" not in message and str(path) in message
    assert "variants.baseline.direction.accuracy" in message
    assert "run `finmlops run --only evaluate` again" in message


def test_a_missing_file_names_the_stage(tmp_path):
    with pytest.raises(StageError, match=r"evaluation not found at .*--only evaluate"):
        read_evaluation(tmp_path / "evaluation.json")


def test_next_open_backtest_earns_open_to_open_returns(ingested, no_ledger):
    from finmlops.data import read_bars

    settings, state = ingested
    data = json.loads(Path(run(RunContext(settings, SilentReporter(), dict(state)))
                           .outputs["evaluation"]["path"]).read_text())
    frame = pd.read_parquet(state["trained"]["baseline"]["oos_path"])
    ret = execution_returns(read_bars(settings, state["dataset_version"], ["IBB"]), "next_open")
    merged = frame.merge(ret, on=["ticker", "date"]).dropna(subset=["return"])
    direct = run_backtest(merged["probability"], merged["return"], settings.evaluation)
    got = data["variants"]["baseline"]["metrics"]["strategy"]["total_return"]
    assert got == pytest.approx(direct.equity[-1] - 1, rel=1e-9)


def test_same_close_needs_no_bars_and_says_so(run_state, no_ledger):
    settings, state = run_state
    settings = _same_close(settings)
    data = json.loads(Path(run(RunContext(settings, SilentReporter(), dict(state)))
                           .outputs["evaluation"]["path"]).read_text())
    assert data["variants"]["baseline"]["dropped_rows"] == 1  # the last day has no outcome
    assert any("close of t (the price the features used)" in n for n in data["notes"])


def test_next_open_without_stored_bars_is_a_stage_error(run_state, no_ledger):
    settings, state = run_state
    with pytest.raises(StageError, match="execution 'next_open' is backtested on returns"):
        run(RunContext(settings, SilentReporter(), dict(state)))


def test_stage_needs_training_first(run_state):
    settings, _ = run_state
    with pytest.raises(StageError, match="run `finmlops run --until train`"):
        run(RunContext(settings, SilentReporter(), {}))


def test_missing_predictions_file_is_a_stage_error(run_state, tmp_path):
    settings, state = run_state
    state["trained"]["baseline"]["oos_path"] = str(tmp_path / "gone.parquet")
    with pytest.raises(StageError, match="predictions of 'baseline' not found"):
        run(RunContext(settings, SilentReporter(), state))


def test_risk_free_file_is_forward_filled_and_must_cover_the_days(run_state, no_ledger,
                                                                  tmp_path):
    from finmlops.errors import ConfigError

    settings, state = run_state
    csv = tmp_path / "rf.csv"
    csv.write_text("date,rate\n2005-12-30,0.04\n2015-06-01,0.01\n")
    ev = EvaluationSettings(execution="same_close", risk_free_path=csv)
    data = json.loads(Path(run(RunContext(settings.model_copy(update={"evaluation": ev}),
                                          SilentReporter(), dict(state)))
                           .outputs["evaluation"]["path"]).read_text())
    plain = json.loads(Path(run(RunContext(_same_close(settings), SilentReporter(),
                                           dict(state))).outputs["evaluation"]["path"])
                       .read_text())
    bh, bh0 = (d["variants"]["baseline"]["metrics"]["buy_and_hold"] for d in (data, plain))
    assert bh["total_return"] == bh0["total_return"]  # fully invested: no cash to earn on
    assert bh["sharpe"] < bh0["sharpe"]  # but its Sharpe ratio is of excess returns
    assert any("risk-free rate from" in n for n in data["notes"])
    csv.write_text("date,rate\n2010-01-04,0.02\n")
    with pytest.raises(ConfigError, match="must have finite rates from 2006-01-03"):
        run(RunContext(settings.model_copy(update={"evaluation": ev}), SilentReporter(),
                       dict(state)))


def _cli() -> typer.Typer:
    from finmlops.cli.evaluate import register

    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = {"config": None}

    register(app)
    return app


def test_cli_evaluate_prints_tables_and_break_even(ingested, monkeypatch, no_ledger):
    settings, state = ingested
    monkeypatch.setenv("FINMLOPS_HOME", str(settings.home))
    monkeypatch.chdir(settings.home.parent)
    save_state(settings, state)
    res = CliRunner().invoke(_cli(), ["evaluate"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    for text in ("baseline", "enhanced", "overall", "gfc_2008", "covid_crash", "bear_2022",
                 "buy & hold", "always long", "exposure-matched", "Sharpe", "break-even",
                 "active", "alpha", "IR", "deflated over 2 trials"):
        assert text in res.output, text
    res = CliRunner().invoke(_cli(), ["evaluate", "--json"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["variants"]["baseline"]["cost_sweep"][0]["cost_bps"] == 0.0
    assert "series" not in data["variants"]["baseline"]
    assert "series" in json.loads(Path(data["path"]).read_text())["variants"]["baseline"]


def test_market_impact_uses_the_stored_bars(ingested, no_ledger):
    from finmlops.config import CostSettings

    settings, state = ingested
    costs = CostSettings(impact_coefficient=0.5, notional=50_000_000.0)
    with_impact = settings.model_copy(update={"evaluation": EvaluationSettings(costs=costs)})
    data = json.loads(Path(run(RunContext(with_impact, SilentReporter(), dict(state)))
                           .outputs["evaluation"]["path"]).read_text())
    assert any("market impact charged" in n for n in data["notes"])
    base = json.loads(Path(run(RunContext(settings, SilentReporter(), dict(state)))
                           .outputs["evaluation"]["path"]).read_text())
    a = data["variants"]["baseline"]["metrics"]["strategy"]["cost_drag"]
    b = base["variants"]["baseline"]["metrics"]["strategy"]["cost_drag"]
    assert a > b > 0


def test_a_longer_horizon_is_backtested_on_one_day_returns(ingested, no_ledger, tmp_path):
    """With horizon 5 the OOS forward_return is the 5-day return; a one-day position must earn
    the next day's return, not five days' returns compounded every day."""
    settings, state = ingested
    settings = _same_close(settings).model_copy(
        update={"features": FeatureSettings(horizon=5)})
    one_day = {}
    for variant, info in state["trained"].items():
        frame = pd.read_parquet(info["oos_path"])
        one_day[variant] = frame.copy()
        price = (1 + frame["forward_return"].fillna(0)).cumprod()
        frame["forward_return"] = price.shift(-5) / price - 1  # what training writes for h=5
        path = tmp_path / f"{variant}_h5.parquet"
        frame.to_parquet(path)
        info["oos_path"] = str(path)
    data = json.loads(Path(run(RunContext(settings, SilentReporter(), dict(state)))
                           .outputs["evaluation"]["path"]).read_text())
    assert any("5-day directions, each position is held one day" in n for n in data["notes"])
    for variant, frame in one_day.items():
        frame = frame[frame["forward_return"].notna()]
        direct = run_backtest(frame["probability"], frame["forward_return"],
                              settings.evaluation)
        got = data["variants"][variant]["metrics"]["strategy"]
        assert got["days"] == len(frame)
        assert got["total_return"] == pytest.approx(direct.equity[-1] - 1, rel=1e-9)
        bh = data["variants"][variant]["metrics"]["buy_and_hold"]["total_return"]
        assert bh == pytest.approx(np.prod(1 + frame["forward_return"]) - 1, rel=1e-9)


def test_trial_config_holds_what_changes_a_backtest(run_state):
    settings, _ = run_state
    cfg = trial_config(settings, "baseline")
    assert cfg["variant"]["architecture"] == "lstm" and cfg["evaluation"]["threshold"] == 0.5
    assert set(cfg["evaluation"]) == {"rule", "threshold", "dead_band", "execution", "costs",
                                      "risk_free_rate", "risk_free_path"}
    assert "cutoff" not in cfg["train"] and cfg["train"]["seed"] == 42
    moved = settings.model_copy(update={"home": settings.home / "elsewhere"})
    assert trial_config(moved, "baseline") == cfg  # where files live is not a trial
