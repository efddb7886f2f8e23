"""Pooled training over the 501-ticker S&P universe (2019-03 .. 2024-03): the universe's
LSTM and LightGBM variants, walk-forward (four yearly folds) plus the deployable fit.

Run: ``python -m benchmarks universe_training``. Targets: the network <= 10 min, the trees
<= 2 min. Baseline in the same run: a least-squares linear classifier on the same features
and folds (numpy), the cheapest model that uses the same rows.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import write_results
from benchmarks._universe import CONTEXT, SECTORS, UNIVERSE, available, skip_message


def main() -> int:
    if not available():
        print(skip_message())
        return 0
    from finmlops.config import Settings
    from finmlops.evaluation import walk_forward
    from finmlops.features import universe_feature_names
    from finmlops.research.study import prepare, train_one

    with tempfile.TemporaryDirectory(prefix="finmlops-bench-") as tmp:
        settings = Settings.model_validate({"home": tmp, "universe": {
            "files": [str(UNIVERSE), str(CONTEXT)], "context": ["SPY"],
            "sectors_path": str(SECTORS) if SECTORS.is_file() else None,
            "start": "2019-03-08", "end": "2024-03-08", "min_train_years": 1}})
        t0 = time.perf_counter()
        prep = prepare(settings)
        prep_s = time.perf_counter() - t0
        rows = []
        for name, variant in settings.universe.variants.items():
            out = train_one(settings, prep, name, variant)
            rows.append({"model": f"{name} ({variant.kind}, {variant.features})",
                         "seconds": round(out.seconds, 1),
                         "accuracy": round(out.metrics["accuracy"], 4),
                         "target_s": 600.0 if variant.kind == "neural" else 120.0})
        s = prep.samples
        names = universe_feature_names("cs", prep.context)
        idx = [s.feature_names.index(n) for n in names]
        x = s.x[:, -1, idx].astype(np.float64)
        t0 = time.perf_counter()
        correct = total = 0
        for fold in walk_forward(s.dates, min_train_years=1, embargo_days=5):
            tr = fold.train[np.isfinite(s.label[fold.train])]
            te = fold.test[np.isfinite(s.label[fold.test])]
            mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-9
            a = np.column_stack([np.ones(tr.size), (x[tr] - mu) / sd])
            coef, *_ = np.linalg.lstsq(a, s.label[tr] - 0.5, rcond=None)
            pred = np.column_stack([np.ones(te.size), (x[te] - mu) / sd]) @ coef > 0
            correct += int((pred == (s.label[te] > 0.5)).sum())
            total += te.size
        rows.append({"model": "baseline: least-squares linear classifier, same folds",
                     "seconds": round(time.perf_counter() - t0, 2),
                     "accuracy": round(correct / total, 4)})
    meta = {"tickers": len(prep.tickers), "samples": int(s.x.shape[0]),
            "features": len(prep.input_names), "window": prep.window,
            "prepare_seconds": round(prep_s, 1), "torch_threads": settings.train.torch_threads,
            "store": str(Path(tmp).name)}
    write_results("universe_training", rows, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
