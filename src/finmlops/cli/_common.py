"""What every command shares: loading settings once, printing, and ``--json`` output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from finmlops.config import Settings


JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def settings_from(ctx: typer.Context, overrides: dict[str, Any] | None = None) -> Settings:
    """The settings for this invocation: the app-level ``--config`` plus command overrides."""
    from finmlops.config import load_settings  # pydantic-settings: not needed for --help

    root = ctx.find_root()
    config: Path | None = (root.obj or {}).get("config")
    return load_settings(config, overrides={k: v for k, v in (overrides or {}).items()
                                            if v is not None})


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def console(stderr: bool = False) -> Any:
    """A rich console; when output is not a terminal (CI, a pipe) lines are 160 wide, not 80."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)
