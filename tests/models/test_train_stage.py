"""The features and train pipeline stages: outputs per the contracts, cached by content."""

from __future__ import annotations

import json
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
    feats = _features.run(ctx).outputs["features"]
    ctx.state["features"] = feats
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
