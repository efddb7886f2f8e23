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
from typing import Annotated, Any

import typer

from finmlops.cli._common import JsonOption, console, emit, print_json, settings_from

FileOption = Annotated[Path, typer.Option(
    "--file", help="promotion.json (as mounted from the ConfigMap), or the environment's "
                   "promotion.yaml.")]


def read_record(path: Path) -> Any:
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


def put_experiment_in_force(settings: Any, config: Any, *, source: str, actor: str,
                            reason: str) -> dict[str, Any]:
    """``config`` as the experiment version in force in the ledger (a new version unless
    the one in force already has exactly this configuration)."""
    from finmlops.ledger import config_hash, open_ledger

    ledger = open_ledger(settings.ledger_url, create=False,
                         timeout_s=settings.ledger.write_timeout_s)
    try:
        current = ledger.experiment(config.name)
        if current is not None and config_hash(current.config) == config_hash(config):
            return {**current.to_json(), "published": False}
        version = ledger.publish_experiment(config, source=source, actor=actor, reason=reason)
    finally:
        ledger.close()
    return {**version.to_json(), "published": True}


def apply_record(settings: Any, record: Any, actor: str) -> dict[str, Any]:
    """Make the registry and the ledger match ``record``; what changed."""
    from finmlops import tracking
    from finmlops.errors import ConfigError

    state = record.state
    if state is None:
        return {"environment": record.environment, "changed": False,
                "note": "nothing declared yet (no promotion so far)"}
    g = settings.gitops
    if g.enabled and g.environment != record.environment:
        raise ConfigError(f"the record is environment {record.environment!r}'s; this is "
                          f"{g.environment!r}")
    if state.registered_model != settings.registered_model:
        raise ConfigError(f"the record declares model {state.registered_model!r}, the "
                          f"settings serve {settings.registered_model!r}")
    if state.experiment.name != settings.experiment.name:
        raise ConfigError(f"the record declares experiment {state.experiment.name!r}, the "
                          f"settings run {settings.experiment.name!r}")
    reason = f"{state.action}: {state.reason}"
    aliases = tracking.sync_aliases(settings, state.aliases, rejected=state.rejected,
                                    actor=actor, reason=reason, decision=state.decision)
    experiment = put_experiment_in_force(settings, state.experiment, source="gitops",
                                         actor=actor, reason=reason)
    return {"environment": record.environment, "action": state.action,
            "changed": bool(aliases["changed"] or experiment["published"]),
            "registry": aliases, "experiment": experiment}


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
        from finmlops.cli.abtest import _user

        settings = settings_from(ctx)
        out = apply_record(settings, read_record(file), actor or _user())
        emit(ctx, {"changed": out["changed"]})
        if as_json:
            print_json(out)
            return
        c = console()
        if "note" in out:
            c.print(f"{out['environment']}: {out['note']}")
            return
        reg, exp = out["registry"], out["experiment"]
        c.print(f"{out['environment']}: {out['action']} "
                f"{'applied' if out['changed'] else 'already in force'}; champion "
                f"v{reg['champion'] or '-'}, experiment version {exp['version']}"
                f"{' (new)' if exp['published'] else ''}")

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
