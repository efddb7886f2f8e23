"""``python -m benchmarks [NAME ...]``: run every ``bench_*.py`` (or the named ones)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    names = argv or sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    failed = []
    for name in names:
        print(f"\n=== bench_{name} ===", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.bench_{name}"],
                             cwd=here.parent)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
