"""CLI start-up: ``finmlops --help`` against a bare ``python -c pass`` in the same run.

The gap between the two is what the CLI itself costs; heavy imports (torch, mlflow, pandas)
would add seconds, so this is the check that they stay inside commands.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from benchmarks._common import write_results

REPEATS = 15


def _time(cmd: list[str]) -> list[float]:
    out = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    cases = {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "finmlops --help": [sys.executable, "-m", "finmlops", "--help"],
        "finmlops stages": [sys.executable, "-m", "finmlops", "stages"],
    }
    rows = []
    floor = None
    for name, cmd in cases.items():
        times = _time(cmd)
        median = statistics.median(times)
        floor = floor if floor is not None else median
        rows.append({"case": name, "median_ms": round(median * 1e3, 1),
                     "min_ms": round(min(times) * 1e3, 1),
                     "over_floor_ms": round((median - floor) * 1e3, 1)})
    write_results("cli", rows, {"repeats": REPEATS, "target": "--help well under 500 ms"})


if __name__ == "__main__":
    main()
