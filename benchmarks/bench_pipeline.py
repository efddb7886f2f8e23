"""``finmlops run`` end to end from an empty FINMLOPS_HOME (cold), then again on the same
home (warm: every stage's content-addressed cache hits), each in a fresh process.

The warm run is the in-run baseline: the gap between the two is the real work (training,
the A/B replay over HTTP); what the warm run still costs is start-up, I/O and the replay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import write_results


def _run(home: Path) -> tuple[float, dict[str, float]]:
    env = {**os.environ, "FINMLOPS_HOME": str(home)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "finmlops", "run"], env=env, check=True,
                   stdout=subprocess.DEVNULL, cwd=home.parent)
    seconds = time.perf_counter() - t0
    state = json.loads((home / "state.json").read_text())
    return seconds, {k: v["seconds"] for k, v in state["stages"].items()}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="finmlops-bench-") as tmp:
        home = Path(tmp) / "home"
        for label in ("cold (empty home)", "warm (same home, cached)"):
            total, stages = _run(home)
            rows.append({"run": label, "total_s": round(total, 1),
                         **{f"{k}_s": round(v, 1) for k, v in stages.items()}})
    write_results("pipeline", rows, {
        "command": "finmlops run (bundled IBB+SPY 2001-2026, default config)",
        "target": "cold run under 120 s on 2 cores",
        "external_anchor": "the replaced system: 15-20 min of CPU training alone (reported)",
    })


if __name__ == "__main__":
    main()
