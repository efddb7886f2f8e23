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
    """click's own parser: each group parses its options (``-c FILE`` before a command too),
    then resolves the next command; an unknown command or option is click's error."""
    import typer.main
    from typer._click import exceptions as click  # typer vendors click: the CLI's parser

    from finmlops.cli import app

    cmd: Any = typer.main.get_command(app)
    args = shlex.split(line)[1:]
    def rest(ctx: Any) -> list[str]:
        # a group keeps the command and what follows it (click < 8.2: ``protected_args``)
        head = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
        return [*head, *ctx.args]

    try:
        ctx = cmd.make_context("finmlops", args)
        while hasattr(ctx.command, "resolve_command") and rest(ctx):
            name, sub, tail = ctx.command.resolve_command(ctx, rest(ctx))
            assert name is not None and sub is not None
            ctx = sub.make_context(name, tail, parent=ctx)
    except click.UsageError as exc:
        pytest.fail(f"{line!r}: {exc.format_message()}")


def test_an_unknown_option_or_command_is_caught() -> None:
    for line in ("finmlops -c x.yaml search --no-such-flag", "finmlops no-such-command"):
        with pytest.raises(pytest.fail.Exception):
            test_readme_command_resolves(line)
