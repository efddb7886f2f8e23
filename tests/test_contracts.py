"""Reading a contract file: a missing or malformed file is one readable error naming the file,
the first wrong key and what to do, never a traceback or a half-read object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finmlops.contracts import AbtestSummary, ModelCard, read_evaluation
from finmlops.errors import ConfigError, ModelNotFoundError, StageError

CARD = {"variant": "baseline", "target": ["IBB"], "window": 20, "feature_names": ["ret_1"],
        "data_version": "v1", "weights_hash": "abc", "trained_until": "2018-12-31",
        "horizon": 1}


def test_a_card_round_trips_and_a_missing_key_is_named(tmp_path: Path) -> None:
    ModelCard(**CARD).write(tmp_path)
    assert ModelCard.read(tmp_path) == ModelCard(**CARD)
    broken = {k: v for k, v in CARD.items() if k != "window"}
    (tmp_path / "model.json").write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"model.json is not a model card \(window: Field "
                                          r"required\)$"):
        ModelCard.read(tmp_path)
    with pytest.raises(ModelNotFoundError, match=r"no model\.json in"):
        ModelCard.read(tmp_path / "nowhere")


def test_a_stage_file_names_its_key_and_the_stage_to_rerun(tmp_path: Path) -> None:
    bad = tmp_path / "abtest.json"
    bad.write_text(json.dumps({"experiment": "x"}), encoding="utf-8")
    with pytest.raises(StageError) as err:
        AbtestSummary.read_stage_file(bad, "A/B result", "abtest")
    message = str(err.value)
    assert message.startswith(f"{bad} is not an A/B result this finmlops reads (")
    assert message.endswith("run `finmlops run --only abtest` again")
    assert "\n" not in message
    with pytest.raises(StageError, match=r"^evaluation not found at .*--only evaluate` again$"):
        read_evaluation(tmp_path / "evaluation.json")
