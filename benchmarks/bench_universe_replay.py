"""Replay of 500 tickers x 250 days through the service: one V2 request per ticker and day
(``routing_key "TICKER:YYYY-MM-DD"``), each day's outcomes posted as feedback, every
prediction committed in the ledger.

Run: ``python -m benchmarks universe_replay``. Target: < 60 s. Baseline in the same run: the
same replay with its requests sent one at a time (``finmlops.abtest.replay`` as it is), next
to 8 replays of disjoint ticker groups in parallel (the service's group commit batches
their ledger writes). The two arms are LightGBM models exported to ONNX with the universe's
input signature (trained on the S&P features; throughput does not depend on their skill).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import write_results
from benchmarks._universe import available, load, skip_message
from benchmarks.bench_serving import start_finmlops, stop

DAYS = int(os.environ.get("BENCH_REPLAY_DAYS", "250"))
"""Replayed days (``BENCH_REPLAY_DAYS`` for a shorter run on a busy machine)."""
GROUPS = 8


def wait_ready(url: str, timeout: float = 60.0) -> None:
    """Until the service's readiness probe answers 200 (both arms loaded, ledger open)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


def main() -> int:
    if not available():
        print(skip_message())
        return 0
    from finmlops.abtest.client import ServiceClient
    from finmlops.abtest.replay import ReplayInput, replay
    from finmlops.config import GBMSettings
    from finmlops.features import all_universe_features, universe_frame
    from finmlops.models.gbm import _design, export_gbm_onnx, fit_booster
    from finmlops.models.walkforward import prepare_samples

    bars = load()
    tickers = sorted(set(bars["ticker"]) - {"SPY"})
    frame = universe_frame(bars, tickers, ["SPY"]).frame
    names = all_universe_features(["SPY"])
    samples = prepare_samples(frame, names, 10)
    days = np.unique(samples.dates)
    keep = (samples.dates >= days[-DAYS - 1]) & (samples.dates < days[-1])
    train = ~keep & np.isfinite(samples.label)
    with tempfile.TemporaryDirectory(prefix="finmlops-bench-") as tmp:
        root = Path(tmp)
        for arm, seed in (("baseline", 1), ("enhanced", 2)):
            index = list(range(len(names)))
            x = _design(samples.x[train][-200_000:], index, 1)
            booster = fit_booster(x, samples.label[train][-200_000:],
                                  GBMSettings(n_estimators=100), seed)
            export_gbm_onnx(booster, root / "models" / arm / "model.onnx", window=10,
                            n_features=len(names), index=index, lags=1)
        rows = []
        data_all = ReplayInput(
            windows=samples.x[keep], dates=list(pd.to_datetime(samples.dates[keep]).date),
            tickers=[str(t) for t in samples.tickers[keep]],
            forward_returns=np.where(np.isfinite(samples.label[keep]),
                                     samples.forward_return[keep], np.nan))
        n = len(data_all.tickers)
        for mode in ("sequential", f"{GROUPS} parallel replays"):
            home = root / mode.split()[0]
            home.mkdir()
            proc, url = start_finmlops(root / "models", home, workers=1, shadow=True)
            try:
                wait_ready(url)
                t0 = time.perf_counter()
                base = url
                if mode == "sequential":
                    with ServiceClient(url) as client:
                        results = [replay(client, data_all, experiment="direction-ab")]
                else:
                    groups = np.array_split(np.arange(n), GROUPS)

                    def run(idx: np.ndarray, base: str = base) -> object:
                        part = ReplayInput(
                            windows=data_all.windows[idx],
                            dates=[data_all.dates[i] for i in idx],
                            tickers=[data_all.tickers[i] for i in idx],
                            forward_returns=data_all.forward_returns[idx])
                        with ServiceClient(base) as client:
                            return replay(client, part, experiment="direction-ab")

                    with ThreadPoolExecutor(GROUPS) as pool:
                        results = list(pool.map(run, groups))
                seconds = time.perf_counter() - t0
            finally:
                stop(proc)
            requests = sum(r.requests for r in results)
            feedback = sum(r.feedback for r in results)
            rows.append({"replay": mode, "seconds": round(seconds, 1), "requests": requests,
                         "feedback": feedback, "req_per_s": round(requests / seconds),
                         "target_s": 60.0})
            shutil.rmtree(home, ignore_errors=True)
    meta = {"tickers": len(set(data_all.tickers)), "days": DAYS, "requests": n,
            "shadow": True, "workers": 1}
    write_results("universe_replay", rows, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
