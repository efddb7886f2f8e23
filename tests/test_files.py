"""The one atomic-write helper and the one JSON sanitiser every package uses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finmlops.files import (
    json_safe,
    replace_dir,
    temp_name,
    write_atomic,
    write_json,
    write_text,
)

JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                        st.floats(allow_nan=True, allow_infinity=True))
TREES = st.recursive(JSON_LEAVES, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.tuples(kids, kids),
    st.dictionaries(st.text(max_size=4), kids, max_size=4)), max_leaves=20)


def _expected(value: object) -> object:
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_expected(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@given(TREES)
def test_json_safe_keeps_finite_values_and_nulls_the_rest(tree: object) -> None:
    safe = json_safe(tree)
    assert safe == _expected(tree)
    json.dumps(safe, allow_nan=False)  # strict JSON: raises on any NaN left


def test_json_safe_turns_numpy_scalars_into_python_values() -> None:
    safe = json_safe({"a": np.float32(0.5), "b": np.int64(3), "c": np.bool_(True),
                      "d": [np.float64("nan"), np.float64(-np.inf)]})
    assert safe == {"a": 0.5, "b": 3, "c": True, "d": [None, None]}
    assert [type(safe[k]) for k in "abc"] == [float, int, bool]


def test_temp_names_differ_within_one_process(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    names = {temp_name(target) for _ in range(100)}
    assert len(names) == 100
    assert all(n.parent == tmp_path and n.name.startswith(".state.json.") for n in names)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = write_text(tmp_path / "deep" / "out.json", "old")

    def half(tmp: Path) -> None:
        tmp.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, half)
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_write_json_is_strict_json(tmp_path: Path) -> None:
    path = write_json(tmp_path / "a.json", {"x": float("inf"), "y": [1.5, float("nan")]},
                      sort_keys=True, trailing_newline=True)
    text = path.read_text()
    assert text.endswith("}\n") and "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"x": None, "y": [1.5, None]}


def test_replace_dir_swaps_whole_directories(tmp_path: Path) -> None:
    target = tmp_path / "model"

    def first(d: Path) -> None:
        (d / "a").write_text("1")
        (d / "b").write_text("1")

    replace_dir(target, first)
    replace_dir(target, lambda d: (d / "a").write_text("2"))
    assert sorted(p.name for p in target.iterdir()) == ["a"]  # nothing of the old one kept
    assert (target / "a").read_text() == "2"

    def broken(d: Path) -> None:
        (d / "a").write_text("3")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        replace_dir(target, broken)
    assert (target / "a").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
