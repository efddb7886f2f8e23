"""Test helper modules are imported by their bare name (pytest puts each test directory on
``sys.path``), so two of them with one name would shadow each other depending on which
directory is imported first: every helper module's name is unique across ``tests/``."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def clashes(root: Path) -> dict[str, list[str]]:
    """Helper module names (not tests, not conftest) found in more than one directory."""
    where: defaultdict[str, list[str]] = defaultdict(list)
    for path in root.rglob("*.py"):
        if path.name.startswith("test_") or path.name in ("conftest.py", "__init__.py"):
            continue
        where[path.stem].append(path.relative_to(root).as_posix())
    return {name: sorted(paths) for name, paths in where.items() if len(paths) > 1}


def test_every_helper_module_name_is_unique() -> None:
    assert (TESTS / "model_support.py").is_file()
    assert clashes(TESTS) == {}


def test_a_clash_is_named_with_both_paths(tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x_support.py").write_text("", encoding="utf-8")
        (tmp_path / d / "test_x.py").write_text("", encoding="utf-8")
    assert clashes(tmp_path) == {"x_support": ["a/x_support.py", "b/x_support.py"]}
