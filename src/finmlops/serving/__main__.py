"""``python -m finmlops.serving``: serve local model directories (no MLflow needed)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from finmlops.config import load_settings
    from finmlops.errors import FinmlopsError
    from finmlops.serving.runtime import discover
    from finmlops.serving.server import serve

    parser = argparse.ArgumentParser(prog="python -m finmlops.serving")
    parser.add_argument("--config", default=None)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--model-dir", default=None)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, overrides={
            k: v for k, v in {"serve.host": args.host, "serve.port": args.port,
                              "serve.workers": args.workers,
                              "serve.model_dir": args.model_dir}.items() if v is not None})
        if settings.serve.model_dir is None:
            sys.stderr.write("error: --model-dir (or serve.model_dir) is required\n")
            return 2
        models = discover(settings.serve.model_dir)

        def announce(url: str) -> None:
            sys.stdout.write(f"finmlops serving {', '.join(models)} on {url}\n")
            sys.stdout.flush()

        serve(settings, models, config_path=args.config, announce=announce)
    except FinmlopsError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
