"""The commands the cluster loop's steps run that a laptop run does not: ``--outputs`` (what
a step hands on), ``data validate``, ``features --dataset-version``, ``predict`` through a
real service into the ledger, ``abtest feedback --since``, ``deploy report-failure``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from finmlops.cli import main
from finmlops.cli.deploy import failure_line
from finmlops.cli.predict import signal

END = "2020-03-31"


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, Path]:
    """A config with a home of its own and the bundled bars ingested up to ``END``."""
    cfg = tmp_path / "finmlops.yaml"
    cfg.write_text(yaml.safe_dump({"home": str(tmp_path / "home"),
                                   "data": {"start": "2019-01-01", "end": END}}))
    assert main(["--config", str(cfg), "--outputs", str(tmp_path / "out"), "ingest"]) == 0
    return cfg, tmp_path / "out"


def test_outputs_are_one_file_each_and_only_with_the_option(home: tuple[Path, Path],
                                                            tmp_path: Path,
                                                            capsys: Any) -> None:
    cfg, out = home
    version = (out / "dataset_version").read_text()
    assert len(version) == 16 and "\n" not in version  # as Argo passes it on, unchanged
    assert sorted(p.name for p in out.iterdir()) == ["dataset_version"]  # no temp file left
    capsys.readouterr()
    assert main(["--config", str(cfg), "data", "show", "latest"]) == 0
    assert version in capsys.readouterr().out
    assert main(["--config", str(cfg), "ingest"]) == 0  # no --outputs: nothing written
    assert sorted(p.name for p in out.iterdir()) == ["dataset_version"]


def test_validate_checks_freshness_and_writes_outputs_only_when_valid(
        home: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    cfg, _ = home
    out = tmp_path / "validated"
    assert main(["--config", str(cfg), "--outputs", str(out), "data", "validate", "latest",
                 "--as-of", "2020-04-01"]) == 0
    assert (out / "newest").read_text() == "2020-03-31"
    report = json.loads((out / "validation.json").read_text())
    assert report["ok"] and report["newest"] == {"IBB": "2020-03-31", "SPY": "2020-03-31"}
    capsys.readouterr()
    stale = tmp_path / "stale"
    assert main(["--config", str(cfg), "--outputs", str(stale), "data", "validate",
                 "--as-of", "2020-04-10"]) == 3  # a user error: Argo does not retry it
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is 8 weekdays before 2020-04-10 (at most 4): stale" in err
    assert not stale.exists()
    assert main(["--config", str(cfg), "data", "validate", "--as-of", "yesterday"]) == 2
    assert "--as-of must be a date" in capsys.readouterr().err


def test_features_pins_a_stored_version_without_ingesting(home: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    from finmlops.config import load_settings
    from finmlops.data import list_versions
    from finmlops.pipeline import load_state

    cfg, out = home
    version = (out / "dataset_version").read_text()
    pinned = tmp_path / "pinned"
    assert main(["--config", str(cfg), "--outputs", str(pinned), "features",
                 "--dataset-version", version[:8]]) == 0
    assert (pinned / "dataset_version").read_text() == version  # a prefix, resolved
    settings = load_settings(cfg, environ={})
    assert load_state(settings)["dataset_version"] == version
    assert len(list_versions(settings)) == 1  # nothing was ingested
    assert main(["--config", str(cfg), "features", "--dataset-version", "feedfacecafe"]) == 5


@pytest.mark.parametrize(("p", "rule", "dead_band", "expected"), [
    (0.51, "long_flat", 0.0, "long"), (0.5, "long_flat", 0.0, "flat"),
    (0.2, "long_short", 0.0, "short"), (0.52, "long_flat", 0.05, "hold"),
    (0.56, "long_short", 0.05, "long"), (0.44, "long_short", 0.05, "short"),
])
def test_the_signal_is_the_evaluation_rules_position(p: float, rule: str, dead_band: float,
                                                     expected: str) -> None:
    assert signal(p, rule, 0.5, dead_band) == expected


def _export(root: Path, variant: str, window: int, names: list[str], seed: int) -> Path:
    import torch

    from finmlops.config import VariantSettings
    from finmlops.models._modules import DirectionModel, Preprocess, build_core
    from finmlops.models.export import export_onnx, model_card, write_model_json

    out = root / variant
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    index = list(range(len(names)))
    model = DirectionModel(
        Preprocess(window, index, np.zeros(len(names), np.float32),
                   rng.uniform(0.5, 2.0, len(names)).astype(np.float32)),
        build_core(VariantSettings(architecture="mlp", window=window, hidden=4),
                   len(index))).eval()
    export_onnx(model, out / "model.onnx", window, len(names))
    write_model_json(out / "model.json", model_card(
        variant=variant, target=["IBB"], window=window, feature_names=names,
        data_version="d", weights_hash=f"w{seed}", trained_until=None, horizon=1,
        reference=None))
    return out


@pytest.mark.integration
def test_predict_scores_the_days_through_the_service_into_the_ledger(
        home: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    from finmlops.config import load_settings
    from finmlops.features import feature_names
    from finmlops.ledger import open_ledger
    from finmlops.serving import create_app, run_in_thread

    cfg, _ = home
    settings = load_settings(cfg, environ={})
    window = max(v.window for v in settings.train.variants.values())
    names = feature_names("full", settings.features.context)
    models = {v: _export(tmp_path / "models", v, window, names, i)
              for i, v in enumerate(("baseline", "enhanced"))}
    handle = run_in_thread(create_app(settings, models), "127.0.0.1", 0)
    try:
        out = tmp_path / "out-predict"
        assert main(["--config", str(cfg), "--outputs", str(out), "predict", "--url",
                     handle.url, "--since", "2020-03-25", "--dataset", ""]) == 0
        doc = json.loads((out / "predictions.json").read_text())
        assert (out / "predicted").read_text() == "5"
        assert doc["as_of"] == "2020-03-31" and doc["since"] == "2020-03-25"
        rows = doc["predictions"]
        assert [r["routing_key"] for r in rows] == [
            f"IBB:2020-03-{d}" for d in (25, 26, 27, 30, 31)]
        assert {r["arm"] for r in rows} <= {"baseline", "enhanced"}
        for r in rows:
            assert r["signal"] == signal(r["probability"], "long_flat", 0.5, 0.0)
        capsys.readouterr()
        assert main(["--config", str(cfg), "predict", "--url", handle.url]) == 0
        assert capsys.readouterr().out.startswith("IBB:2020-03-31: ")  # the newest day only
    finally:
        handle.stop()
    ledger = open_ledger(settings.ledger_url, create=False)
    try:
        committed = {r["prediction_id"]: r for r in ledger.predictions()}
    finally:
        ledger.close()
    assert {r["prediction_id"] for r in rows} <= set(committed)
    assert {committed[r["prediction_id"]]["routing_key"] for r in rows} == {
        r["routing_key"] for r in rows}


@pytest.mark.integration
def test_predict_refuses_a_service_with_another_signature(home: tuple[Path, Path],
                                                          tmp_path: Path, capsys: Any) -> None:
    from finmlops.config import load_settings
    from finmlops.serving import create_app, run_in_thread

    cfg, _ = home
    settings = load_settings(cfg, environ={})
    names = [f"x{i}" for i in range(3)]
    models = {v: _export(tmp_path / "m", v, 2, names, i)
              for i, v in enumerate(("baseline", "enhanced"))}
    handle = run_in_thread(create_app(settings, models), "127.0.0.1", 0)
    try:
        assert main(["--config", str(cfg), "predict", "--url", handle.url]) == 9
    finally:
        handle.stop()
    err = capsys.readouterr().err
    assert "takes windows [2, 3], the settings give [20, 21]" in err and err.count("\n") == 1
    assert main(["--config", str(cfg), "predict", "--url", "http://127.0.0.1:9"]) == 4
    assert "unreachable" in capsys.readouterr().err


def test_feedback_since_covers_every_known_day(home: tuple[Path, Path], capsys: Any) -> None:
    """``--since`` writes an outcome for each as-of day whose next-open fill is known (two
    bars later), oldest first; without it, the newest such day only."""
    from finmlops.config import load_settings
    from finmlops.ledger import open_ledger

    cfg, _ = home
    settings = load_settings(cfg, environ={})
    open_ledger(settings.ledger_url).close()  # an empty ledger: every key is unknown
    assert main(["--config", str(cfg), "abtest", "feedback", "--ledger", "--since",
                 "2020-03-23", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["date"] for o in out["posted"]] == [
        "2020-03-23", "2020-03-24", "2020-03-25", "2020-03-26", "2020-03-27"]
    assert out["answer"]["unknown"] == [f"IBB:{o['date']}" for o in out["posted"]]
    assert main(["--config", str(cfg), "abtest", "feedback", "--ledger", "--json"]) == 0
    assert [o["date"] for o in json.loads(capsys.readouterr().out)["posted"]] == ["2020-03-27"]
    assert main(["--config", str(cfg), "abtest", "feedback", "--ledger", "--since",
                 "2020-03-23", "--date", "2020-03-24"]) == 2


@pytest.mark.parametrize(("failures", "expected"), [
    ('[{"displayName": "validate", "phase": "Failed", "message": "Error (exit code 3)"}]',
     "workflow w ended Failed: validate (Failed: Error (exit code 3))"),
    ("[]", "workflow w ended Failed: no failed step recorded"),
    ("", "workflow w ended Failed: no failed step recorded"),
    ("not json {", "workflow w ended Failed: not json {"),
    ('[{"templateName": "t", "phase": "Error", "message": "a\\n  b"}, 3]',
     "workflow w ended Failed: t (Error: a b)"),
])
def test_failure_lines(failures: str, expected: str) -> None:
    assert failure_line("w", "Failed", failures) == expected


def test_report_failure_is_one_line_and_exits_0(capsys: Any) -> None:
    assert main(["deploy", "report-failure", "--workflow", "finmlops-daily-abc", "--status",
                 "Error", "--failures", '[{"displayName": "ingest", "phase": "Error", '
                 '"message": "pod deleted"}]']) == 0
    assert capsys.readouterr().out == (
        "workflow finmlops-daily-abc ended Error: ingest (Error: pod deleted)\n")


def test_weekday_arithmetic_of_freshness() -> None:
    from finmlops.data.quality import weekdays_between

    fri, sat, mon = dt.date(2024, 5, 3), dt.date(2024, 5, 4), dt.date(2024, 5, 6)
    assert weekdays_between(fri, sat) == 0 and weekdays_between(fri, mon) == 1
    assert weekdays_between(mon, fri) == 0
