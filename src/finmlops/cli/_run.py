"""``finmlops run``: the main job, every stage in order with a progress display."""

from __future__ import annotations

from typing import Annotated

import typer

from finmlops.cli._common import JsonOption, console, print_json, settings_from


def run_cmd(
    ctx: typer.Context,
    until: Annotated[str | None, typer.Option(help="Stop after this stage.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Start at this stage.")] = None,
    only: Annotated[list[str] | None, typer.Option(help="Run only these stages.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the pipeline's stages in order (ingest ... report) on the configured data."""
    from finmlops.cli._progress import ConsoleReporter
    from finmlops.pipeline import STAGES, run_stages, select

    settings = settings_from(ctx)
    chosen = select(STAGES, only=only, start=start, until=until)
    with ConsoleReporter(console(stderr=as_json)) as reporter:
        state = run_stages(settings, chosen, reporter)
    if as_json:
        print_json({"stages": state.get("stages", {}), "home": str(settings.home.resolve())})


def stages_cmd(as_json: JsonOption = False) -> None:
    """List the pipeline's stages."""
    from finmlops.pipeline import STAGES

    if as_json:
        print_json([{"name": s.name, "description": s.description} for s in STAGES])
        return
    for s in STAGES:
        typer.echo(f"{s.name:<10} {s.description}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("stages")(stages_cmd)
