"""``finmlops deploy render``: Kubernetes manifests from the same settings as a local run."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finmlops.cli._common import JsonOption, print_json, settings_from

if TYPE_CHECKING:
    from finmlops.config import Settings


class Target(StrEnum):
    kubernetes = "kubernetes"
    seldon = "seldon"
    kserve = "kserve"


def _pairs(items: list[str] | None) -> dict[str, str]:
    from finmlops.errors import ConfigError

    out: dict[str, str] = {}
    for item in items or []:
        arm, sep, ref = item.partition("=")
        if not sep or not arm or not ref:
            raise ConfigError(f"--model-version takes arm=version (e.g. enhanced=3), got {item!r}")
        out[arm] = ref
    return out


def pinned_versions(settings: Settings, arms: list[str],
                    overrides: dict[str, str]) -> dict[str, str]:
    """``{arm: version}``: the version each arm's alias names (or ``overrides[arm]``), each one
    published where the manifests will point (else a one-line error naming the command)."""
    from finmlops.deploy import repository_root, version_repository
    from finmlops.errors import ConfigError, ModelNotFoundError
    from finmlops.tracking import PUBLISHED_TAG, resolve

    unknown = sorted(set(overrides) - set(arms))
    if unknown:
        raise ConfigError(f"--model-version: {', '.join(unknown)} is not an experiment arm "
                          f"({', '.join(arms)})")
    root = repository_root(settings)
    out: dict[str, str] = {}
    for arm in arms:
        try:
            info = resolve(settings, overrides.get(arm, arm))
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(
                f"{exc.message}: register the {arm} arm (`finmlops register`, then `finmlops "
                f"models publish`) or pin it with --model-version {arm}=N") from None
        expected = version_repository(root, info.name, info.version)
        published = info.tags.get(PUBLISHED_TAG)
        if published != expected:
            where = f" (it is at {published})" if published else ""
            raise ModelNotFoundError(
                f"version {info.version} of {info.name!r} ({arm}) is not published to "
                f"{expected}{where}: run `finmlops models publish` first")
        out[arm] = info.version
    return out


class Overlay(StrEnum):
    dev = "dev"
    prod = "prod"


deploy_app = typer.Typer(help="Render Kubernetes manifests (Argo Workflows, serving, Seldon, "
                              "KServe).",
                         no_args_is_help=True)


@deploy_app.command("render")
def render_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write into.")],
    target: Annotated[Target, typer.Option(help="What to render.")] = Target.kubernetes,
    overlay: Annotated[Overlay | None, typer.Option(
        help="Render only this kustomize overlay (default: dev and prod).")] = None,
    model_version: Annotated[list[str] | None, typer.Option(
        "--model-version", help="seldon/kserve: arm=N pins an arm to registered version N "
                                "(default: the version the arm's alias names).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write Kubernetes manifests (kustomize base + overlays), Seldon or KServe objects.

    kubernetes: base/, overlays/{dev,prod}/, argocd/, helm/; seldon: Models + Experiment;
    kserve: the InferenceService with the challenger as canary (and default/ without it).
    Seldon and KServe pin each arm to a registered version published by `finmlops models
    publish`.
    """
    from finmlops.deploy import (
        OVERLAYS,
        render_kserve,
        render_kubernetes,
        render_seldon,
        seldon,
        write_rendered,
    )

    settings = settings_from(ctx)
    versions: dict[str, str] = {}
    if target is Target.seldon:
        versions = pinned_versions(settings, seldon.arms(settings), _pairs(model_version))
        rendered = render_seldon(settings, versions)
    elif target is Target.kserve:
        versions = pinned_versions(settings, settings.experiment.candidate_names,
                                   _pairs(model_version))
        rendered = render_kserve(settings, versions)
    else:
        chosen = (overlay.value,) if overlay is not None else OVERLAYS
        rendered = render_kubernetes(settings, overlays=chosen)
    paths = write_rendered(rendered, out)
    if as_json:
        print_json({"target": target.value, "out": str(out),
                    "files": [p.relative_to(out).as_posix() for p in paths],
                    "objects": len(rendered.manifests()), "notes": rendered.notes,
                    "versions": versions})
        return
    for note in rendered.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {len(paths)} files ({len(rendered.manifests())} objects) to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
