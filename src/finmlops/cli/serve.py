"""``finmlops serve``: the V2 inference service with the configured A/B experiment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finmlops.cli._common import settings_from

if TYPE_CHECKING:
    from finmlops.config import Settings


def _refs(items: list[str] | None) -> dict[str, str]:
    from finmlops.errors import ConfigError

    out: dict[str, str] = {}
    for item in items or []:
        arm, sep, ref = item.partition("=")
        if not sep or not arm or not ref:
            raise ConfigError(f"--ref takes arm=alias (e.g. enhanced=challenger), got {item!r}")
        out[arm] = ref
    return out


def _ledger(settings: Settings) -> str:
    from finmlops.ledger import redact

    return redact(settings.ledger_url)


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
        port: Annotated[int | None, typer.Option(help="Port (0 picks a free one).")] = None,
        workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
        model_dir: Annotated[Path | None, typer.Option(
            "--model-dir", help="Serve the sub-directories of this directory (one per arm) "
                                "instead of the MLflow registry.")] = None,
        ref: Annotated[list[str] | None, typer.Option(
            "--ref", help="arm=alias to load an arm from another registry alias "
                          "(default: the arm's variant alias).")] = None,
    ) -> None:
        """Serve the experiment over Open Inference Protocol V2 (SIGTERM drains and flushes)."""
        from finmlops.serving.runtime import discover
        from finmlops.serving.server import serve as run

        settings = settings_from(ctx, {"serve.host": host, "serve.port": port,
                                       "serve.workers": workers,
                                       "serve.model_dir": str(model_dir) if model_dir else None})
        if settings.serve.model_dir is not None:
            models = discover(Path(settings.serve.model_dir))
        else:
            from finmlops.tracking import download_arms

            models = download_arms(settings, (settings.home / "serving").resolve(), _refs(ref))
        config = (ctx.find_root().obj or {}).get("config")
        exp = settings.experiment
        split = ", ".join(f"{c.name} {c.weight}" for c in exp.candidates)

        def announce(url: str) -> None:
            typer.echo(f"finmlops serving experiment {exp.name} ({split}) with "
                       f"{settings.serve.workers} worker(s) on {url}  "
                       f"(V2: {url}/v2, metrics: {url}/metrics, ledger: {_ledger(settings)})")

        run(settings, models, config_path=str(config) if config else None, announce=announce)
