"""What every command shares: loading settings once, printing, and ``--json`` output."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from finmlops.config import Settings
    from finmlops.contracts import RunState


JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def settings_from(ctx: typer.Context, overrides: dict[str, Any] | None = None) -> Settings:
    """The settings for this invocation: the app-level ``--config`` plus command overrides
    (dotted keys; ``None`` means the flag was not given). An invalid override is an error
    naming the flag it came from (:func:`flag_names`)."""
    from finmlops.config import load_settings  # pydantic-settings: not needed for --help

    root = ctx.find_root()
    config: Path | None = (root.obj or {}).get("config")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return load_settings(config, overrides=given, override_names=flag_names(ctx, given))


def flag_names(ctx: typer.Context, overrides: dict[str, Any]) -> dict[str, str]:
    """The command-line flag behind each override key: the option named like the key's last
    part (``data.source`` <- ``--source``), else the one option whose value it is
    (``data.csv_path`` <- ``--csv``, ``abtest.replay_start`` <- ``--start``)."""
    options = {p.name: _long_flag(p.opts) for p in ctx.command.params
               if p.name and p.opts and p.opts[0].startswith("-")}
    given = {name: ctx.params.get(name) for name in options if ctx.params.get(name) is not None}
    out: dict[str, str] = {}
    for key, value in overrides.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf in given:
            out[key] = options[leaf]
            continue
        same = [name for name, raw in given.items() if _same_value(raw, value)]
        if len(same) == 1:
            out[key] = options[same[0]]
    return out


def _long_flag(opts: list[str]) -> str:
    return next((o for o in opts if o.startswith("--")), opts[0])


def _same_value(raw: Any, value: Any) -> bool:
    """Whether ``value`` is the flag's ``raw`` value, maybe converted (a path to a string, a
    datetime to its date)."""
    if isinstance(raw, dt.datetime) and isinstance(value, dt.date):
        raw = raw.date() if not isinstance(value, dt.datetime) else raw
    return bool(raw == value or str(raw) == str(value))


def run_stage(settings: Settings, names: str | Sequence[str], as_json: bool = False,
              options: Mapping[str, Mapping[str, Any]] | None = None) -> RunState:
    """Run the named stages of :data:`finmlops.pipeline.STAGES` (in pipeline order) with a
    progress display, on stderr when the command prints JSON; the merged run state."""
    from finmlops.cli._progress import ConsoleReporter
    from finmlops.contracts import WRITER, RunState
    from finmlops.pipeline import STAGES, run_stages, select

    chosen = select(STAGES, only=[names] if isinstance(names, str) else list(names))
    with ConsoleReporter(console(stderr=as_json)) as reporter:
        state = run_stages(settings, chosen, reporter, options=options)
    written = {s.name for s in chosen}
    return RunState.of(state, *(k for k, stage in WRITER.items() if stage in written))


def current_user() -> str:
    """Who runs the command, for audit trails: ``$USER``, else the login name."""
    import getpass
    import os

    try:
        return os.environ.get("USER") or getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def console(stderr: bool = False) -> Any:
    """A rich console; when output is not a terminal (CI, a pipe) lines are 160 wide, not 80."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)


def outputs_dir(ctx: typer.Context) -> Path | None:
    """The root ``--outputs`` directory, when given."""
    out: Path | None = (ctx.find_root().obj or {}).get("outputs")
    return out


def emit(ctx: typer.Context, values: dict[str, Any]) -> None:
    """Write each value as the file ``<--outputs>/<name>`` (what Argo reads as an output
    parameter or uploads as an artifact): a string as it is, anything else as JSON (so a
    boolean is ``true``/``false``). Nothing without ``--outputs``. Each file is replaced
    atomically, so a reader never sees half of one."""
    from finmlops.files import write_text

    root = outputs_dir(ctx)
    if root is None:
        return
    root.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"output name {name!r} is not a file name")
        text = value if isinstance(value, str) else json.dumps(
            value, indent=2 if name.endswith(".json") else None, sort_keys=True, default=str)
        write_text(root / name, text)


def date_option(text: str | None, flag: str) -> dt.date | None:
    """A ``--flag YYYY-MM-DD`` value; a malformed one is a :class:`ConfigError` naming it."""
    from finmlops.errors import ConfigError

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{flag} must be a date like 2020-01-31, not {text!r}") from None
