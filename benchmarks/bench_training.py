"""Wall time of the full walk-forward of the default variants on bundled IBB + SPY 2001-2026.

Run: ``.venv/bin/python -m benchmarks.bench_training [--threads 1 2]``. Target: < 60 s for
both variants together. Baseline measured in the same run: a numpy logistic regression
(Newton steps) on the last day's full feature vector, on the same folds. Each row also gives
the process CPU seconds, which a busy shared machine inflates far less than wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import write_results
from finmlops.config import TrainSettings
from finmlops.evaluation import classification_metrics, walk_forward
from finmlops.features import build_features, feature_names, training_mask
from finmlops.models.walkforward import Samples, max_window, prepare_samples, train_variant

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "finmlops" / "data" / "bundled"


def load_samples(train: TrainSettings) -> Samples:
    frames = []
    for t in ("IBB", "SPY"):
        f = pd.read_csv(BUNDLED / f"{t}.csv.gz", parse_dates=["date"])
        f.insert(0, "ticker", t)
        frames.append(f)
    frame = build_features(pd.concat(frames, ignore_index=True), ["IBB"], ["SPY"], horizon=1)
    return prepare_samples(frame, feature_names("full", ["SPY"]), max_window(train.variants))


def logistic_walk_forward(samples: Samples, train: TrainSettings) -> dict[str, float]:
    """L2-regularised logistic regression by Newton's method, refitted per fold."""
    x_all = samples.x[:, -1, :].astype(np.float64)
    known = np.isfinite(samples.label)
    trainable = training_mask(pd.DataFrame({"forward_return": samples.forward_return}))
    probs, labels = [], []
    for fold in walk_forward(samples.dates, horizon=1, min_train_years=train.min_train_years,
                             test_block_years=train.test_block_years,
                             embargo_days=train.embargo_days):
        rows = fold.train[trainable[fold.train]]
        test = fold.test[known[fold.test]]
        mean, std = x_all[rows].mean(0), x_all[rows].std(0) + 1e-9
        x = np.c_[np.ones(rows.size), (x_all[rows] - mean) / std]
        y = samples.label[rows]
        w = np.zeros(x.shape[1])
        for _ in range(8):
            p = 1 / (1 + np.exp(-x @ w))
            grad = x.T @ (p - y) + 1e-2 * w
            hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-2 * np.eye(x.shape[1])
            w -= np.linalg.solve(hess, grad)
        xt = np.c_[np.ones(test.size), (x_all[test] - mean) / std]
        probs.append(1 / (1 + np.exp(-xt @ w)))
        labels.append(samples.label[test])
    return classification_metrics(np.concatenate(labels), np.concatenate(probs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, nargs="*", default=None,
                        help="torch threads to measure (default: the settings' value)")
    args = parser.parse_args(argv)
    default = TrainSettings()
    threads = args.threads or [default.torch_threads]
    samples = load_samples(default)
    rows: list[dict[str, object]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    lr = logistic_walk_forward(samples, default)
    rows.append({"model": "baseline: numpy logistic regression", "threads": 1,
                 "seconds": round(time.perf_counter() - t0, 2),
                 "cpu_seconds": round(time.process_time() - c0, 2), "accuracy": lr["accuracy"],
                 "ci": f"[{lr['accuracy_ci_low']:.3f}, {lr['accuracy_ci_high']:.3f}]",
                 "days": int(lr["n"])})
    totals: dict[int, float] = {}
    cpu: dict[int, float] = {}
    always_up = None
    for n in threads:
        train = default.model_copy(update={"torch_threads": n})
        for name, variant in train.variants.items():
            c0 = time.process_time()
            run = train_variant(samples, name, variant, train, context=["SPY"])
            used = time.process_time() - c0
            totals[n] = totals.get(n, 0.0) + run.seconds
            cpu[n] = cpu.get(n, 0.0) + used
            always_up = run.baselines["always_up"]["accuracy"]
            m = run.metrics
            rows.append({
                "model": f"{name} ({variant.architecture} {variant.layers}x{variant.hidden}, "
                         f"W={variant.window}, {variant.features})",
                "threads": n, "seconds": round(run.seconds, 2), "cpu_seconds": round(used, 2),
                "accuracy": m["accuracy"],
                "ci": f"[{m['accuracy_ci_low']:.3f}, {m['accuracy_ci_high']:.3f}]",
                "days": int(m["n"]), "folds": int(m["folds"]),
                "epochs": int(sum(run.epochs)), "final_epochs": run.final_epochs,
                "not_improved": f"{int(m['folds_not_improved'])}/{int(m['folds'])}",
                "weights_hash": run.weights_hash[:12],
            })
        rows.append({"model": "both variants (walk-forward + deployable fit)", "threads": n,
                     "seconds": round(totals[n], 2), "cpu_seconds": round(cpu[n], 2)})
    meta = {"data": "bundled IBB + SPY", "first_day": str(samples.dates.min())[:10],
            "last_day": str(samples.dates.max())[:10], "samples": len(samples.label),
            "always_up_accuracy": always_up, "target_seconds_both": 60.0,
            "variants": {k: v.model_dump() for k, v in default.variants.items()}}
    write_results("training", rows, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
