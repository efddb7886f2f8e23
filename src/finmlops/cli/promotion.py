"""``finmlops promotion apply|show``: the environment's promotion record, put in force.

On the cluster Argo CD runs ``promotion apply`` after every sync (the ``finmlops-promotion``
workflow, with the record mounted from the ``finmlops-promotion`` ConfigMap): the registry's
``champion`` / ``previous-champion`` aliases and the ledger's experiment weights are made to
match what the record declares. Applying a record already in force changes nothing, so a
sync without a promotion is harmless; applying the record a ``git revert`` restored undoes
the promotion.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finmlops.cli._common import (
    JsonOption,
    console,
    current_user,
    emit,
    print_json,
    settings_from,
)

if TYPE_CHECKING:
    from finmlops.deploy import PromotionFile

FileOption = Annotated[Path, typer.Option(
    "--file", help="promotion.json (as mounted from the ConfigMap), or the environment's "
                   "promotion.yaml.")]


def read_record(path: Path) -> PromotionFile:
    """The record in ``path``: ``promotion.json`` or the ConfigMap file holding it."""
    from finmlops.deploy.gitops import parse_file, parse_record
    from finmlops.errors import ConfigError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix in (".yaml", ".yml"):
        return parse_file(text, str(path))
    return parse_record(text, str(path))


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="promotion", no_args_is_help=True,
                        help="The environment's promotion record (GitOps): show, apply.")

    @group.command("apply")
    def apply_cmd(
        ctx: typer.Context,
        file: FileOption,
        actor: Annotated[str | None, typer.Option(help="Who applies it (default: $USER).")]
        = None,
        as_json: JsonOption = False,
    ) -> None:
        """Move the registry aliases the record declares and put its weights in force."""
        from finmlops.pipeline import apply_record

        settings = settings_from(ctx)
        out = apply_record(settings, read_record(file), actor or current_user())
        emit(ctx, {"changed": out.changed})
        if as_json:
            print_json(out.to_json())
            return
        c = console()
        if out.registry is None or out.experiment is None:
            c.print(f"{out.environment}: {out.note}")
            return
        exp = out.experiment
        c.print(f"{out.environment}: {out.action} "
                f"{'applied' if out.changed else 'already in force'}; champion "
                f"v{out.registry['champion'] or '-'}, experiment version {exp.version.version}"
                f"{' (new)' if exp.published else ''}")

    @group.command("show")
    def show_cmd(ctx: typer.Context, file: FileOption, as_json: JsonOption = False) -> None:
        """Print what a record declares."""
        record = read_record(file)
        if as_json:
            print_json(record.model_dump(mode="json"))
            return
        c = console()
        state = record.state
        if state is None:
            c.print(f"{record.environment}: nothing declared yet")
            return
        weights = ", ".join(f"{x.name} {x.weight}" for x in state.experiment.candidates)
        c.print(f"{record.environment}: {state.action} by {state.actor} at {state.decided_at}"
                f" — {state.reason}")
        c.print(f"  aliases {state.aliases}; weights {weights}; rejected "
                f"{', '.join(state.rejected) or '-'}")

    app.add_typer(group)
