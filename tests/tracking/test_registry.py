"""Registration and aliases in a real MLflow registry; download gives a runnable ONNX model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from finmlops.config import Settings, VariantSettings, public_dict
from finmlops.errors import ConfigError, ModelNotFoundError
from finmlops.models import TrainedVariant
from finmlops.tracking import (
    configure,
    download_arms,
    download_model,
    list_models,
    log_training,
    register,
    resolve,
)

MakeTrained = Callable[..., TrainedVariant]


def _register(settings: Settings, make_trained: MakeTrained, variant: str,
              **kwargs: object) -> str:
    trained = make_trained(variant, settings, **kwargs)
    run_id = log_training(settings, trained, public_dict(settings))
    return register(settings, run_id, variant, trained.data_version).version


def _aliases(settings: Settings) -> dict[str, str]:
    return {a: row["version"] for row in list_models(settings) for a in row["aliases"]}


def test_first_baseline_is_champion_newest_is_challenger(settings: Settings,
                                                         make_trained: MakeTrained) -> None:
    assert _register(settings, make_trained, "baseline") == "1"
    assert _aliases(settings) == {"champion": "1", "challenger": "1", "baseline": "1"}
    assert _register(settings, make_trained, "enhanced") == "2"
    assert _aliases(settings) == {"champion": "1", "baseline": "1", "challenger": "2",
                                  "enhanced": "2"}
    # A retrained baseline: the variant alias follows the newest version, champion stays.
    assert _register(settings, make_trained, "baseline", bias=0.5) == "3"
    assert _aliases(settings) == {"champion": "1", "baseline": "3", "challenger": "3",
                                  "enhanced": "2"}
    info = resolve(settings, "enhanced")
    assert (info.variant, info.weights_hash, info.data_version) == ("enhanced", "w-enhanced-0.0",
                                                                    "d" * 12)
    assert info.uri == f"models:/{settings.registered_model}/2"
    # The version's source is the run's LoggedModel, which lists the version back.
    client = configure(settings).client
    (output,) = client.get_run(info.run_id).outputs.model_outputs
    assert info.source == f"models:/{output.model_id}"
    links = json.loads(client.get_logged_model(output.model_id).tags["mlflow.modelVersions"])
    assert links == [{"name": settings.registered_model, "version": "2"}]


def test_champion_waits_for_the_baseline(settings: Settings, make_trained: MakeTrained) -> None:
    _register(settings, make_trained, "enhanced")
    assert "champion" not in _aliases(settings)
    _register(settings, make_trained, "baseline")
    assert _aliases(settings)["champion"] == "2"


def test_the_champion_starts_as_the_experiments_reference_arm(
        make_settings: Callable[..., Settings], make_trained: MakeTrained) -> None:
    """The A/B test compares against ``experiment.default``; the champion must start there
    too, or a promotion would replace a model the experiment never used as its reference."""
    settings = make_settings(experiment={"default": "enhanced"})
    _register(settings, make_trained, "baseline")
    assert "champion" not in _aliases(settings)
    _register(settings, make_trained, "enhanced")
    assert _aliases(settings)["champion"] == "2"


def test_without_a_baseline_the_first_registered_is_champion(
        make_settings: Callable[..., Settings], make_trained: MakeTrained) -> None:
    settings = make_settings(
        train={"variants": {"small": VariantSettings(), "large": VariantSettings(hidden=48)}},
        experiment={"default": None, "candidates": [{"name": "small", "weight": 1},
                                                    {"name": "large", "weight": 1}]},
    )
    _register(settings, make_trained, "large")
    _register(settings, make_trained, "small")
    assert _aliases(settings) == {"champion": "1", "large": "1", "challenger": "2", "small": "2"}


def test_registering_a_run_twice_returns_the_same_version(settings: Settings,
                                                          make_trained: MakeTrained) -> None:
    trained = make_trained("baseline", settings)
    run_id = log_training(settings, trained, public_dict(settings))
    first = register(settings, run_id, "baseline", trained.data_version)
    _register(settings, make_trained, "enhanced")
    before = _aliases(settings)
    again = register(settings, run_id, "baseline", trained.data_version)
    assert again.version == first.version == "1"
    assert len(list_models(settings)) == 2
    assert _aliases(settings) == before


def test_resolve_by_alias_number_and_latest(settings: Settings, make_trained: MakeTrained) -> None:
    _register(settings, make_trained, "baseline")
    _register(settings, make_trained, "enhanced")
    assert resolve(settings, "champion").version == "1"
    assert resolve(settings, "2").variant == "enhanced"
    assert resolve(settings, "v2").version == "2"
    assert resolve(settings, "latest").version == "2"
    assert resolve(settings, "enhanced").aliases == ("challenger", "enhanced")
    for bad in ("7", "previous-champion", "no such alias!", ""):
        with pytest.raises(ModelNotFoundError):
            resolve(settings, bad)


def test_unknown_run_and_bad_variant_names_are_clear_errors(settings: Settings) -> None:
    with pytest.raises(ModelNotFoundError, match="no tracking run"):
        register(settings, "0" * 32, "baseline", "d")
    for name in ("champion", "v2", "latest", "a.b"):
        with pytest.raises(ConfigError):
            register(settings, "0" * 32, name, "d")


def test_list_models_shows_versions_newest_first_with_headline_metrics(
        settings: Settings, make_trained: MakeTrained) -> None:
    assert list_models(settings) == []
    _register(settings, make_trained, "baseline", accuracy=0.52)
    _register(settings, make_trained, "enhanced", accuracy=0.56)
    rows = list_models(settings)
    assert [r["version"] for r in rows] == ["2", "1"]
    enhanced = rows[0]
    assert enhanced["variant"] == "enhanced" and enhanced["data_version"] == "d" * 12
    assert enhanced["accuracy"] == pytest.approx(0.56)
    assert enhanced["accuracy_ci"] == pytest.approx([0.53, 0.59])
    assert enhanced["auc"] == pytest.approx(0.55) and enhanced["sharpe"] is None
    assert enhanced["created"].endswith("+00:00") and len(enhanced["run_id"]) == 32
    json.dumps(rows)  # plain data, ready for --json


def test_download_model_gives_a_runnable_onnx_model(settings: Settings, make_trained: MakeTrained,
                                                    tmp_path: Path,
                                                    tiny_shape: tuple[int, int]) -> None:
    import onnxruntime as ort

    _register(settings, make_trained, "baseline", bias=0.0)
    _register(settings, make_trained, "enhanced", bias=1.0)
    dest = download_model(settings, "enhanced", tmp_path / "serve" / "enhanced")
    assert dest == tmp_path / "serve" / "enhanced"
    # The contract's two files at the root, beside the MLflow model's own (MLmodel, env, example).
    assert {"model.onnx", "model.json", "MLmodel", "input_example.json"} <= {
        p.name for p in dest.iterdir()}
    meta = json.loads((dest / "model.json").read_text())
    assert meta["model_version"] == "2" and meta["aliases"] == ["challenger", "enhanced"]
    assert meta["variant"] == "enhanced" and meta["registered_model"] == "ibb-direction"

    session = ort.InferenceSession(str(dest / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.zeros((5, *tiny_shape), dtype=np.float32)
    (p,) = session.run(["probability"], {"features": x})
    assert p.shape == (5,) and p.dtype == np.float32
    assert p == pytest.approx(1 / (1 + np.exp(-1.0)))  # the enhanced model's bias, not baseline
    with pytest.raises(ModelNotFoundError):
        download_model(settings, "previous-champion", tmp_path / "none")


def test_two_homes_in_one_process_do_not_see_each_other(make_settings: Callable[..., Settings],
                                                        make_trained: MakeTrained) -> None:
    one, two = make_settings("one"), make_settings("two")
    _register(one, make_trained, "baseline")
    _register(one, make_trained, "enhanced")
    assert list_models(two) == []
    with pytest.raises(ModelNotFoundError):
        resolve(two, "champion")
    _register(two, make_trained, "enhanced")
    assert [r["version"] for r in list_models(two)] == ["1"]
    assert [r["version"] for r in list_models(one)] == ["2", "1"]
    assert resolve(one, "champion").variant == "baseline"
    assert (two.home / "mlartifacts").is_dir() and (one.home / "mlartifacts").is_dir()


def test_every_arm_downloads_the_version_its_alias_or_ref_names(
        settings: Settings, make_trained: MakeTrained, tmp_path: Path) -> None:
    """``finmlops serve`` and the abtest stage download arms the same way: each arm's variant
    alias by default (a retrained baseline is v3), another alias or a version when asked; the
    card of each carries the version it is."""
    from finmlops.contracts import ModelCard

    for variant, bias in (("baseline", 0.0), ("enhanced", 1.0), ("baseline", 0.5)):
        _register(settings, make_trained, variant, bias=bias)
    got = download_arms(settings, tmp_path / "serving")
    assert got == {"baseline": tmp_path / "serving" / "baseline",
                   "enhanced": tmp_path / "serving" / "enhanced"}
    assert {a: ModelCard.read(d).version for a, d in got.items()} == {"baseline": "3",
                                                                      "enhanced": "2"}
    pinned = download_arms(settings, tmp_path / "pinned", {"baseline": "champion",
                                                            "enhanced": "2"})
    assert {a: ModelCard.read(d).version for a, d in pinned.items()} == {"baseline": "1",
                                                                         "enhanced": "2"}
