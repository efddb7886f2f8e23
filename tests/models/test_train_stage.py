"""The features and train pipeline stages: outputs per the contracts, cached by content."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finmlops.config import Settings
from finmlops.errors import StageError
from finmlops.pipeline import RunContext, SilentReporter, StageResult


@pytest.fixture
def ingested(stage_settings: Settings) -> RunContext:
    from finmlops.data import ingest

    version = ingest(stage_settings).version
    return RunContext(settings=stage_settings, reporter=SilentReporter(),
                      state={"dataset_version": version})


VARIANTS = ("baseline", "enhanced")


@dataclass(frozen=True)
class WrittenVariant:
    """What the first train run left in one variant's model directory."""

    files: set[str]
    card: dict[str, Any]
    oos: pd.DataFrame


@dataclass(frozen=True)
class StageRuns:
    """The features stage then the train stage on freshly ingested bundled bars, then the
    train stage again on the same inputs, in a home of its own."""

    dataset_version: str
    names: list[str]
    """The full feature set on SPY context, in order."""
    features: StageResult
    frame: pd.DataFrame
    """The feature matrix the features stage wrote."""
    next_returns: pd.DataFrame
    """``expected``: each bar's close-to-next-close return on its ticker's own calendar."""
    train: StageResult
    written: dict[str, WrittenVariant]
    again: dict[str, Any]
    """The trained entries of the second train run."""
    again_events: list[tuple[str, str]]

    @property
    def feats(self) -> dict[str, Any]:
        feats: dict[str, Any] = self.features.outputs["features"]
        return feats

    @property
    def trained(self) -> dict[str, Any]:
        trained: dict[str, Any] = self.train.outputs["trained"]
        return trained

    def returns(self, variant: str) -> pd.DataFrame:
        """The variant's OOS rows beside the stored next-day return of their bar."""
        return self.written[variant].oos.merge(self.next_returns, on=["ticker", "date"],
                                               how="left", validate="one_to_one")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory,
         stage_settings_in: Callable[[Path], Settings]) -> StageRuns:
    from finmlops.data import ingest, read_bars
    from finmlops.features import feature_names
    from finmlops.pipeline import _features, _train

    settings = stage_settings_in(tmp_path_factory.mktemp("stages"))
    version = ingest(settings).version
    ctx = RunContext(settings=settings, reporter=SilentReporter(),
                     state={"dataset_version": version})
    built = _features.run(ctx)
    ctx.state["features"] = built.outputs["features"]
    bars = read_bars(settings, version)
    nxt = bars.groupby("ticker")["adj_close"].shift(-1)
    next_returns = bars.assign(expected=nxt / bars["adj_close"] - 1)[
        ["ticker", "date", "expected"]]
    result = _train.run(ctx)
    written = {}
    for variant, info in result.outputs["trained"].items():
        model_dir = Path(info["model_dir"])
        written[variant] = WrittenVariant({p.name for p in model_dir.iterdir()},
                                          json.loads((model_dir / "model.json").read_text()),
                                          pd.read_parquet(info["oos_path"]))
    reporter = SilentReporter()
    ctx.reporter = reporter
    again = _train.run(ctx).outputs["trained"]
    return StageRuns(version, feature_names("full", ["SPY"]), built,
                     pd.read_parquet(built.outputs["features"]["path"]), next_returns, result,
                     written, again, reporter.events)


@pytest.mark.slow
def test_the_bundled_bars_have_no_calendar_gaps(runs: StageRuns) -> None:
    assert runs.feats["gaps"] == {} and runs.feats["dropped_rows"] == {}


@pytest.mark.slow
def test_a_matrix_without_gaps_carries_no_warning(runs: StageRuns) -> None:
    assert "warning" not in runs.features.summary


@pytest.mark.slow
def test_the_features_output_names_the_full_columns_in_order(runs: StageRuns) -> None:
    assert runs.feats["columns"] == runs.names


@pytest.mark.slow
def test_the_written_matrix_has_the_reported_rows(runs: StageRuns) -> None:
    assert len(runs.frame) == runs.feats["rows"] > 1000


@pytest.mark.slow
def test_every_configured_variant_is_trained(runs: StageRuns) -> None:
    assert set(runs.trained) == set(VARIANTS)


@pytest.mark.slow
def test_the_train_summary_compares_accuracy_with_always_up(runs: StageRuns) -> None:
    assert "accuracy" in runs.train.summary and "always-up" in runs.train.summary


def never_improved(runs: StageRuns) -> dict[str, list[dict[str, Any]]]:
    return {v: [f for f in info["fold_metrics"] if f["improved"] == 0]
            for v, info in runs.trained.items()}


@pytest.mark.slow
def test_folds_not_improved_counts_the_folds_that_never_improved(runs: StageRuns) -> None:
    assert all(runs.trained[v]["metrics"]["folds_not_improved"] == len(f)
               for v, f in never_improved(runs).items())


@pytest.mark.slow
def test_the_summary_names_folds_that_never_improved_only_when_there_are_some(
        runs: StageRuns) -> None:
    assert ("never improved" in runs.train.summary) == any(never_improved(runs).values())


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_has_a_model_directory_of_its_name(runs: StageRuns, variant: str) -> None:
    assert Path(runs.trained[variant]["model_dir"]).name == variant


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_model_directory_holds_the_five_contracted_files(runs: StageRuns,
                                                          variant: str) -> None:
    assert runs.written[variant].files == {
        "model.onnx", "model.json", "input_example.json", "oos.parquet", "result.json"}


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_model_card_is_format_1_of_its_variant(runs: StageRuns, variant: str) -> None:
    card = runs.written[variant].card
    assert card["format"] == 1 and card["variant"] == variant


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_model_card_names_the_graphs_tensors(runs: StageRuns, variant: str) -> None:
    card = runs.written[variant].card
    assert card["input_name"] == "features" and card["output_name"] == "probability"


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_model_card_takes_windows_of_the_full_features(runs: StageRuns,
                                                           variant: str) -> None:
    card = runs.written[variant].card
    assert card["window"] == 8 and card["feature_names"] == runs.names


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_model_card_carries_the_trained_weights_hash(runs: StageRuns,
                                                         variant: str) -> None:
    assert runs.written[variant].card["weights_hash"] == runs.trained[variant]["weights_hash"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_model_card_names_the_data_version(runs: StageRuns, variant: str) -> None:
    assert runs.written[variant].card["data_version"] == runs.dataset_version


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_model_card_names_the_cutoff_and_target(runs: StageRuns, variant: str) -> None:
    card = runs.written[variant].card
    assert card["trained_until"] == "2012-12-31" and card["target"] == ["IBB"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_drift_reference_names_the_features(runs: StageRuns, variant: str) -> None:
    assert runs.written[variant].card["reference"]["feature_names"] == runs.names


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_prediction_reference_is_the_oos_predictions_before_the_cutoff(
        runs: StageRuns, variant: str) -> None:
    """Prediction drift is measured against the out-of-sample predictions before the
    cutoff."""
    written = runs.written[variant]
    before = written.oos.loc[written.oos["date"] <= "2012-12-31", "probability"]
    assert written.card["reference"]["prediction"]["n"] == len(before) > 0
    assert written.card["reference"]["prediction"]["mean"] == pytest.approx(before.mean())


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_oos_predictions_are_the_rows_the_metrics_count(runs: StageRuns,
                                                            variant: str) -> None:
    assert len(runs.written[variant].oos) == runs.trained[variant]["metrics"]["n"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_oos_row_is_a_bar_with_a_next_close(runs: StageRuns, variant: str) -> None:
    assert runs.returns(variant)["expected"].notna().all()


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_oos_row_earns_the_close_to_next_close_return(runs: StageRuns,
                                                           variant: str) -> None:
    """The return the backtest charges it: forward_return[t] == adj_close[t+1] /
    adj_close[t] - 1 on the ticker's own calendar."""
    got = runs.returns(variant)
    np.testing.assert_allclose(got["forward_return"], got["expected"], rtol=1e-12, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_label_is_whether_the_next_close_is_higher(runs: StageRuns, variant: str) -> None:
    got = runs.returns(variant)
    assert (got["label"] == (got["expected"] > 0)).all()


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_naive_baselines_are_scored_beside_the_model(runs: StageRuns,
                                                         variant: str) -> None:
    assert {"always_up", "yesterday"} <= set(runs.trained[variant]["baselines"])


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_served_graph_scores_raw_full_feature_windows(runs: StageRuns,
                                                          variant: str) -> None:
    """It agrees in shape with the data and answers probabilities."""
    import onnxruntime as ort

    from finmlops.features import make_windows, window_ends

    ends = window_ends(runs.frame["ticker"], 8)[-50:]
    x = make_windows(runs.frame[runs.names].to_numpy(), ends, 8)
    session = ort.InferenceSession(str(Path(runs.trained[variant]["model_dir"], "model.onnx")),
                                   providers=["CPUExecutionProvider"])
    p = session.run(None, {"features": x})[0]
    assert p.shape == (50,) and np.all((p > 0) & (p < 1))


@pytest.mark.slow
def test_training_again_on_the_same_inputs_reuses_the_cache(runs: StageRuns) -> None:
    assert runs.again == runs.trained


@pytest.mark.slow
def test_a_cached_train_trains_nothing(runs: StageRuns) -> None:
    assert not any("training" in m for _, m in runs.again_events)


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
