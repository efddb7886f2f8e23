"""Universe scale: cross-sectional features of 500 tickers x 5 years, and the ranked
long/short book of 500 tickers x 1,250 days with every metric.

Run: ``python -m benchmarks universe``. Targets: features < 2 s; the book < 1 s. Baselines
in the same run: the per-ticker features alone (``feature_matrix``, what the universe frame
adds its ranks to) and pandas' grouped rank of the same columns; a bare numpy book (weights
times returns less linear costs, no metric) as the floor.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from benchmarks._common import write_results
from benchmarks._universe import SECTORS, available, load, skip_message


def _best(fn, repeat: int = 3) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    if not available():
        print(skip_message())
        return 0
    from finmlops.config import EvaluationSettings, PortfolioSettings
    from finmlops.data.universe import read_sectors
    from finmlops.evaluation import evaluate_book
    from finmlops.features import cross_sectional, universe_frame
    from finmlops.features.crosssection import ranked_sources
    from finmlops.features.matrix import feature_matrix

    bars = load()
    tickers = sorted(set(bars["ticker"]) - {"SPY"})
    sectors = read_sectors(SECTORS if SECTORS.is_file() else None, tickers)
    rows = []
    t_uni, fm = _best(lambda: universe_frame(bars, tickers, ["SPY"], method="rank",
                                             sectors=sectors))
    t_z, _ = _best(lambda: universe_frame(bars, tickers, ["SPY"], method="zscore",
                                          sectors=sectors))
    t_own, own = _best(lambda: feature_matrix(bars, tickers, ["SPY"], 1))
    frame = own.frame  # type: ignore[attr-defined]
    cols = ranked_sources(["SPY"])
    t_cs, ours = _best(lambda: cross_sectional(frame, cols, "rank"))

    def pandas_rank() -> pd.DataFrame:
        g = frame[cols].groupby(frame["date"])
        return (g.rank(method="average") - 1.0) / (g.transform("count") - 1.0) - 0.5

    t_pd, theirs = _best(pandas_rank, repeat=1)
    same = bool(np.nanmax(np.abs(ours.to_numpy() - theirs.to_numpy())) < 1e-12)  # type: ignore[union-attr]
    n_rows = len(fm.frame)  # type: ignore[attr-defined]
    rows += [
        {"what": "universe features (ranks), 501 tickers", "seconds": round(t_uni, 3),
         "rows": n_rows, "target_s": 2.0},
        {"what": "universe features (z-scores)", "seconds": round(t_z, 3), "rows": n_rows},
        {"what": "baseline: per-ticker features alone (feature_matrix)",
         "seconds": round(t_own, 3), "rows": len(frame)},
        {"what": "cross-sectional ranks of 16 columns (numpy panels, 2 threads)",
         "seconds": round(t_cs, 3)},
        {"what": "baseline: pandas groupby(date).rank of the same columns",
         "seconds": round(t_pd, 3), "identical": same},
    ]

    # The book: 500 names x 1,250 days with a noise score (timing does not depend on skill).
    rng = np.random.default_rng(0)
    ret = bars.pivot(index="date", columns="ticker", values="adj_close").pct_change()
    ret = ret.drop(columns="SPY").iloc[1:1251]
    r = ret.to_numpy(np.float64)
    t_days, n = r.shape
    scores = np.where(np.isfinite(r), rng.normal(size=r.shape), np.nan)
    vol = np.full(r.shape, 0.02)
    adv = np.full(r.shape, 5e7)
    beta = np.full(r.shape, 1.0)
    market = np.nan_to_num(np.nanmean(r, axis=1))
    dates = ret.index.to_numpy(dtype="datetime64[ns]")
    codes = sorted(set(sectors.values()))
    sec = [codes.index(sectors[t]) for t in ret.columns]
    port = PortfolioSettings()
    ev = EvaluationSettings()
    t_book, rep = _best(lambda: evaluate_book(scores, r, dates=dates, market=market,
                                              portfolio=port, evaluation=ev, volatility=vol,
                                              adv=adv, beta=beta, sectors=sec,
                                              capacity=False))
    t_cap, _ = _best(lambda: evaluate_book(scores, r, dates=dates, market=market,
                                           portfolio=port, evaluation=ev, volatility=vol,
                                           adv=adv, beta=beta, sectors=sec))

    def floor() -> np.ndarray:
        s = np.where(np.isfinite(scores), scores, -np.inf)
        order = np.argsort(s, axis=1)
        w = np.zeros_like(r)
        k = n // 5
        rows_ = np.arange(t_days)[:, None]
        w[rows_, order[:, -k:]] = 0.5 / k
        w[rows_, order[:, :k]] = -0.5 / k
        trade = np.abs(np.diff(w, axis=0, prepend=0.0)).sum(axis=1)
        out: np.ndarray = (w * np.nan_to_num(r)).sum(axis=1) - 3e-4 * trade
        return out

    t_floor, _ = _best(floor)
    rows += [
        {"what": f"book {n} x {t_days} days + every metric (no capacity curve)",
         "seconds": round(t_book, 3), "x_floor": round(t_book / t_floor, 1), "target_s": 1.0},
        {"what": "book + every metric + 5-capital capacity curve (with and without the cap)",
         "seconds": round(t_cap, 3), "x_floor": round(t_cap / t_floor, 1)},
        {"what": "floor: bare numpy dollar-neutral book, linear costs, no metric",
         "seconds": round(t_floor, 4)},
    ]
    meta = {"tickers": len(tickers), "feature_rows": n_rows, "book_days": t_days,
            "book_names": n, "ic_mean_of_noise": rep.figures["ic"]["mean"]}  # type: ignore[attr-defined]
    write_results("universe", rows, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
