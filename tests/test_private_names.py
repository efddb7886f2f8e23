"""A private name (``_x``) is not imported from another module: what a second module needs is
public in its home (a private module, ``_values.py``, may hold public names for its package).
Submodules imported by their private name (``from finmlops.monitoring import _stats``) are
modules, not names, and are allowed."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "finmlops"


def private_imports(root: Path, package: str = "finmlops") -> list[str]:
    """``file: from module import _name`` for every private non-module name imported from a
    module of ``package`` under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.split(".")[0] == package):
                continue
            for alias in node.names:
                name = alias.name
                if not name.startswith("_") or name.startswith("__"):
                    continue
                sub = root.parent / Path(*node.module.split(".")) / name
                if sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file():
                    continue  # a private submodule
                found.append(f"{path.relative_to(root.parent).as_posix()}: "
                             f"from {node.module} import {name}")
    return found


def test_no_private_name_is_imported_across_modules() -> None:
    assert importlib.util.find_spec("finmlops") is not None
    offenders = private_imports(PACKAGE)
    assert not offenders, "private names imported across modules:\n" + "\n".join(offenders)


def test_the_check_names_a_private_import_and_passes_a_private_module(tmp_path: Path) -> None:
    pkg = tmp_path / "finmlops"
    (pkg / "part").mkdir(parents=True)
    (pkg / "part" / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "part" / "_stats.py").write_text("def _mean() -> None: ...\n", encoding="utf-8")
    (pkg / "use.py").write_text("from finmlops.part import _stats\n"
                                "from finmlops.part._stats import _mean\n", encoding="utf-8")
    assert private_imports(pkg) == ["finmlops/use.py: from finmlops.part._stats import _mean"]
