"""The ``finmlops`` command line: one Typer app, a command per stage plus ``run``.

Only light modules are imported here; each command imports what it needs when it runs, so
``finmlops --help`` starts instantly.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from finmlops.cli import (
    _run,
    abtest,
    data,
    deploy,
    evaluate,
    models,
    monitor,
    serve,
    train,
    universe,
)
from finmlops.errors import FinmlopsError

app = typer.Typer(
    name="finmlops",
    help="Daily market-direction models, from data to an A/B test decided by statistics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from finmlops import __version__

        typer.echo(f"finmlops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="FINMLOPS_CONFIG",
                     help="YAML config file (default: ./finmlops.yaml when present)."),
    ] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, expose_value=False,
        help="Print the version and exit.")] = False,
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
universe.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs the app and turns a :class:`FinmlopsError` into one readable line.

    Ctrl-C is one line and exit code 130 too: typer turns ``KeyboardInterrupt`` into a silent
    exit code, so a SIGINT handler notes that the interrupt happened."""
    from typer._click.exceptions import ClickException

    args = list(sys.argv[1:] if argv is None else argv)
    interrupted: list[int] = []

    def on_sigint(signum: int, frame: object) -> None:
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = _install_sigint(on_sigint)
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
        interrupted.append(0)
    except ModuleNotFoundError as exc:  # an install without the extra this command needs
        if exc.name is None or exc.name.split(".")[0] == "finmlops":
            raise
        sys.stderr.write(f"error: {_missing_extra(exc.name)}\n")
        return 1
    except OSError as exc:  # the machine refused: permissions, a full disk, a file for a folder
        sys.stderr.write(f"error: {_os_error(exc)}\n")
        return 1
    finally:
        _restore_sigint(previous)
    if interrupted:
        sys.stderr.write("interrupted: the step in progress was not recorded\n")
        return 130
    return rv if isinstance(rv, int) else 0


def _install_sigint(handler: Callable[[int, object], None]) -> Any:
    """Install ``handler`` for SIGINT unless Python's default is not in place (ignored, or
    not the main thread); returns what to restore, or None."""
    import signal

    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        return None


def _restore_sigint(previous: Any) -> None:
    import signal

    if previous is not None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, previous)


_EXTRA_OF = {
    **dict.fromkeys(("numpy", "scipy", "onnxruntime", "uvicorn", "orjson", "prometheus_client",
                     "boto3", "psycopg", "psycopg_pool"), "serve"),
    **dict.fromkeys(("torch", "pandas", "pyarrow", "fsspec", "s3fs", "httpx", "onnx", "plotly",
                     "hera", "sqlalchemy", "alembic", "flask", "lightgbm", "onnxmltools",
                     "optuna"), "train"),
}
"""Which extra of finmlops installs a module (see pyproject.toml); the rest come with dev."""


def _missing_extra(module: str) -> str:
    top = module.split(".")[0]
    extra = _EXTRA_OF.get(top, "train" if top == "mlflow" else "dev")
    return (f"this command needs the Python module {top!r}, which finmlops[{extra}] installs: "
            f"pip install -c requirements.lock 'finmlops[{extra}]'")


def _os_error(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{what}: {' -> '.join(names)}" if names else str(exc) or what


__all__ = ["app", "main"]
