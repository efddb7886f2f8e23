"""Every ``finmlops ...`` command line rendered into a workflow exists in the CLI: each
subcommand resolves in the Typer app and each option is one the command declares."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer

from finmlops.config import Settings
from finmlops.deploy import render_kubernetes

REPO = Path(__file__).resolve().parents[2]

KNOWN_MISSING: dict[tuple[str, ...], str] = {}
"""Commands a rendered step calls that do not exist yet: the only ones allowed to fail."""


def _workflow_steps() -> list[tuple[str, list[str], list[str]]]:
    """(where, command, args) of every container template of every rendered workflow."""
    out = []
    for obj in render_kubernetes(Settings()).manifests():
        if obj["kind"] not in ("WorkflowTemplate", "CronWorkflow"):
            continue
        spec = obj["spec"].get("workflowSpec", obj["spec"])
        for t in spec.get("templates", []):  # a template reference has none of its own
            if "container" in t:
                c = t["container"]
                out.append((f"{obj['metadata']['name']}/{t['name']}", list(c.get("command", [])),
                            list(c.get("args", []))))
    return out


def _root_command() -> Any:
    from finmlops.cli import app

    return typer.main.get_command(app)


def _options(command: Any) -> dict[str, Any]:
    """Every option name (``--x``, ``-x``, ``--no-x``) of a click command, to its parameter."""
    return {name: p for p in command.params if p.param_type_name == "option"
            for name in (*p.opts, *p.secondary_opts)}


def resolve(argv: list[str]) -> tuple[list[str], Any]:
    """Walk ``argv`` (after the program name) through the CLI as click would: root options,
    subcommands, then the leaf command's options and arguments. Returns the subcommand path
    and the leaf command; raises ``LookupError`` naming what does not exist."""
    command = _root_command()
    path: list[str] = []
    tokens = list(argv)
    positionals: list[str] = []
    while tokens:
        token = tokens.pop(0)
        if token.startswith("-") and token != "-":
            name, eq, _ = token.partition("=")
            options = _options(command)
            if name not in options:
                raise LookupError(f"`finmlops {' '.join(path)}` has no option {name}")
            param = options[name]
            if not param.is_flag and not param.count and not eq:
                if not tokens:
                    raise LookupError(f"option {name} of `finmlops {' '.join(path)}` needs a "
                                      "value")
                tokens.pop(0)
            continue
        commands = getattr(command, "commands", None)
        if commands is not None:
            if token not in commands:
                raise LookupError(f"`finmlops {' '.join([*path, token])}` does not exist; "
                                  f"`finmlops {' '.join(path)}` has: {', '.join(sorted(commands))}")
            command = commands[token]
            path.append(token)
        else:
            positionals.append(token)
    if getattr(command, "commands", None) is not None:
        raise LookupError(f"`finmlops {' '.join(path)}` is a group, not a command")
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    unlimited = any(p.nargs == -1 for p in arguments)
    if not unlimited and len(positionals) > sum(p.nargs for p in arguments):
        raise LookupError(f"`finmlops {' '.join(path)}` takes no argument(s) {positionals}")
    required = [p for p in arguments if p.required]
    if len(positionals) < len(required):
        raise LookupError(f"`finmlops {' '.join(path)}` needs argument(s) "
                          f"{[p.name for p in required]}")
    for p in command.params:
        if p.param_type_name == "option" and p.required and not any(
                o in argv or any(a.startswith(f"{o}=") for a in argv) for o in p.opts):
            raise LookupError(f"`finmlops {' '.join(path)}` needs option {p.opts[0]}")
    return path, command


def _subcommand(args: list[str]) -> tuple[str, ...]:
    words = [a for a in args if not a.startswith("-")]
    return tuple(words[:2])


def _cases() -> list[Any]:
    cases = []
    for where, command, args in _workflow_steps():
        reason = KNOWN_MISSING.get(_subcommand(args))
        marks = [pytest.mark.xfail(reason=reason, raises=LookupError, strict=True)] if reason \
            else []
        cases.append(pytest.param(command, args, id=where, marks=marks))
    return cases


@pytest.mark.parametrize(("command", "args"), _cases())
def test_rendered_step_command_exists_in_the_cli(command: list[str], args: list[str]) -> None:
    assert command == ["finmlops"]
    path, leaf = resolve(args)
    assert path and leaf.callback is not None


def test_the_finmlops_program_is_the_cli_entry_point() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    assert scripts["finmlops"] == "finmlops.cli:main"


def test_every_workflow_step_is_checked() -> None:
    steps = _workflow_steps()
    names = {w.split("/")[1] for w, _, _ in steps}
    assert {"ingest", "validate", "features", "train", "evaluate", "register", "publish",
            "predict", "feedback", "drift", "decide", "apply", "report-failure"} <= names
    # Only the named missing commands are excused.
    assert {_subcommand(a) for _, _, a in steps} >= set(KNOWN_MISSING)


@pytest.mark.parametrize(("argv", "error"), [
    (["trian"], "`finmlops trian` does not exist"),
    (["train", "--variants", "x"], "has no option --variants"),
    (["train", "--variant"], "needs a value"),
    (["models"], "is a group"),
    (["models", "show"], "needs argument"),
    (["evaluate", "extra"], "takes no argument"),
    (["abtest", "nope"], "`finmlops abtest nope` does not exist"),
])
def test_the_resolver_rejects_what_click_would(argv: list[str], error: str) -> None:
    with pytest.raises(LookupError, match=error):
        resolve(argv)


@pytest.mark.parametrize("argv", [
    ["--config", "x.yaml", "train", "--variant", "a", "--variant", "b", "--json"],
    ["models", "show", "champion"],
    ["promote", "-y", "--reason=why"],
    ["run", "--until", "features"],
])
def test_the_resolver_accepts_real_command_lines(argv: list[str]) -> None:
    resolve(argv)
