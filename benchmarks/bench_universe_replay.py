"""Replay of 500 tickers x 250 days through the service: every (ticker, day) a prediction
under its routing key ``"TICKER:YYYY-MM-DD"``, each day's outcomes posted as feedback, every
prediction committed in the ledger (with the other arm's shadow score).

Run: ``python -m benchmarks universe_replay``. Target: < 60 s. Candidate: a day's tickers
travel together (``replay(..., per_row=True)``: binary FP32 rows with one routing key per row,
each row routed and recorded as if alone). Baseline in the same run: one JSON request per
ticker and day (``per_row=False``, what any V2 endpoint takes) over the first
``BENCH_REPLAY_BASELINE_DAYS`` days (50 by default: at its rate the whole replay would take
minutes), its rate extrapolated to the full replay. The two arms are LightGBM models exported
to ONNX with the universe's input signature (trained on the S&P features; throughput does not
depend on their skill).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import write_results
from benchmarks._universe import available, load, skip_message
from benchmarks.bench_serving import start_finmlops, stop

DAYS = int(os.environ.get("BENCH_REPLAY_DAYS", "250"))
"""Replayed days (``BENCH_REPLAY_DAYS`` for a shorter run on a busy machine)."""
BASELINE_DAYS = int(os.environ.get("BENCH_REPLAY_BASELINE_DAYS", "50"))


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


def analyse(home: Path) -> dict[str, object]:
    """The experiment's decision from the replayed ledger (every prediction, outcome and
    shadow score of 500 tickers x 250 days; the paired test averages each day's differences
    across tickers into one HAC observation), timed."""
    from finmlops.abtest import analyse_ledger
    from finmlops.config import load_settings

    settings = load_settings(home / "finmlops.yaml", environ={})
    t0 = time.perf_counter()
    summary = analyse_ledger(settings, settings.ledger_url)
    seconds = time.perf_counter() - t0
    paired = summary.paired_decision
    return {"analysis_s": round(seconds, 1), "analysis_days": summary.days,
            "split_decision": summary.decision.action,
            "paired_decision": paired.action if paired is not None else None,
            "paired_reason": paired.reason if paired is not None else None}


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
        first_days = sorted(set(data_all.dates))[:BASELINE_DAYS]
        idx = np.flatnonzero(np.isin(np.asarray(data_all.dates), first_days))
        baseline = ReplayInput(windows=data_all.windows[idx],
                               dates=[data_all.dates[i] for i in idx],
                               tickers=[data_all.tickers[i] for i in idx],
                               forward_returns=data_all.forward_returns[idx])
        for mode, data, per_row in (("request per ticker and day (baseline)", baseline, False),
                                    ("day's tickers per request, key per row", data_all,
                                     True)):
            home = root / ("rows" if per_row else "each")
            home.mkdir()
            proc, url = start_finmlops(root / "models", home, workers=1, shadow=True)
            try:
                wait_ready(url)
                with ServiceClient(url) as client:
                    result = replay(client, data, experiment="direction-ab", per_row=per_row)
            finally:
                stop(proc)
            rate = result.requests / result.seconds
            rows.append({"replay": mode, "days": result.days, "predictions": result.requests,
                         "feedback": result.feedback, "seconds": round(result.seconds, 1),
                         "predictions_per_s": round(rate),
                         "full_replay_s": round(n / rate, 1), "target_s": 60.0})
            if per_row:
                analysis = analyse(home)
            shutil.rmtree(home, ignore_errors=True)
        rows[0]["speedup"] = 1.0
        rows[1]["speedup"] = round(rows[1]["predictions_per_s"] / rows[0]["predictions_per_s"],
                                   1)
    meta = {**analysis, "tickers": len(set(data_all.tickers)), "days": DAYS, "predictions": n,
            "baseline_days": BASELINE_DAYS,
            "shadow": True, "workers": 1}
    write_results("universe_replay", rows, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
