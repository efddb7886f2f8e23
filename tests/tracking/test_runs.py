"""Training and evaluation runs in a real MLflow store: params, metrics, artifacts, trials."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finmlops.config import EvaluationSettings, Settings, VariantSettings, public_dict
from finmlops.contracts import EvaluationFile
from finmlops.errors import ModelNotFoundError
from finmlops.evaluation import evaluate_predictions
from finmlops.models import TrainedVariant
from finmlops.tracking import (
    DatasetRef,
    configure,
    count_trials,
    find_training_run,
    log_evaluation,
    log_trained_variants,
    log_training,
    training_run,
)
from finmlops.tracking.runs import flatten, metric_key

MakeTrained = Callable[..., TrainedVariant]


def _artifacts(client: Any, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, f.path) if f.is_dir else {f.path}
    return out


@dataclass(frozen=True)
class LoggedTraining:
    """One baseline training logged to a real MLflow store, in a home of its own."""

    settings: Settings
    trained: TrainedVariant
    run_id: str
    client: Any
    run: Any

    @property
    def logged_model(self) -> Any:
        """The run's one LoggedModel: the model itself."""
        (output,) = self.run.outputs.model_outputs
        return self.client.get_logged_model(output.model_id)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path,
           trained_factory: Callable[[Path], MakeTrained]) -> LoggedTraining:
    home = tmp_path_factory.mktemp("logged") / "home"
    home.mkdir()
    shutil.copyfile(mlflow_template, home / "mlflow.db")
    settings = Settings(home=home)
    trained = trained_factory(home.parent)("baseline", settings)
    run_id = log_training(settings, trained, public_dict(settings))
    client = configure(settings).client
    return LoggedTraining(settings, trained, run_id, client, client.get_run(run_id))


def test_the_training_run_finishes_in_the_projects_experiment(logged: LoggedTraining) -> None:
    assert logged.run.info.status == "FINISHED"
    assert logged.run.info.experiment_id == configure(logged.settings).experiment_id


def test_the_seed_is_a_param_under_its_config_path_and_as_seed(logged: LoggedTraining) -> None:
    params = logged.run.data.params
    assert params["train.seed"] == "42" and params["seed"] == "42"


def test_the_variants_own_settings_are_params_under_variant(logged: LoggedTraining) -> None:
    expected = str(logged.settings.train.variants["baseline"].window)
    assert logged.run.data.params["variant.window"] == expected


def test_the_whole_config_is_params_by_dotted_path(logged: LoggedTraining) -> None:
    """Other variants' settings too; lists as JSON."""
    params = logged.run.data.params
    assert params["train.variants.enhanced.architecture"] == "gru"
    assert params["features.target"] == '["IBB"]'


def test_the_data_version_is_a_param(logged: LoggedTraining) -> None:
    assert logged.run.data.params["data_version"] == logged.trained.data_version


def test_the_git_commit_is_a_param(logged: LoggedTraining) -> None:
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", logged.run.data.params["git_commit"])


def test_tags_name_the_variant_and_its_weights(logged: LoggedTraining) -> None:
    tags = logged.run.data.tags
    assert (tags["variant"], tags["weights_hash"]) == ("baseline", logged.trained.weights_hash)


def test_tags_name_the_data_version_and_a_config_hash(logged: LoggedTraining) -> None:
    tags = logged.run.data.tags
    assert tags["data_version"] == logged.trained.data_version and len(tags["config_hash"]) == 16


def test_metrics_hold_the_models_and_the_naive_baselines(logged: LoggedTraining) -> None:
    metrics = logged.run.data.metrics
    assert metrics["accuracy"] == pytest.approx(0.54)
    assert metrics["naive.always_up.accuracy"] == pytest.approx(0.53)


def test_fold_metrics_are_steps_by_fold(logged: LoggedTraining) -> None:
    folds = logged.client.get_metric_history(logged.run_id, "fold.accuracy")
    assert sorted((m.step, m.value) for m in folds) == [(0, 0.5), (1, 0.58)]


def test_the_run_keeps_what_is_not_the_model_once_each(logged: LoggedTraining) -> None:
    assert _artifacts(logged.client, logged.run_id) == {"features.json", "oos/oos.parquet"}


def test_the_model_is_the_runs_ready_logged_model_named_for_the_variant(
        logged: LoggedTraining) -> None:
    model = logged.logged_model
    assert (model.status.value, model.source_run_id, model.name) == (
        "READY", logged.run_id, "baseline")


def test_the_logged_model_is_tagged_with_its_weights_hash(logged: LoggedTraining) -> None:
    assert logged.logged_model.tags["weights_hash"] == logged.trained.weights_hash


def test_the_logged_model_holds_the_model_files(logged: LoggedTraining) -> None:
    files = {f.path for f in logged.client.list_logged_model_artifacts(
        logged.logged_model.model_id)}
    assert {"MLmodel", "model.onnx", "model.json", "input_example.json"} <= files


def test_the_logged_model_holds_no_run_files(logged: LoggedTraining) -> None:
    files = {f.path for f in logged.client.list_logged_model_artifacts(
        logged.logged_model.model_id)}
    assert not any(f.endswith((".parquet", "result.json")) for f in files)


def test_the_signature_is_the_tensor_contract(logged: LoggedTraining,
                                              tiny_shape: tuple[int, int]) -> None:
    from mlflow.models import Model

    local = Path(mlflow_artifacts(logged.logged_model.artifact_location,
                                  logged.settings.home / "dl"))
    signature = Model.load(str(local / "MLmodel")).signature
    assert signature.inputs.to_dict() == [
        {"type": "tensor", "name": "features",
         "tensor-spec": {"dtype": "float32", "shape": (-1, *tiny_shape)}}]
    assert signature.outputs.to_dict() == [
        {"type": "tensor", "name": "probability",
         "tensor-spec": {"dtype": "float32", "shape": (-1,)}}]


def mlflow_artifacts(uri: str, dest: Path) -> str:
    import mlflow.artifacts

    return str(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))


def test_per_epoch_losses_are_step_metrics(settings: Settings, make_trained: MakeTrained) -> None:
    trained = make_trained("baseline", settings)
    run_id = log_training(settings, trained, public_dict(settings))
    client = configure(settings).client

    def curve(key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))

    fold0, fold1, final = trained.losses
    assert curve("train_loss") == list(enumerate(final["train"], start=1))
    assert curve("val_loss") == list(enumerate(final["val"], start=1))
    assert curve("fold_00/val_loss") == list(enumerate(fold0["val"], start=1))
    assert curve("fold_01/train_loss") == list(enumerate(fold1["train"], start=1))


def test_the_run_is_open_while_training_and_its_duration_covers_it(
        settings: Settings, make_trained: MakeTrained) -> None:
    import time

    client = configure(settings).client
    before = int(time.time() * 1000)
    with training_run(settings, "baseline", "d" * 12) as run:
        assert client.get_run(run.run_id).info.status == "RUNNING"
        time.sleep(0.4)  # the training
        run.log(make_trained("baseline", settings))
    info = client.get_run(run.run_id).info
    assert info.status == "FINISHED"
    assert before <= info.start_time and info.end_time - info.start_time >= 400


@pytest.mark.parametrize(("error", "status"), [(RuntimeError("boom"), "FAILED"),
                                               (KeyboardInterrupt(), "KILLED")])
def test_a_training_that_dies_ends_its_run(settings: Settings, error: BaseException,
                                           status: str) -> None:
    opened: list[str] = []
    with pytest.raises(type(error)), training_run(settings, "baseline", "d" * 12) as run:
        opened.append(run.run_id)
        raise error
    assert configure(settings).client.get_run(opened[0]).info.status == status


def test_a_training_that_logs_nothing_is_not_finished(settings: Settings) -> None:
    with training_run(settings, "baseline", "d" * 12) as run:
        pass
    run_info = configure(settings).client.get_run(run.run_id).info
    assert run_info.status == "FAILED"
    assert find_training_run is not None and count_trials(settings) == 0


def test_the_dataset_is_the_runs_input(settings: Settings, make_trained: MakeTrained) -> None:
    ref = DatasetRef(name="bars-IBB-SPY", digest="e8bd8fbc631c5a2b",
                     source="file:///data/store/versions/e8bd8fbc631c5a2b", rows=12712,
                     tickers=("IBB", "SPY"), start="2001-01-02", end="2026-05-01",
                     origin="bundled")
    trained = make_trained("baseline", settings, data_version=ref.digest)
    run_id = log_training(settings, trained, public_dict(settings), dataset=ref)
    client = configure(settings).client
    (given_input,) = client.get_run(run_id).inputs.dataset_inputs
    dataset = given_input.dataset
    assert (dataset.name, dataset.digest, dataset.source_type) == (
        "bars-IBB-SPY", "e8bd8fbc631c5a2b", "local")
    assert json.loads(dataset.source) == {"uri": ref.source}
    assert json.loads(dataset.profile)["rows"] == 12712
    assert [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]][:3] == [
        "ticker", "date", "open"]
    assert {(t.key, t.value) for t in given_input.tags} == {("mlflow.data.context", "training")}
    # The model's metrics name the dataset they were computed on.
    (output,) = client.get_run(run_id).outputs.model_outputs
    linked = [m for m in client.get_logged_model(output.model_id).metrics
              if m.key == "accuracy"]
    assert [(m.dataset_digest, m.value) for m in linked] == [(ref.digest, 0.54)]


def test_the_experiment_opens_as_model_training(settings: Settings) -> None:
    tracker = configure(settings)
    tags = tracker.client.get_experiment(tracker.experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_an_existing_experiment_gets_the_kind_once(make_settings: Callable[..., Settings]) -> None:
    from finmlops.tracking._client import forget

    settings = make_settings()
    tracker = configure(settings)
    client = tracker.client
    client.delete_experiment_tag(tracker.experiment_id, "mlflow.experimentKind")
    forget(settings)
    again = configure(settings)
    assert again.experiment_id == tracker.experiment_id
    assert client.get_experiment(tracker.experiment_id).tags["mlflow.experimentKind"] == (
        "custom_model_development")


def test_evaluation_adds_metrics_and_artifacts(settings: Settings, make_trained: MakeTrained,
                                               tmp_path: Path) -> None:
    run_id = log_training(settings, make_trained("baseline", settings), public_dict(settings))
    report = tmp_path / "evaluation.json"
    report.write_text('{"sharpe": 0.8}')
    log_evaluation(settings, run_id, {"sharpe": 0.8, "max_drawdown%": -0.2},
                   {"evaluation": report})
    client = configure(settings).client
    run = client.get_run(run_id)
    assert run.data.metrics["sharpe"] == pytest.approx(0.8)
    assert run.data.metrics["max_drawdown_"] == pytest.approx(-0.2)  # sanitised key
    assert run.data.tags["evaluated"] == "true"
    assert "evaluation/evaluation.json" in _artifacts(client, run_id)
    with pytest.raises(ModelNotFoundError):
        log_evaluation(settings, "0" * 32, {"sharpe": 1.0})


def _evaluation(costs: list[float]) -> EvaluationFile:
    """A real evaluation of two variants over 2019-2021 (no day in the 2022 window): a
    skilled ``enhanced`` and a coin-flipping ``baseline``."""
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2019-01-02", "2021-12-31")
    fwd = rng.normal(0.0004, 0.012, len(dates))
    frame = pd.DataFrame({"date": dates, "ticker": "IBB", "forward_return": fwd,
                          "label": (fwd > 0).astype(np.int64), "fold": 0})
    return evaluate_predictions(
        {"enhanced": frame.assign(probability=0.5 + 0.45 * np.sign(fwd)),
         "baseline": frame.assign(probability=rng.uniform(0.3, 0.7, len(dates)))},
        EvaluationSettings(cost_sweep_bps=costs))


def test_stress_and_cost_figures_become_metrics(settings: Settings, make_trained: MakeTrained,
                                                tmp_path: Path) -> None:
    run_id = log_training(settings, make_trained("enhanced", settings), public_dict(settings))
    evaluation = _evaluation([0.0, 2.0, 5.0])
    entry = evaluation.variants["enhanced"]
    log_evaluation(settings, run_id, {"backtest.sharpe": 0.21}, evaluation=evaluation)
    client = configure(settings).client
    metrics = client.get_run(run_id).data.metrics
    covid = entry.stress["covid_crash"]
    assert covid["strategy"] is not None and covid["buy_and_hold"] is not None
    assert metrics["stress.covid_crash.strategy.total_return"] == pytest.approx(
        covid["strategy"].total_return)
    assert metrics["stress.covid_crash.buy_and_hold.sharpe"] == pytest.approx(
        covid["buy_and_hold"].sharpe)
    assert not any(k.startswith("stress.bear_2022.") for k in metrics)  # null: no figure
    assert entry.break_even_bps is not None
    assert metrics["break_even_bps"] == pytest.approx(entry.break_even_bps)
    sweep = sorted((m.step, m.value) for m in client.get_metric_history(run_id,
                                                                         "cost_sweep.sharpe"))
    assert sweep == [(round(r.cost_bps), pytest.approx(r.sharpe)) for r in entry.cost_sweep]
    assert json.loads(client.get_run(run_id).data.tags["cost_sweep.bps"]) == [0.0, 2.0, 5.0]


def test_a_fractional_cost_sweep_steps_by_index_and_other_variants_are_ignored(
        settings: Settings, make_trained: MakeTrained) -> None:
    run_id = log_training(settings, make_trained("enhanced", settings), public_dict(settings))
    evaluation = _evaluation([0.5, 1.5])
    log_evaluation(settings, run_id, {}, evaluation=evaluation)
    client = configure(settings).client
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id,
                                                                           "cost_sweep.sharpe"))
    assert history == [(i, pytest.approx(r.sharpe))
                       for i, r in enumerate(evaluation.variants["enhanced"].cost_sweep)]


def test_count_trials_counts_distinct_configurations(make_settings: Callable[..., Settings],
                                                     make_trained: MakeTrained) -> None:
    settings = make_settings()
    assert count_trials(settings) == 0
    ids = log_trained_variants(settings, [make_trained("baseline", settings),
                                          make_trained("enhanced", settings)])
    assert set(ids) == {"baseline", "enhanced"} and len(set(ids.values())) == 2
    assert count_trials(settings) == 2
    # The same configuration again (e.g. on newer data) is not a new trial ...
    log_training(settings, make_trained("baseline", settings, data_version="e" * 12),
                 public_dict(settings))
    assert count_trials(settings) == 2
    # ... a changed one is, in the same experiment.
    variants = {**settings.train.variants, "baseline": VariantSettings(window=15)}
    wider = make_settings(train={"variants": variants})
    log_training(wider, make_trained("baseline", wider), public_dict(wider))
    assert count_trials(wider) == 3


_json_leaf = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
              | st.text(max_size=5) | st.lists(st.integers(), max_size=3))
_keys = st.text(alphabet="abcxyz_", min_size=1, max_size=4)
_nested = st.recursive(_json_leaf, lambda children: st.dictionaries(_keys, children, max_size=3),
                       max_leaves=10)
# Two cores shared by many test runs: generation time is not what these tests are about.
_quick = hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_quick
@given(st.dictionaries(_keys, _nested, max_size=4))
def test_flatten_keeps_every_leaf_under_its_dotted_path(data: dict[str, Any]) -> None:
    flat = flatten(data)
    assert all(isinstance(v, str) for v in flat.values())

    def leaves(node: Any, prefix: str) -> dict[str, Any]:
        if isinstance(node, dict) and node:
            out: dict[str, Any] = {}
            for k, v in node.items():
                out.update(leaves(v, f"{prefix}{k}."))
            return out
        return {prefix[:-1]: node}

    expected = {} if not data else leaves(data, "")
    assert set(flat) == set(expected)
    for key, value in expected.items():
        assert flat[key] == (value if isinstance(value, str) else json.dumps(value))


@_quick
@given(st.text(max_size=300))
def test_metric_keys_are_always_acceptable_to_mlflow(name: str) -> None:
    key = metric_key(name)
    assert re.fullmatch(r"[/\w.\- ]*", key) and len(key) <= 250
    if re.fullmatch(r"[/\w.\- ]{0,250}", name):
        assert key == name
