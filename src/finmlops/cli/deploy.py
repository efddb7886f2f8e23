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


deploy_app = typer.Typer(help="Render Kubernetes manifests (Argo Workflows, serving, Seldon, "
                              "KServe).",
                         no_args_is_help=True)


@deploy_app.command("render")
def render_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write into.")],
    target: Annotated[Target, typer.Option(help="What to render.")] = Target.kubernetes,
    environment: Annotated[list[str] | None, typer.Option(
        "--environment", "-e", help="kubernetes: render only this environment "
                                    "(repeatable; default: every deploy.environments "
                                    "entry).")] = None,
    model_version: Annotated[list[str] | None, typer.Option(
        "--model-version", help="seldon/kserve: arm=N pins an arm to registered version N "
                                "(default: the version the arm's alias names).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write Kubernetes manifests (one tree per environment), Seldon or KServe objects.

    kubernetes: environments/<env>/ (each environment whole, in its own namespaces),
    argocd/<env>.yaml, platform/, helm/; seldon: Models + Experiment;
    kserve: the InferenceService with the challenger as canary (and default/ without it).
    Seldon and KServe pin each arm to a registered version published by `finmlops models
    publish`.
    """
    from finmlops.deploy import (
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
        rendered = render_kubernetes(settings, environments=environment or None)
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


@deploy_app.command("report-failure")
def report_failure_cmd(
    workflow: Annotated[str, typer.Option(help="The workflow's name.")],
    status: Annotated[str, typer.Option(help="Its status (Failed, Error, ...).")],
    failures: Annotated[str, typer.Option(
        help="Argo's {{workflow.failures}}: a JSON list of the failed nodes.")] = "",
) -> None:
    """One readable line naming what failed, for a workflow's exit handler (which also
    counts the failure in finmlops_workflow_failures). Always exits 0."""
    typer.echo(failure_line(workflow, status, failures))


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")


def failure_line(workflow: str, status: str, failures: str) -> str:
    """``workflow NAME ended STATUS: step (phase: message); ...`` from Argo's failures JSON
    (anything unreadable is quoted as it is)."""
    import json

    try:
        nodes = json.loads(failures) if failures.strip() else []
    except ValueError:
        nodes = None
    if not isinstance(nodes, list):
        return f"workflow {workflow} ended {status}: {failures.strip()[:500]}"
    parts = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        name = node.get("displayName") or node.get("templateName") or "?"
        message = " ".join(str(node.get("message") or "").split())[:300]
        parts.append(f"{name} ({node.get('phase', '?')}: {message or 'no message'})")
    return (f"workflow {workflow} ended {status}: "
            + ("; ".join(parts) if parts else "no failed step recorded"))
