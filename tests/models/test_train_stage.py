"""The features and train pipeline stages: outputs per the contracts, cached by content."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finmlops.config import Settings
from finmlops.errors import StageError
from finmlops.pipeline import RunContext, SilentReporter


@pytest.fixture
def ingested(stage_settings: Settings) -> RunContext:
    from finmlops.data import ingest

    version = ingest(stage_settings).version
    return RunContext(settings=stage_settings, reporter=SilentReporter(),
                      state={"dataset_version": version})


@pytest.mark.slow
def test_features_then_train_writes_the_contracted_outputs(ingested: RunContext) -> None:
    import onnxruntime as ort

    from finmlops.features import feature_names, make_windows, window_ends
    from finmlops.pipeline import _features, _train

    ctx = ingested
    built = _features.run(ctx)
    feats = built.outputs["features"]
    ctx.state["features"] = feats
    assert feats["gaps"] == {} and feats["dropped_rows"] == {}  # the bundled bars have none
    assert "warning" not in built.summary
    names = feature_names("full", ["SPY"])
    assert feats["columns"] == names
    frame = pd.read_parquet(feats["path"])
    assert len(frame) == feats["rows"] > 1000

    from finmlops.data import read_bars

    bars = read_bars(ctx.settings, ctx.state["dataset_version"])
    nxt = bars.groupby("ticker")["adj_close"].shift(-1)
    next_returns = bars.assign(expected=nxt / bars["adj_close"] - 1)[
        ["ticker", "date", "expected"]]

    result = _train.run(ctx)
    trained = result.outputs["trained"]
    assert set(trained) == {"baseline", "enhanced"}
    assert "accuracy" in result.summary and "always-up" in result.summary
    never = {v: [f for f in info["fold_metrics"] if f["improved"] == 0]
             for v, info in trained.items()}
    assert all(trained[v]["metrics"]["folds_not_improved"] == len(f) for v, f in never.items())
    assert ("never improved" in result.summary) == any(never.values())
    for variant, info in trained.items():
        model_dir = Path(info["model_dir"])
        assert model_dir.name == variant
        assert {p.name for p in model_dir.iterdir()} == {
            "model.onnx", "model.json", "input_example.json", "oos.parquet", "result.json"}
        card = json.loads((model_dir / "model.json").read_text())
        assert card["format"] == 1 and card["variant"] == variant
        assert card["input_name"] == "features" and card["output_name"] == "probability"
        assert card["window"] == 8 and card["feature_names"] == names
        assert card["weights_hash"] == info["weights_hash"]
        assert card["data_version"] == ctx.state["dataset_version"]
        assert card["trained_until"] == "2012-12-31" and card["target"] == ["IBB"]
        assert card["reference"]["feature_names"] == names
        oos = pd.read_parquet(info["oos_path"])
        # prediction drift is measured against the out-of-sample predictions before the cutoff
        before = oos.loc[oos["date"] <= "2012-12-31", "probability"]
        assert card["reference"]["prediction"]["n"] == len(before) > 0
        assert card["reference"]["prediction"]["mean"] == pytest.approx(before.mean())
        assert len(oos) == info["metrics"]["n"]
        # Every OOS row earns the stored close-to-next-close return the backtest charges it:
        # forward_return[t] == adj_close[t+1] / adj_close[t] - 1 on the ticker's own calendar.
        got = oos.merge(next_returns, on=["ticker", "date"], how="left", validate="one_to_one")
        assert got["expected"].notna().all()
        np.testing.assert_allclose(got["forward_return"], got["expected"], rtol=1e-12,
                                   atol=0)
        assert (got["label"] == (got["expected"] > 0)).all()
        assert {"always_up", "yesterday"} <= set(info["baselines"])
        # The served graph takes raw full-feature windows and agrees in shape with the data.
        ends = window_ends(frame["ticker"], 8)[-50:]
        x = make_windows(frame[names].to_numpy(), ends, 8)
        session = ort.InferenceSession(str(model_dir / "model.onnx"),
                                       providers=["CPUExecutionProvider"])
        p = session.run(None, {"features": x})[0]
        assert p.shape == (50,) and np.all((p > 0) & (p < 1))

    # Same inputs: the cache is reused, nothing retrains.
    ctx.reporter = SilentReporter()
    again = _train.run(ctx).outputs["trained"]
    assert again == trained
    assert not any("training" in m for _, m in ctx.reporter.events)  # type: ignore[attr-defined]


def test_train_needs_the_features_stage_first(ingested: RunContext) -> None:
    from finmlops.pipeline import _train

    with pytest.raises(StageError, match="features"):
        _train.run(ingested)


def test_unknown_variants_are_a_config_error_naming_the_configured_ones(
        stage_settings: Settings) -> None:
    from finmlops.errors import ConfigError
    from finmlops.pipeline._train import chosen_variants

    assert chosen_variants(stage_settings, None) == ["baseline", "enhanced"]
    assert chosen_variants(stage_settings, ["enhanced", "baseline", "enhanced"]) == [
        "baseline", "enhanced"]  # configuration order, once each
    with pytest.raises(ConfigError, match=r"unknown variant 'wide'; train.variants has: "
                                          r"baseline, enhanced"):
        chosen_variants(stage_settings, ["enhanced", "wide"])


@pytest.mark.slow
def test_variants_trained_one_at_a_time_merge_into_the_run_state(
        ingested: RunContext) -> None:
    from finmlops.pipeline import STAGES, load_state, run_stages, save_state, select
    from finmlops.tracking import configure

    settings = ingested.settings
    save_state(settings, {**ingested.state,
                          "trained": {"retired": {"run_id": None, "model_dir": "gone"}}})
    stages = select(STAGES, only=["features", "train"])
    first = SilentReporter()
    state = run_stages(settings, stages, first, options={"train": {"variants": ["enhanced"]}})
    # Only the asked-for variant trained; the entry of a variant no longer configured is gone.
    assert set(state["trained"]) == {"enhanced"}
    assert [m for _, m in first.events if m.startswith("training ")] == ["training enhanced"]
    state = run_stages(settings, stages, SilentReporter(),
                       options={"train": {"variants": ["baseline"]}})
    assert set(state["trained"]) == {"baseline", "enhanced"} == set(load_state(settings)
                                                                    ["trained"])
    # Same models, same directories as one full run: a full run now trains nothing.
    full = SilentReporter()
    again = run_stages(settings, stages, full)
    assert again["trained"] == state["trained"]
    assert not any(m.startswith("training") for _, m in full.events)
    dirs = {Path(info["model_dir"]).parent for info in state["trained"].values()}
    assert len(dirs) == 1
    # Each variant's run was logged to MLflow by its own train command.
    client = configure(settings).client
    for variant, info in state["trained"].items():
        assert client.get_run(info["run_id"]).data.tags["variant"] == variant


def test_the_features_stage_reports_a_calendar_gap(settings: Callable[..., Settings],
                                                   bundled: Callable[..., pd.DataFrame],
                                                   tmp_path: Path) -> None:
    from finmlops.data import ingest
    from finmlops.pipeline import _features

    bars = bundled("IBB", "SPY", start="2008-01-01", end="2011-12-31")
    gap = pd.Timestamp("2010-03-10")
    bars = bars[~((bars["ticker"] == "SPY") & (bars["date"] == gap))]
    csv = tmp_path / "bars.csv"
    bars.to_csv(csv, index=False)
    s = settings(data__source="csv", data__csv_path=str(csv), data__start="2008-01-01")
    ctx = RunContext(settings=s, reporter=SilentReporter(),
                     state={"dataset_version": ingest(s).version})
    result = _features.run(ctx)
    assert result.summary.endswith("; warning: calendar gaps: SPY lacks 1 day (2010-03-10); "
                                   "4 target rows dropped (IBB 4)")
    feats = result.outputs["features"]
    assert feats["gaps"] == {"SPY": ["2010-03-10"]} and feats["dropped_rows"] == {"IBB": 4}
    stored = json.loads(Path(feats["path"]).with_name("features.json").read_text())
    assert stored == {"calendar_days": feats["calendar_days"], "gaps": feats["gaps"],
                      "dropped_rows": feats["dropped_rows"]}
    frame = pd.read_parquet(feats["path"])
    assert gap not in set(frame["date"]) and len(frame) == feats["rows"]
    # A cached matrix reports the same gaps.
    again = _features.run(ctx)
    assert "(cached)" in again.summary and "SPY lacks 1 day" in again.summary
    assert again.outputs == result.outputs


def test_folds_that_never_improved_are_named_in_the_train_summary(
        stage_settings: Settings) -> None:
    from finmlops.models import TrainedVariant
    from finmlops.pipeline._train import not_improved_lines

    def trained(improved: list[float]) -> TrainedVariant:
        folds = [{"fold": float(i), "test_year": 2010.0 + i, "improved": v}
                 for i, v in enumerate(improved)]
        return TrainedVariant(
            variant="v", settings=stage_settings.train.variants["baseline"],
            model_dir=Path("m"), oos_path=Path("o"), fold_metrics=folds, metrics={},
            baselines={}, weights_hash="h", data_version="d", feature_names=[], seconds=0.0)

    assert not_improved_lines({"baseline": trained([1.0, 0.0, 1.0, 0.0]),
                               "enhanced": trained([1.0, 1.0])}) == [
        "baseline: 2/4 folds never improved (2011, 2013)"]
    assert not_improved_lines({"enhanced": trained([1.0])}) == []
