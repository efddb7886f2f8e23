"""Training and evaluation runs in a real MLflow store: params, metrics, artifacts, trials."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finmlops.config import Settings, VariantSettings, public_dict
from finmlops.errors import ModelNotFoundError
from finmlops.models import TrainedVariant
from finmlops.tracking import (
    configure,
    count_trials,
    log_evaluation,
    log_trained_variants,
    log_training,
)
from finmlops.tracking.runs import flatten, metric_key

MakeTrained = Callable[..., TrainedVariant]


def _artifacts(client: Any, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def test_training_run_records_config_metrics_and_files(
        settings: Settings, make_trained: MakeTrained, tiny_shape: tuple[int, int]) -> None:
    trained = make_trained("baseline", settings)
    run_id = log_training(settings, trained, public_dict(settings))
    client = configure(settings).client
    run = client.get_run(run_id)

    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == configure(settings).experiment_id
    params = run.data.params
    assert params["train.seed"] == "42" and params["seed"] == "42"
    assert params["variant.window"] == str(settings.train.variants["baseline"].window)
    assert params["train.variants.enhanced.architecture"] == "gru"
    assert params["data_version"] == trained.data_version
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", params["git_commit"])
    assert params["features.target"] == '["IBB"]'

    tags = run.data.tags
    assert (tags["variant"], tags["weights_hash"]) == ("baseline", trained.weights_hash)
    assert tags["data_version"] == trained.data_version and len(tags["config_hash"]) == 16

    metrics = run.data.metrics
    assert metrics["accuracy"] == pytest.approx(0.54)
    assert metrics["naive.always_up.accuracy"] == pytest.approx(0.53)
    folds = client.get_metric_history(run_id, "fold.accuracy")
    assert sorted((m.step, m.value) for m in folds) == [(0, 0.5), (1, 0.58)]

    assert _artifacts(client, run_id) == {
        "model/model.onnx", "model/model.json", "model/signature.json", "features.json",
        "oos/oos.parquet"}
    local = Path(client.download_artifacts(run_id, "model/signature.json",
                                           str(settings.home / "dl")))
    signature = json.loads(local.read_text())
    assert signature == {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, *tiny_shape]}],
        "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1]}],
    }


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
