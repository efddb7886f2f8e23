"""Loading model directories: signatures checked, typed errors, cheap imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from serving_support import expected_probability, make_settings, write_model

from finmlops.errors import ConfigError, ModelNotFoundError
from finmlops.serving.runtime import discover, load_model, load_models


def test_load_and_predict_match_the_graph(models: dict[str, Path]) -> None:
    m = load_model("enhanced", models["enhanced"])
    assert (m.version, m.window, m.n_features, m.input_name) == ("7", 4, 3, "features")
    x = np.random.default_rng(0).normal(size=(5, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(m.predict(x), expected_probability("enhanced", x), rtol=1e-5)


def test_discover_finds_one_dir_per_arm(model_root: Path, tmp_path: Path) -> None:
    assert set(discover(model_root)) == {"baseline", "enhanced", "challenger"}
    with pytest.raises(ModelNotFoundError):
        discover(tmp_path / "missing")
    with pytest.raises(ModelNotFoundError):
        discover(tmp_path)


def test_bad_model_dirs_are_typed_errors(tmp_path: Path, models: dict[str, Path]) -> None:
    with pytest.raises(ModelNotFoundError):
        load_model("x", tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(ConfigError):
        load_model("broken", broken)
    shutil.copytree(models["baseline"], tmp_path / "bad_json")
    (tmp_path / "bad_json" / "model.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_model("bad_json", tmp_path / "bad_json")


def test_arms_must_share_one_signature(tmp_path: Path, models: dict[str, Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import serving_support

    monkeypatch.setattr(serving_support, "WINDOW", 6)
    other = write_model(tmp_path / "wide", "enhanced")
    with pytest.raises(ConfigError, match="signature"):
        load_models({"baseline": models["baseline"], "wide": other})


def test_an_arm_without_a_model_keeps_the_service_unready(tmp_path: Path,
                                                          models: dict[str, Path]) -> None:
    from finmlops.serving import create_app

    app = create_app(make_settings(tmp_path), {"baseline": models["baseline"]})
    app.start()
    try:
        assert app.wait_loaded(10) is False
        error = app.plane.status()["load_error"]
        assert error is not None and "enhanced" in error
    finally:
        app.stop()


def test_importing_serving_and_the_cli_command_stays_light() -> None:
    code = ("import sys, finmlops.serving, finmlops.cli.serve; "
            "heavy = [m for m in ('mlflow', 'onnxruntime', 'onnx', 'torch') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
