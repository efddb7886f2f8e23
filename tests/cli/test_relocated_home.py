"""A home is relocatable: copied elsewhere after ``finmlops run --until train``, the copy
goes on (``evaluate``, ``report``, each a new process as a user would run them) from its own
files while the old home is gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from finmlops.config import load_settings
from finmlops.pipeline import load_state

SMALL = """
data:
  start: 2012-01-01
train:
  min_train_years: 3
  cutoff: 2018-12-31
  variants:
    baseline: {architecture: lstm, features: core, window: 5, hidden: 4, epochs: 1}
    enhanced: {architecture: gru, features: full, window: 5, hidden: 4, epochs: 1}
"""


@dataclass(frozen=True)
class Moved:
    old: Path
    new: Path
    config: Path
    codes: tuple[int, int]
    """Exit codes of ``evaluate`` and ``report`` in the new home."""
    stderr: str


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Moved:
    root = tmp_path_factory.mktemp("relocate")
    cfg = root / "finmlops.yaml"
    cfg.write_text(SMALL)
    old, new = root / "home", root / "copied" / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINMLOPS_")}

    def finmlops(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "finmlops", "--config", str(cfg), *args],
                              env={**env, "FINMLOPS_HOME": str(home)}, cwd=root,
                              capture_output=True, text=True, timeout=600, check=False)

    trained = finmlops(old, "run", "--until", "train")
    assert trained.returncode == 0, trained.stderr
    shutil.copytree(old, new, symlinks=True)
    old.rename(root / "gone")  # nothing may read or write the old home any more
    evaluated, reported = finmlops(new, "evaluate"), finmlops(new, "report")
    return Moved(old=old, new=new, config=cfg, codes=(evaluated.returncode, reported.returncode),
                 stderr=evaluated.stderr + reported.stderr)


@pytest.mark.slow
@pytest.mark.integration
def test_the_copy_evaluates_and_reports_from_its_own_files(moved: Moved) -> None:
    assert moved.codes == (0, 0), moved.stderr
    state = load_state(load_settings(moved.config, environ={"FINMLOPS_HOME": str(moved.new)}))
    paths = [state["features"]["path"], state["evaluation"]["path"], state["report"]["path"],
             *(p for t in state["trained"].values() for p in (t["model_dir"], t["oos_path"]))]
    for p in paths:
        assert Path(p).is_relative_to(moved.new), p
        assert Path(p).exists(), p
    raw = (moved.new / "state.json").read_text()
    assert str(moved.old) not in raw and str(moved.new) not in raw  # stored relative
    evaluation = json.loads(Path(state["evaluation"]["path"]).read_text())
    assert set(evaluation["predictions"]) == {"baseline", "enhanced"}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.xfail(strict=True, reason=(
    "MLflow's SQLite store records absolute artifact locations (experiments.artifact_location, "
    "runs.artifact_uri, model_versions.source): evaluate logs its artifacts into the old home. "
    "The fix belongs to finmlops.tracking (re-point a local store's locations when the home "
    "moved); when it lands this test passes and strict xfail fails: drop the marker."))
def test_the_old_home_is_not_touched(moved: Moved) -> None:
    assert moved.codes == (0, 0), moved.stderr
    assert not moved.old.exists(), sorted(str(p) for p in moved.old.rglob("*"))[:5]
