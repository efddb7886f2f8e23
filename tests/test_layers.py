"""The layering in pyproject's ``[tool.importlinter]`` holds for the code under test:
``lint-imports`` (import-linter) on the ``finmlops`` package this suite imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import finmlops

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    src = str(Path(finmlops.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([exe, str(config), "--no-cache"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_every_layer_imports_only_the_layers_below_it_and_only_tracking_imports_mlflow(
        ) -> None:
    done = lint_imports(ROOT / "pyproject.toml")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "layers KEPT" in done.stdout
    assert "only tracking imports mlflow KEPT" in done.stdout


def test_a_lower_layer_importing_a_higher_one_is_reported(tmp_path: Path) -> None:
    """The contract is not vacuous: declaring ``errors`` above ``cli`` (which imports it)
    breaks it, naming the layers."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    flipped = text.replace('    "__main__",\n', '    "errors",\n    "__main__",\n', 1)
    flipped = flipped.replace('    "files",\n    "errors",\n]', '    "files",\n]', 1)
    assert flipped != text
    config = tmp_path / "pyproject.toml"
    config.write_text(flipped, encoding="utf-8")
    done = lint_imports(config)
    assert done.returncode == 1
    assert "layers BROKEN" in done.stdout
    assert "finmlops.cli is not allowed to import finmlops.errors" in done.stdout
