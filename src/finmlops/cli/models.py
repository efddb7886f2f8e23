"""``finmlops models list|show|history|publish``, ``finmlops register`` and ``finmlops
promote``: the registry from the shell."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from finmlops.cli._common import (
    JsonOption,
    console,
    current_user,
    emit,
    print_json,
    run_stage,
    settings_from,
)

models_app = typer.Typer(help="Registered model versions and their aliases.",
                         no_args_is_help=True)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _accuracy(row: dict[str, Any]) -> str:
    text = _fmt(row.get("accuracy"))
    ci = row.get("accuracy_ci")
    return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else text


def _none_yet(registered_model: str) -> str:
    return (f"no registered versions of {registered_model} yet: run `finmlops run --until "
            "register`")


@models_app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List every registered version, newest first, with aliases and headline metrics."""
    from rich.table import Table

    from finmlops.tracking import list_models

    settings = settings_from(ctx)
    rows = list_models(settings)
    if as_json:
        print_json({"registered_model": settings.registered_model, "versions": rows})
        return
    if not rows:
        console().print(_none_yet(settings.registered_model))
        return
    table = Table(title=f"{settings.registered_model}", title_justify="left")
    for col in ("version", "variant", "aliases", "data version", "accuracy [CI]", "auc",
                "sharpe", "created"):
        table.add_column(col, justify="right" if col in ("version", "auc", "sharpe")
                         else "left")
    for r in rows:
        aliases = ", ".join(r["aliases"]) + (" (rolled back)" if r["status"] else "")
        table.add_row(r["version"], r["variant"], aliases, r["data_version"][:12],
                      _accuracy(r), _fmt(r["auc"]), _fmt(r["sharpe"], 2),
                      r["created"][:16].replace("T", " "))
    console().print(table)


@models_app.command("show")
def show_cmd(ctx: typer.Context,
             ref: Annotated[str, typer.Argument(help="An alias (champion, baseline, ...) or a "
                                                     "version number.")],
             as_json: JsonOption = False) -> None:
    """Show one version: its tags, aliases and the metrics of its training run."""
    from finmlops.tracking import resolve, run_metrics

    settings = settings_from(ctx)
    info = resolve(settings, ref)
    data = {**info.to_dict(), "metrics": run_metrics(settings, info.run_id)}
    if as_json:
        print_json(data)
        return
    out = console()
    out.print(f"[bold]{info.name}[/] version {info.version} ({info.variant})")
    for key in ("aliases", "data_version", "weights_hash", "run_id", "source", "created"):
        value = data[key]
        out.print(f"  {key:<13} {', '.join(value) if isinstance(value, list) else value}")
    for key, value in sorted(info.tags.items()):
        if key not in ("variant", "data_version", "weights_hash"):
            out.print(f"  tag {key:<9} {value}")
    for key, value in sorted(data["metrics"].items()):
        if not key.startswith(("fold.", "naive.")):
            out.print(f"  {key:<13} {value:.4f}")


@models_app.command("history")
def history_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The audit trail: every registration, promotion, roll-back and alias change."""
    from finmlops.tracking import history

    events = history(settings_from(ctx))
    if as_json:
        print_json(events)
        return
    out = console()
    for e in events:
        out.print(f"{e.get('at', '')}  {e.get('action', ''):<9} v{e.get('version')}  "
                  f"by {e.get('actor', '')}: {e.get('reason', '')}")


@models_app.command("publish")
def publish_cmd(
    ctx: typer.Context,
    version: Annotated[list[str] | None, typer.Option(
        "--version", help="An alias or version number to publish (repeatable; default: "
                          "every registered version).")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", help="Repository root: a directory or s3://bucket/prefix (default: "
                     "deploy.model_repository, else s3://<deploy.bucket>/triton).")] = None,
    endpoint_url: Annotated[str | None, typer.Option(
        help="S3 endpoint (default: data.s3_endpoint_url, else the AWS default).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Copy registered versions to a Triton model repository, one per version
    (<root>/<model>/v<N>/<model>/{config.pbtxt, N/model.onnx}), for Seldon and KServe."""
    from finmlops.deploy.triton import absolute_root, repository_root
    from finmlops.pipeline import publish_versions

    settings = settings_from(ctx)
    root = absolute_root(to) if to else repository_root(settings)
    rows = publish_versions(settings, list(version or []), root,
                            endpoint_url or settings.data.s3_endpoint_url)
    emit(ctx, {"published": {r["version"]: r["repository"] for r in rows}})
    if as_json:
        print_json({"registered_model": settings.registered_model, "root": root,
                    "published": rows})
        return
    out = console()
    if not rows:
        out.print(_none_yet(settings.registered_model))
    for r in rows:
        state = "published" if r["created"] else "already published"
        out.print(f"{settings.registered_model} v{r['version']}  {r['variant']:<12} "
                  f"{state}: {r['repository']}")


def register_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Register each trained variant of the run state as a model version in MLflow (logging
    its run first if train did not) and move the aliases; prints versions and aliases."""
    settings = settings_from(ctx)
    registered = run_stage(settings, "register", as_json).need_registered()
    emit(ctx, {"registered": {v: r.to_json() for v, r in registered.items()},
               "versions": {v: r.version for v, r in registered.items()}})
    if as_json:
        print_json({"registered_model": settings.registered_model,
                    "registered": {v: r.to_json() for v, r in registered.items()}})
        return
    out = console()
    for variant, info in registered.items():
        aliases = ", ".join(info.aliases) or "-"
        out.print(f"{settings.registered_model} v{info.version}  {variant:<12} "
                  f"aliases: {aliases}")


def promote_cmd(
    ctx: typer.Context,
    reason: Annotated[str | None, typer.Option(help="Why (recorded with the change).")]
    = None,
    version: Annotated[str | None, typer.Option(help="Promote this version instead of the "
                                                     "challenger.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")]
    = False,
    as_json: JsonOption = False,
) -> None:
    """Make the challenger (or --version) the champion; the old champion becomes
    previous-champion. Recorded with who, when and why."""
    from finmlops.errors import ConfigError, ModelNotFoundError
    from finmlops.tracking import CHALLENGER, CHAMPION, promote, resolve

    if not reason or not reason.strip():
        raise ConfigError("a manual promotion needs --reason TEXT (recorded in the history)")
    settings = settings_from(ctx)
    target = resolve(settings, version or CHALLENGER)
    if not yes:
        try:
            current = resolve(settings, CHAMPION).version
        except ModelNotFoundError:
            current = "-"
        if not typer.confirm(f"{settings.registered_model}: champion v{current} -> "
                             f"v{target.version} ({target.variant})?"):
            typer.echo("aborted: nothing changed", err=True)
            raise typer.Exit(1)
    result = promote(settings, actor=current_user(), reason=reason, decision={},
                     version=target.version)
    if as_json:
        print_json(result)
    elif result["changed"]:
        typer.echo(f"champion: v{result['previous_champion'] or '-'} -> "
                   f"v{result['champion']} ({target.variant})")
    else:
        typer.echo(f"v{result['champion']} is already the champion; nothing changed")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.command("register")(register_cmd)
    app.command("promote")(promote_cmd)
