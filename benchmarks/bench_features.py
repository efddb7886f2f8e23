"""Feature build for the 500-ticker S&P file: grouped (vectorised) vs a per-ticker loop.

Run: ``.venv/bin/python -m benchmarks.bench_features``. Target: < 10 s for the pooled build.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks._common import write_results
from finmlops.features import build_features, feature_names

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
UNIVERSE = DATA / "sp500_2019-03-08_2024-03-08.csv"
CONTEXT = DATA / "SPY.csv"


def load() -> pd.DataFrame:
    bars = pd.read_csv(UNIVERSE, parse_dates=["date"])
    spy = pd.read_csv(CONTEXT, parse_dates=["date"])
    spy = spy[(spy["date"] >= bars["date"].min()) & (spy["date"] <= bars["date"].max())]
    spy.insert(0, "ticker", "SPY")
    return pd.concat([bars[bars["ticker"] != "SPY"], spy], ignore_index=True)


def main() -> int:
    if not UNIVERSE.is_file() or not CONTEXT.is_file():
        print(f"skipped: {UNIVERSE} or {CONTEXT} is missing (the shared data folder)")
        return 0
    bars = load()
    targets = sorted(t for t in bars["ticker"].unique() if t != "SPY")
    t0 = time.perf_counter()
    pooled = build_features(bars, targets, ["SPY"], horizon=1)
    grouped_s = time.perf_counter() - t0

    spy = bars[bars["ticker"] == "SPY"]
    t0 = time.perf_counter()
    parts = [build_features(pd.concat([g, spy]), [t], ["SPY"], horizon=1)
             for t, g in bars[bars["ticker"] != "SPY"].groupby("ticker", sort=True)]
    loop = pd.concat(parts, ignore_index=True)
    loop_s = time.perf_counter() - t0
    same = len(loop) == len(pooled) and bool(
        (loop.drop(columns=["date", "ticker"]) - pooled.drop(columns=["date", "ticker"]))
        .abs().max().max() < 1e-9)
    meta = {"file": UNIVERSE.name, "bar_rows": len(bars), "targets": len(targets),
            "feature_rows": len(pooled), "features": len(feature_names("full", ["SPY"])),
            "identical_output": same, "target_seconds": 10.0}
    rows = [
        {"method": "grouped (build_features on the pooled universe)",
         "seconds": round(grouped_s, 3), "rows_per_s": round(len(pooled) / grouped_s)},
        {"method": "baseline: Python loop, one ticker at a time",
         "seconds": round(loop_s, 3), "rows_per_s": round(len(loop) / loop_s)},
        {"method": "speed-up", "seconds": None, "rows_per_s": None,
         "x": round(loop_s / grouped_s, 1)},
    ]
    write_results("features", rows, meta)
    print(f"{len(targets)} tickers, {len(pooled):,} feature rows; outputs identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
