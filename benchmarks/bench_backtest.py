"""Backtest + the full metric set on 1,000,000 synthetic daily bars, against a bare numpy floor.

Run: ``.venv/bin/python -m benchmarks.bench_backtest``. The floor is the least a long/flat
backtest can do in numpy (positions, costs per change, compounded equity), measured in the
same run; the target is finmlops within 3x of it. External anchors (not measured here):
bare numpy ~8 ms, vectorbt 0.16-0.33 s after a ~70 s numba compile, backtrader ~4,700 bars/s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from finmlops.config import EvaluationSettings
from finmlops.evaluation import performance_metrics, run_backtest

N_BARS = 1_000_000
REPEATS = 15
SEED = 20240607
COST = 3e-4


def _medians(fns: list[Callable[[], Any]], repeats: int = REPEATS) -> list[float]:
    """Median seconds of each function; repeats are interleaved so every case sees the same
    background load (the machine is shared)."""
    for fn in fns:
        fn()  # warm-up (page faults, lazy imports)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main() -> None:
    rng = np.random.default_rng(SEED)
    r = rng.normal(0.0003, 0.012, N_BARS)
    p = rng.random(N_BARS)
    long_flat = EvaluationSettings()
    banded = EvaluationSettings(rule="long_short", dead_band=0.05)

    def floor() -> float:
        pos = (p > 0.5).astype(np.float64)
        net = pos * r - COST * np.abs(np.diff(pos, prepend=0.0))
        return float(np.cumprod(1.0 + net)[-1])

    def backtest_only() -> float:
        return float(run_backtest(p, r, long_flat).equity[-1])

    def full() -> float:
        res = run_backtest(p, r, long_flat)
        return performance_metrics(res, 252, n_trials=10, sr_variance=1e-6).total_return

    def full_banded() -> float:
        res = run_backtest(p, r, banded)
        return performance_metrics(res, 252, n_trials=10, sr_variance=1e-6).total_return

    # the floor and finmlops agree on the result, so the timings compare like with like
    assert floor() == backtest_only()
    cases = [("numpy floor (long/flat)", floor),
             ("finmlops backtest (long/flat)", backtest_only),
             ("finmlops backtest + all metrics (long/flat)", full),
             ("finmlops backtest + all metrics (long/short, dead band)", full_banded)]
    seconds = _medians([fn for _, fn in cases])
    base = seconds[0]
    rows = []
    for (name, _), sec in zip(cases, seconds, strict=True):
        rows.append({"case": name, "median_ms": round(sec * 1e3, 2),
                     "bars_per_s": round(N_BARS / sec), "x_floor": round(sec / base, 2)})
    from benchmarks._common import write_results

    write_results("backtest", rows, {
        "bars": N_BARS, "repeats": REPEATS, "seed": SEED, "statistic": "median",
        "baseline": "numpy floor (long/flat), same run", "target": "full metric set <= 3x floor",
        "external_anchors_not_measured_here": {
            "bare numpy": "~8 ms", "vectorbt": "0.16-0.33 s after ~70 s numba compile",
            "backtrader": "~4,700 bars/s"},
    })


if __name__ == "__main__":
    main()
