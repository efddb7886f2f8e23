"""Shared helper for benchmarks: write the JSON result with machine info and print a table."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    """CPU count, platform and library versions, so figures can be compared across machines."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        info["torch"] = None
    for name in ("numpy", "pandas"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:  # pragma: no cover
            info[name] = None
    return info


def _print_table(name: str, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=name)
        for c in columns:
            table.add_column(c)
        for r in cells:
            table.add_row(*r)
        out = Console(highlight=False)
        if not out.is_terminal:  # a log file or pipe: do not squeeze columns to 80
            out = Console(highlight=False, width=160)
        out.print(table)
    except ImportError:  # pragma: no cover - rich is a dependency
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        for r in cells:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_results(name: str, rows: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (rows + meta + machine) and print the rows."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "name": name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "meta": meta,
        "rows": rows,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    _print_table(name, rows)
    print(f"wrote {path}")
    return path
