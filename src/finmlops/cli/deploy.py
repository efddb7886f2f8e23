"""``finmlops deploy render``: Kubernetes manifests from the same settings as a local run."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from finmlops.cli._common import JsonOption, print_json, settings_from


class Target(StrEnum):
    kubernetes = "kubernetes"
    seldon = "seldon"


class Overlay(StrEnum):
    dev = "dev"
    prod = "prod"


def register(app: typer.Typer) -> None:
    deploy = typer.Typer(help="Render Kubernetes manifests (Argo Workflows, serving, Seldon).",
                         no_args_is_help=True)

    @deploy.command("render")
    def render(
        ctx: typer.Context,
        out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write into.")],
        target: Annotated[Target, typer.Option(help="What to render.")] = Target.kubernetes,
        overlay: Annotated[Overlay | None, typer.Option(
            help="Render only this kustomize overlay (default: dev and prod).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Write Kubernetes manifests (kustomize base + overlays) or Seldon objects to --out.

        kubernetes: base/, overlays/{dev,prod}/, argocd/, helm/; seldon: Models + Experiment.
        """
        from finmlops.deploy import OVERLAYS, render_kubernetes, render_seldon, write_rendered

        settings = settings_from(ctx)
        if target is Target.seldon:
            rendered = render_seldon(settings)
        else:
            chosen = (overlay.value,) if overlay is not None else OVERLAYS
            rendered = render_kubernetes(settings, overlays=chosen)
        paths = write_rendered(rendered, out)
        if as_json:
            print_json({"target": target.value, "out": str(out),
                        "files": [p.relative_to(out).as_posix() for p in paths],
                        "objects": len(rendered.manifests()), "notes": rendered.notes})
            return
        for note in rendered.notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo(f"wrote {len(paths)} files ({len(rendered.manifests())} objects) to {out}")

    app.add_typer(deploy, name="deploy")
