"""The evaluate stage and the ``finmlops evaluate`` command on OOS predictions of real bars."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import finmlops.tracking
from finmlops.errors import StageError
from finmlops.pipeline import RunContext, SilentReporter, save_state
from finmlops.pipeline._evaluate import run


@pytest.fixture
def no_store(monkeypatch):
    """Keep MLflow out of tests that are not about the trial count (its store is slow to make)."""
    monkeypatch.setattr(finmlops.tracking, "count_trials", lambda s: 0, raising=False)


def test_stage_writes_the_evaluation_and_a_summary(run_state, no_store):
    settings, state = run_state
    ctx = RunContext(settings, SilentReporter(), dict(state))
    result = run(ctx)
    ev = result.outputs["evaluation"]
    path = Path(ev["path"])
    assert path.name == "evaluation.json" and path.parent.parent.name == "evaluate"
    data = json.loads(path.read_text())
    assert set(data["variants"]) == {"baseline", "enhanced"} == set(ev["summary"])
    assert ev["summary"]["baseline"]["sharpe"] == data["variants"]["baseline"]["metrics"][
        "strategy"]["sharpe"]
    # the bundled data covers every default stress window
    for window in ("gfc_2008", "covid_crash", "bear_2022"):
        assert data["variants"]["enhanced"]["stress"][window]["strategy"]["days"] > 10
    assert data["variants"]["baseline"]["dropped_rows"] == 1  # the last day has no outcome
    assert "Sharpe" in result.summary
    # same inputs: served from the cache, not recomputed
    mtime = os.stat(path).st_mtime_ns
    assert Path(run(ctx).outputs["evaluation"]["path"]) == path
    assert os.stat(path).st_mtime_ns == mtime


def test_trials_come_from_the_tracking_store_when_it_can_count(run_state, monkeypatch):
    settings, state = run_state
    monkeypatch.setattr(finmlops.tracking, "count_trials", lambda s: 17, raising=False)
    out = run(RunContext(settings, SilentReporter(), dict(state))).outputs["evaluation"]
    data = json.loads(Path(out["path"]).read_text())
    assert data["trials"]["n"] == 17 and data["trials"]["source"] == "tracking"
    assert data["variants"]["baseline"]["metrics"]["strategy"]["n_trials"] == 17


def test_fallback_to_the_number_of_variants_is_noted(run_state, monkeypatch):
    settings, state = run_state
    monkeypatch.delattr(finmlops.tracking, "count_trials", raising=False)
    out = run(RunContext(settings, SilentReporter(), dict(state))).outputs["evaluation"]
    data = json.loads(Path(out["path"]).read_text())
    assert data["trials"] == {**data["trials"], "n": 2, "source": "variants"}
    assert any("number of variants" in n for n in data["notes"])


@pytest.mark.slow
def test_an_empty_real_tracking_store_falls_back_to_the_variants(run_state):
    settings, state = run_state
    out = run(RunContext(settings, SilentReporter(), dict(state))).outputs["evaluation"]
    data = json.loads(Path(out["path"]).read_text())
    assert data["trials"]["n"] == 2 and data["trials"]["source"] == "variants"
    assert any("counted 0 trials" in n for n in data["notes"])


def test_stage_needs_training_first(run_state):
    settings, _ = run_state
    with pytest.raises(StageError, match="run `finmlops run --until train`"):
        run(RunContext(settings, SilentReporter(), {}))


def test_missing_predictions_file_is_a_stage_error(run_state, tmp_path):
    settings, state = run_state
    state["trained"]["baseline"]["oos_path"] = str(tmp_path / "gone.parquet")
    with pytest.raises(StageError, match="predictions of 'baseline' not found"):
        run(RunContext(settings, SilentReporter(), state))


def _cli() -> typer.Typer:
    from finmlops.cli.evaluate import register

    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = {"config": None}

    register(app)
    return app


def test_cli_evaluate_prints_tables_and_break_even(run_state, monkeypatch, no_store):
    settings, state = run_state
    monkeypatch.setenv("FINMLOPS_HOME", str(settings.home))
    monkeypatch.chdir(settings.home.parent)
    save_state(settings, state)
    res = CliRunner().invoke(_cli(), ["evaluate"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    for text in ("baseline", "enhanced", "overall", "gfc_2008", "covid_crash", "bear_2022",
                 "buy & hold", "always long", "Sharpe", "break-even"):
        assert text in res.output
    res = CliRunner().invoke(_cli(), ["evaluate", "--json"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["variants"]["baseline"]["cost_sweep"][0]["cost_bps"] == 0.0
    assert "series" not in data["variants"]["baseline"]
    assert "series" in json.loads(Path(data["path"]).read_text())["variants"]["baseline"]


def test_market_impact_uses_the_stored_bars(run_state, no_store):
    """With an impact coefficient, the stage reads volume and prices from the real store."""
    from finmlops.config import CostSettings, EvaluationSettings
    from finmlops.pipeline._ingest import run as ingest

    settings, state = run_state
    costs = CostSettings(impact_coefficient=0.5, notional=50_000_000.0)
    settings = settings.model_copy(update={"evaluation": EvaluationSettings(costs=costs)})
    ctx = RunContext(settings, SilentReporter(), dict(state))
    ctx.state.update(ingest(ctx).outputs)
    data = json.loads(Path(run(ctx).outputs["evaluation"]["path"]).read_text())
    assert any("market impact charged" in n for n in data["notes"])
    plain = RunContext(run_state[0], SilentReporter(), dict(state))
    base = json.loads(Path(run(plain).outputs["evaluation"]["path"]).read_text())
    with_impact = data["variants"]["baseline"]["metrics"]["strategy"]["cost_drag"]
    without = base["variants"]["baseline"]["metrics"]["strategy"]["cost_drag"]
    assert with_impact > without > 0


def test_a_longer_horizon_is_backtested_on_one_day_returns(run_state, no_store, tmp_path):
    """With horizon 5 the OOS forward_return is the 5-day return; a one-day position must earn
    the next day's return, not five days' returns compounded every day."""
    import numpy as np
    import pandas as pd

    from finmlops.config import FeatureSettings
    from finmlops.evaluation import run_backtest
    from finmlops.pipeline._ingest import run as ingest

    settings, state = run_state
    settings = settings.model_copy(update={"features": FeatureSettings(horizon=5)})
    ctx = RunContext(settings, SilentReporter(), dict(state))
    ctx.state.update(ingest(ctx).outputs)
    one_day = {}
    for variant, info in ctx.state["trained"].items():
        frame = pd.read_parquet(info["oos_path"])
        one_day[variant] = frame.copy()
        price = (1 + frame["forward_return"].fillna(0)).cumprod()
        frame["forward_return"] = price.shift(-5) / price - 1  # what training writes for h=5
        path = tmp_path / f"{variant}_h5.parquet"
        frame.to_parquet(path)
        info["oos_path"] = str(path)
    data = json.loads(Path(run(ctx).outputs["evaluation"]["path"]).read_text())
    assert any("one-day position on the next day's return" in n for n in data["notes"])
    for variant, frame in one_day.items():
        frame = frame[frame["forward_return"].notna()]
        direct = run_backtest(frame["probability"], frame["forward_return"],
                              settings.evaluation)
        got = data["variants"][variant]["metrics"]["strategy"]
        assert got["days"] == len(frame)
        assert got["total_return"] == pytest.approx(direct.equity[-1] - 1, rel=1e-9)
        bh = data["variants"][variant]["metrics"]["buy_and_hold"]["total_return"]
        assert bh == pytest.approx(np.prod(1 + frame["forward_return"]) - 1, rel=1e-9)


def test_a_longer_horizon_without_stored_bars_is_a_stage_error(run_state, no_store):
    from finmlops.config import FeatureSettings

    settings, state = run_state
    settings = settings.model_copy(update={"features": FeatureSettings(horizon=5)})
    with pytest.raises(StageError, match="one-day returns from the stored bars"):
        run(RunContext(settings, SilentReporter(), dict(state)))
