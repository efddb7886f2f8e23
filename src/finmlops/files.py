"""Files every package writes the same way: atomically, and JSON without NaN.

A reader (another stage, another pod on the same volume, a browser) sees the old file or the
new one, never half of one: each write goes to a temporary name beside the target and is
renamed over it. The temporary name holds the pid *and* a random part, since the pid alone is
not unique across pods sharing a volume (every container may be pid 1).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["json_safe", "replace_dir", "temp_name", "write_atomic", "write_json", "write_text"]


def temp_name(path: Path) -> Path:
    """A hidden name beside ``path`` that no other process picks (pid and a random part)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Create ``path`` by ``write(tmp)`` on a temporary file, then rename it into place (the
    directory is created; a failed write leaves no temporary file behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: Path, text: str) -> Path:
    """``text`` as UTF-8 at ``path``, atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data: Any, *, indent: int | None = 2, sort_keys: bool = False,
               trailing_newline: bool = False) -> Path:
    """``data`` as strict JSON at ``path``, atomically: NaN and infinities become ``null``
    (:func:`json_safe`), so browsers and other languages parse the file."""
    text = json.dumps(json_safe(data), indent=indent, sort_keys=sort_keys, allow_nan=False,
                      default=str)
    return write_text(path, text + ("\n" if trailing_newline else ""))


def replace_dir(directory: Path, fill: Callable[[Path], object]) -> Path:
    """Replace ``directory`` by one that ``fill(tmp)`` populated: a reader finds the old
    directory or the complete new one (a failed fill leaves the old one in place)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(directory)
    tmp.mkdir()
    try:
        fill(tmp)
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def json_safe(value: Any) -> Any:
    """The same data as plain JSON values: mappings and sequences copied, numpy scalars as
    Python numbers, NaN and infinities as ``None`` (JSON has neither)."""
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | str | int) or value is None:
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    return _numpy_scalar(value)


def _numpy_scalar(value: Any) -> Any:
    """A numpy scalar as the Python value (``item()``), made safe; anything else unchanged."""
    item = getattr(value, "item", None)
    if item is None or getattr(value, "ndim", None) != 0:
        return value
    return json_safe(item())
