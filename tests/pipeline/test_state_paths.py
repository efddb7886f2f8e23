"""The run state is relocatable: absolute paths inside the home are stored as ``<home>/...``
and resolved in whichever home reads them; every other value is stored as it is."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from finmlops.config import Settings
from finmlops.pipeline import load_state, merge_state, relative_to_home, resolve_in_home

NAME = st.text(alphabet="abcxyz019_-.", min_size=1, max_size=8).filter(
    lambda s: s not in (".", ".."))


def test_paths_inside_the_home_are_written_relative_to_it(settings: Callable[..., Settings],
                                                          tmp_path: Path) -> None:
    s = settings()
    model = tmp_path / "runs" / "train" / "abc" / "baseline"
    outside = tmp_path.parent / "elsewhere.csv"
    merge_state(s, {"trained": {"baseline": {"model_dir": str(model),
                                             "oos_path": model / "oos.parquet",
                                             "metrics": {"accuracy": 0.5}}},
                    "features": {"path": str(outside), "columns": ["a/b", "f.parquet"]},
                    "config": {"home": str(tmp_path)}})
    raw = json.loads((tmp_path / "state.json").read_text())
    assert raw["trained"]["baseline"] == {"model_dir": "<home>/runs/train/abc/baseline",
                                          "oos_path": "<home>/runs/train/abc/baseline/oos.parquet",
                                          "metrics": {"accuracy": 0.5}}
    assert raw["features"] == {"path": str(outside), "columns": ["a/b", "f.parquet"]}
    assert raw["config"] == {"home": "<home>"}
    back = load_state(s)
    assert back["trained"]["baseline"]["oos_path"] == str(model / "oos.parquet")
    assert back["config"] == {"home": str(tmp_path)}


def test_a_copied_home_reads_its_own_files(settings: Callable[..., Settings],
                                           tmp_path: Path) -> None:
    s = settings()
    merge_state(s, {"report": {"path": str(tmp_path / "reports" / "r.html")}})
    moved = tmp_path.parent / f"{tmp_path.name}-moved"
    shutil.copytree(tmp_path, moved)
    there = s.model_copy(update={"home": moved})
    assert load_state(there)["report"]["path"] == str(moved / "reports" / "r.html")
    assert load_state(s)["report"]["path"] == str(tmp_path / "reports" / "r.html")


def test_a_state_written_with_absolute_paths_still_reads(settings: Callable[..., Settings],
                                                         tmp_path: Path) -> None:
    s = settings()
    absolute = str(tmp_path / "runs" / "features" / "x" / "features.parquet")
    (tmp_path / "state.json").write_text(json.dumps({"features": {"path": absolute}}))
    assert load_state(s)["features"]["path"] == absolute


@given(parts=st.lists(NAME, min_size=0, max_size=4))
def test_recorded_then_resolved_is_the_same_path_in_any_home(parts: list[str]) -> None:
    s = Settings(home=Path("/srv/finmlops-home"))
    path = Path("/srv/finmlops-home", *parts)
    recorded = relative_to_home(s, path)
    assert recorded.startswith("<home>") and "/srv" not in recorded
    assert Path(resolve_in_home(s, recorded)) == path
    moved = Settings(home=Path("/mnt/copy"))
    assert Path(resolve_in_home(moved, recorded)) == Path("/mnt/copy", *parts)


@given(value=st.one_of(st.lists(NAME, min_size=1, max_size=4).map(
    lambda p: str(Path("/srv/other", *p))), st.text(max_size=20).filter(
    lambda t: not t.startswith(("/", "<home>")))))
def test_other_values_are_stored_as_they_are(value: str) -> None:
    s = Settings(home=Path("/srv/finmlops-home"))
    assert relative_to_home(s, value) == value
    assert resolve_in_home(s, value) == value
