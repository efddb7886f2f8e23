"""The README's commands are real: every `finmlops ...` line names commands and options the CLI
has, every `make` target exists, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _shell_lines() -> list[str]:
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", README, flags=re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line:
                lines.append(line)
    return lines


FINMLOPS = [ln for ln in _shell_lines() if ln.startswith("finmlops")]


def test_readme_shows_the_two_commands_and_ci_runs_the_test_one() -> None:
    lines = _shell_lines()
    assert "make run" in lines and "make test" in lines
    makefile = (REPO / "Makefile").read_text()
    for target in ("run", "test", "lint", "bench", "lock"):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == "make test"


@pytest.mark.parametrize("line", FINMLOPS)
def test_readme_command_resolves(line: str) -> None:
    import typer.main

    from finmlops.cli import app

    cmd: Any = typer.main.get_command(app)
    args = shlex.split(line)[1:]
    path = []
    root = {opt: p for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    while args and args[0] in root:  # root options before the command (-c FILE, --outputs DIR)
        option = root[args.pop(0)]
        if not option.is_flag:
            args.pop(0)
    while hasattr(cmd, "commands") and args and not args[0].startswith("-"):
        name = args.pop(0)
        sub = cmd.commands.get(name)
        assert sub is not None, f"{line!r}: no command {' '.join([*path, name])!r}"
        path.append(name)
        cmd = sub
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    for a in args:
        if a.startswith("-"):
            assert a.split("=", 1)[0] in known, f"{line!r}: {' '.join(path)} has no option {a}"
