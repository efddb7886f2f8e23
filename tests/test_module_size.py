"""No module of the package is over 500 lines: past that a module holds more than one noun
and is split along its seam (as ``deploy/workflows.py`` and ``deploy/_steps.py`` were)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "finmlops"
MAX_LINES = 500


def oversized(root: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """Each ``*.py`` under ``root`` longer than ``limit`` lines -> its line count."""
    counts = {p.relative_to(root).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
              for p in sorted(root.rglob("*.py"))}
    return {name: n for name, n in counts.items() if n > limit}


def test_no_module_is_over_500_lines() -> None:
    assert (PACKAGE / "__init__.py").is_file()
    offenders = oversized(PACKAGE)
    assert not offenders, "modules over 500 lines: " + ", ".join(
        f"{name} ({n})" for name, n in offenders.items())


def test_a_module_over_the_limit_is_named_with_its_count(tmp_path: Path) -> None:
    """The check is not vacuous: a 501-line module in a sub-package is reported, one of
    exactly 500 lines is not."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "big.py").write_text("x = 1\n" * 501, encoding="utf-8")
    (tmp_path / "ok.py").write_text("x = 1\n" * 500, encoding="utf-8")
    assert oversized(tmp_path) == {"deploy/big.py": 501}
