"""The ``finmlops`` command line: one Typer app, a command per stage plus ``run``.

Only light modules are imported here; each command imports what it needs when it runs, so
``finmlops --help`` starts instantly.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from finmlops.cli import _run, abtest, data, deploy, evaluate, models, monitor, serve, train
from finmlops.errors import FinmlopsError

app = typer.Typer(
    name="finmlops",
    help="Daily market-direction models, from data to an A/B test decided by statistics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="FINMLOPS_CONFIG",
                     help="YAML config file (default: ./finmlops.yaml when present)."),
    ] = None,
) -> None:
    ctx.obj = {"config": config}


_run.register(app)
data.register(app)
train.register(app)
deploy.register(app)
models.register(app)
evaluate.register(app)
serve.register(app)
abtest.register(app)
monitor.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs the app and turns a :class:`FinmlopsError` into one readable line."""
    from typer._click.exceptions import ClickException

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = app(args=args, prog_name="finmlops", standalone_mode=False)
    except FinmlopsError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("aborted: nothing changed\n")
        return 1
    except ClickException as exc:  # usage errors: bad option, missing argument, ...
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return rv if isinstance(rv, int) else 0


__all__ = ["app", "main"]
